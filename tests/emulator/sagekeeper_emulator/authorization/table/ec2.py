"""EC2: each resource an action touches is authorized on its own (a subnet made in a VPC needs
the action on `subnet/*` and on the VPC), existing resources with their tags as
aws:ResourceTag and ec2:ResourceTag. A create with TagSpecification also needs ec2:CreateTags
on the new resource with `ec2:CreateAction` naming the create. Describe calls take no resource,
except DescribeVpcAttribute (the VPC). CreateFlowLogs with a DeliverLogsPermissionArn also needs
iam:PassRole on that role, passed to vpc-flow-logs.amazonaws.com for each monitored resource.
"""

from __future__ import annotations

from .. import resources
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

REGION = "ec2:Region"
EXISTING = ("aws:ResourceTag/${TagKey}", "ec2:ResourceTag/${TagKey}", REGION)
NEW = (*TAG_KEYS, REGION)
CREATE_TAGS = ("ec2:CreateAction", *TAG_KEYS, REGION)

_TYPES = {
    "vpc": "vpc",
    "subnet": "subnet",
    "rtb": "route-table",
    "sg": "security-group",
    "igw": "internet-gateway",
    "nat": "natgateway",
    "eipalloc": "elastic-ip",
    "vpce": "vpc-endpoint",
    "pl": "prefix-list",
    "sgr": "security-group-rule",
    "eni": "network-interface",
    "fl": "vpc-flow-log",
}
FLOW_LOGS = "vpc-flow-logs.amazonaws.com"


def resource_type(resource_id: str) -> str:
    """The SAR resource type of an EC2 id (`vpc-0abc` is a `vpc`)."""
    return _TYPES.get(resource_id.rsplit("-", 1)[0], "unknown")


def existing(ctx: Ctx, action: str, resource_id: str, keys=None):
    """A check on an existing resource, with its tags."""
    kind = resource_type(resource_id)
    return ctx.check(
        action,
        kind,
        ctx.arn("ec2", f"{kind}/{resource_id}"),
        keys={REGION: [ctx.region], **(keys or {})},
        resource_tags=resources.ec2_tags(ctx.account, ctx.region, resource_id),
        tag_key_prefixes=("aws", "ec2"),
    )


def tag_specifications(ctx: Ctx) -> dict[str, dict[str, str]]:
    """Tags of a create, by resource type: TagSpecification.N.ResourceType / .Tag.M.Key."""
    found: dict[str, dict[str, str]] = {}
    n = 1
    while (kind := ctx.param(f"TagSpecification.{n}.ResourceType")) is not None:
        found.setdefault(kind, {}).update(ctx.query_tags(f"TagSpecification.{n}.Tag"))
        n += 1
    return found


def created(ctx: Ctx, action: str, kind: str, keys=None):
    """The check on the new resource, and the implied ec2:CreateTags when it is tagged."""
    tags = tag_specifications(ctx).get(kind)
    arn = ctx.arn("ec2", f"{kind}/*")
    checks = [ctx.check(action, kind, arn, keys={REGION: [ctx.region], **(keys or {})}, request_tags=tags or {})]
    if tags:
        create_action = action.split(":")[1]
        keys = {REGION: [ctx.region], "ec2:CreateAction": [create_action]}
        checks.append(ctx.check("ec2:CreateTags", kind, arn, keys=keys, request_tags=tags))
    return checks


def _describe(name: str, resource_type_name: str | None = None):
    action = f"ec2:{name}"

    @operation("ec2", name, grant(action, resource_type_name, *(EXISTING if resource_type_name else (REGION,))))
    def entry(ctx: Ctx):
        if resource_type_name:
            return [existing(ctx, action, ctx.param("VpcId") or "")]
        return [ctx.check(action, None, keys={REGION: [ctx.region]})]

    return entry


for _name in (
    "DescribeAddresses",
    "DescribeAvailabilityZones",
    "DescribeInternetGateways",
    "DescribeManagedPrefixLists",
    "DescribeNatGateways",
    "DescribeRouteTables",
    "DescribeSecurityGroups",
    "DescribeSecurityGroupRules",
    "DescribeSubnets",
    "DescribeVpcEndpoints",
    "DescribeVpcs",
    "DescribeNetworkInterfaces",
    "DescribeTags",
    "DescribePrefixLists",
    "DescribeFlowLogs",
):
    _describe(_name)
_describe("DescribeVpcAttribute", "vpc")


def _create(name: str, kind: str, *parents: tuple[str, str]):
    """A create of `kind` inside existing resources: (parameter, resource type) pairs."""
    action = f"ec2:{name}"
    grants = [grant(action, kind, *NEW), grant("ec2:CreateTags", kind, *CREATE_TAGS)]
    grants += [grant(action, parent_kind, *EXISTING) for _, parent_kind in parents]

    @operation("ec2", name, *grants)
    def entry(ctx: Ctx):
        checks = created(ctx, action, kind)
        for parameter, _ in parents:
            if value := ctx.param(parameter):
                checks.append(existing(ctx, action, value))
        return checks

    return entry


_create("CreateVpc", "vpc")
_create("CreateInternetGateway", "internet-gateway")
_create("AllocateAddress", "elastic-ip")
_create("CreateSubnet", "subnet", ("VpcId", "vpc"))
_create("CreateRouteTable", "route-table", ("VpcId", "vpc"))
_create("CreateSecurityGroup", "security-group", ("VpcId", "vpc"))
_create("CreateNatGateway", "natgateway", ("SubnetId", "subnet"), ("AllocationId", "elastic-ip"))


@operation(
    "ec2",
    "CreateVpcEndpoint",
    grant("ec2:CreateVpcEndpoint", "vpc-endpoint", *NEW, "ec2:VpceServiceName"),
    grant("ec2:CreateTags", "vpc-endpoint", *CREATE_TAGS),
    grant("ec2:CreateVpcEndpoint", "vpc", *EXISTING),
    grant("ec2:CreateVpcEndpoint", "subnet", *EXISTING),
    grant("ec2:CreateVpcEndpoint", "security-group", *EXISTING),
    grant("ec2:CreateVpcEndpoint", "route-table", *EXISTING),
)
def create_vpc_endpoint(ctx: Ctx):
    action = "ec2:CreateVpcEndpoint"
    checks = created(ctx, action, "vpc-endpoint", keys={"ec2:VpceServiceName": [ctx.param("ServiceName") or ""]})
    ids = [ctx.param("VpcId") or ""] + ctx.members("SubnetId") + ctx.members("SecurityGroupId") + ctx.members("RouteTableId")
    return checks + [existing(ctx, action, i) for i in ids if i]


def _on_existing(name: str, *parameters: tuple[str, str], listed: bool = False):
    """An action on existing resources named by parameters (`listed`: `Param.N` lists)."""
    action = f"ec2:{name}"
    kinds = dict.fromkeys(kind for _, kind in parameters)

    @operation("ec2", name, *[grant(action, kind, *EXISTING) for kind in kinds])
    def entry(ctx: Ctx):
        ids = []
        for parameter, _ in parameters:
            ids += ctx.members(parameter) if listed else [ctx.param(parameter)]
        return [existing(ctx, action, i) for i in ids if i]

    return entry


_on_existing("DeleteVpc", ("VpcId", "vpc"))
_on_existing("ModifyVpcAttribute", ("VpcId", "vpc"))
_on_existing("DeleteSubnet", ("SubnetId", "subnet"))
_on_existing("DeleteRouteTable", ("RouteTableId", "route-table"))
_on_existing("CreateRoute", ("RouteTableId", "route-table"))
_on_existing("ReplaceRoute", ("RouteTableId", "route-table"))
_on_existing("DeleteRoute", ("RouteTableId", "route-table"))
_on_existing("DeleteSecurityGroup", ("GroupId", "security-group"))
_on_existing("RevokeSecurityGroupIngress", ("GroupId", "security-group"))
_on_existing("RevokeSecurityGroupEgress", ("GroupId", "security-group"))
_on_existing("DeleteInternetGateway", ("InternetGatewayId", "internet-gateway"))
_on_existing("AttachInternetGateway", ("InternetGatewayId", "internet-gateway"), ("VpcId", "vpc"))
_on_existing("DetachInternetGateway", ("InternetGatewayId", "internet-gateway"), ("VpcId", "vpc"))
_on_existing("AssociateRouteTable", ("RouteTableId", "route-table"), ("SubnetId", "subnet"))
_on_existing("DeleteNatGateway", ("NatGatewayId", "natgateway"))
_on_existing("ReleaseAddress", ("AllocationId", "elastic-ip"))
_on_existing("DeleteVpcEndpoints", ("VpcEndpointId", "vpc-endpoint"), listed=True)
_on_existing("DeleteFlowLogs", ("FlowLogId", "vpc-flow-log"), listed=True)


def passed_role(ctx: Ctx, role_arn: str, service: str, resource: str):
    """The iam:PassRole AWS checks when a request hands `role_arn` to `service` for `resource`."""
    role = resources.role_from_arn(role_arn)
    return ctx.check(
        "iam:PassRole",
        "role",
        role.arn if role else role_arn,
        keys={"iam:PassedToService": [service], "iam:AssociatedResourceArn": [resource]},
        resource_tags=resources.role_tags(role),
        account=role_arn.split(":")[4] if role_arn.count(":") >= 5 else None,
    )


@operation(
    "ec2",
    "CreateFlowLogs",
    grant("ec2:CreateFlowLogs", "vpc-flow-log", *NEW),
    grant("ec2:CreateTags", "vpc-flow-log", *CREATE_TAGS),
    grant("ec2:CreateFlowLogs", "vpc", *EXISTING),
    grant("ec2:CreateFlowLogs", "subnet", *EXISTING),
    grant("ec2:CreateFlowLogs", "network-interface", *EXISTING),
    grant("iam:PassRole", "role", *RESOURCE_TAG, "iam:PassedToService", "iam:AssociatedResourceArn"),
)
def create_flow_logs(ctx: Ctx):
    """The new flow log (`vpc-flow-log/*`, tagged on create), each monitored resource with its
    tags, and the delivery role passed to the flow logs service for each of them."""
    action = "ec2:CreateFlowLogs"
    ids = [i for i in ctx.members("ResourceId") if i]
    checks = created(ctx, action, "vpc-flow-log") + [existing(ctx, action, i) for i in ids]
    if role := ctx.param("DeliverLogsPermissionArn"):
        arns = dict.fromkeys(ctx.arn("ec2", f"{resource_type(i)}/{i}") for i in ids)
        checks += [passed_role(ctx, role, FLOW_LOGS, arn) for arn in arns]
    return checks


def _authorize(name: str):
    action = f"ec2:{name}"

    @operation(
        "ec2",
        name,
        grant(action, "security-group", *EXISTING),
        grant(action, "security-group-rule", *NEW),
    )
    def entry(ctx: Ctx):
        rule = ctx.check(action, "security-group-rule", ctx.arn("ec2", "security-group-rule/*"), keys={REGION: [ctx.region]}, request_tags={})
        return [existing(ctx, action, ctx.param("GroupId") or ""), rule]

    return entry


_authorize("AuthorizeSecurityGroupIngress")
_authorize("AuthorizeSecurityGroupEgress")


@operation(
    "ec2",
    "DisassociateRouteTable",
    grant("ec2:DisassociateRouteTable", "route-table", *EXISTING),
    grant("ec2:DisassociateRouteTable", "subnet", *EXISTING),
)
def disassociate_route_table(ctx: Ctx):
    table, subnet = resources.route_table_of_association(ctx.account, ctx.region, ctx.param("AssociationId") or "")
    return [existing(ctx, "ec2:DisassociateRouteTable", i) for i in (table, subnet) if i]


@operation(
    "ec2",
    "ModifyVpcEndpoint",
    grant("ec2:ModifyVpcEndpoint", "vpc-endpoint", *EXISTING),
    grant("ec2:ModifyVpcEndpoint", "route-table", *EXISTING),
    grant("ec2:ModifyVpcEndpoint", "subnet", *EXISTING),
    grant("ec2:ModifyVpcEndpoint", "security-group", *EXISTING),
)
def modify_vpc_endpoint(ctx: Ctx):
    ids = [ctx.param("VpcEndpointId") or ""]
    for change in ("Add", "Remove"):
        for kind in ("RouteTableId", "SubnetId", "SecurityGroupId"):
            ids += ctx.members(f"{change}{kind}")
    return [existing(ctx, "ec2:ModifyVpcEndpoint", i) for i in ids if i]


def _tags_operation(name: str):
    action = f"ec2:{name}"
    kinds = (
        "vpc", "subnet", "route-table", "security-group", "internet-gateway", "natgateway", "elastic-ip", "vpc-endpoint",
        "vpc-flow-log",
    )

    # A CreateTags call of its own knows ec2:CreateAction too: absent, so statements that allow
    # tagging only as part of a create do not apply (as in AWS), rather than being unjudgeable.
    create_action = ("ec2:CreateAction",) if name == "CreateTags" else ()
    @operation("ec2", name, *[grant(action, kind, *EXISTING, *TAG_KEYS, *create_action) for kind in kinds])
    def entry(ctx: Ctx):
        tags = ctx.query_tags("Tag")
        checks = []
        for resource_id in ctx.members("ResourceId"):
            check = existing(ctx, action, resource_id)
            if name == "CreateTags":
                check.keys.update(ctx.check(action, None, request_tags=tags).keys)
            else:
                check.keys["aws:tagkeys"] = list(tags)
            checks.append(check)
        return checks

    return entry


_tags_operation("CreateTags")
_tags_operation("DeleteTags")
