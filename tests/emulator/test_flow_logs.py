"""VPC flow logs to CloudWatch Logs as AWS serves them (the extension in `flow_logs.py`): the
destination, duplicates, deletes of unknown ids, paging and filters; under IAM evaluation the
authorizations of CreateFlowLogs (iam:PassRole of the delivery role included) and the delivery
status, which AWS's flow logs service finds by acting as the delivery role."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from test_authorization import World, allow, document, refused


REGION = "us-east-1"
SERVICE = "vpc-flow-logs.amazonaws.com"
GROUP = "/sagekeeper/vpc-flow-logs/team-a"
SPEC = [{"ResourceType": "vpc-flow-log", "Tags": [{"Key": "owner", "Value": "sagekeeper"}]}]


def group_arn(account: str, name: str = GROUP) -> str:
    return f"arn:aws:logs:{REGION}:{account}:log-group:{name}"


def flow_log_arns(account: str) -> str:
    return f"arn:aws:ec2:{REGION}:{account}:vpc-flow-log/*"


def trust(account: str, service: str = SERVICE, source_account: str | None = None, source_arn: str | None = None) -> str:
    """A delivery role's trust policy: the service, with the confused-deputy conditions unless
    they are left out (source_account="" / source_arn="")."""
    condition = {}
    if source_account != "":
        condition["StringEquals"] = {"aws:SourceAccount": source_account or account}
    if source_arn != "":
        condition["ArnLike"] = {"aws:SourceArn": source_arn or flow_log_arns(account)}
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def writes(account: str, name: str = GROUP) -> dict:
    """The controller's delivery policy: streams and events of the group, and the group itself."""
    arn = group_arn(account, name)
    return allow(["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"], [arn, f"{arn}:*"])


def key_policy(account: str, name: str = GROUP, operator: str = "ArnEquals") -> str:
    """The controller's key policy: the account's root, and the region's logs service for this group."""
    return document(
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
        {
            "Sid": "logs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{REGION}.amazonaws.com"},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {operator: {"kms:EncryptionContext:aws:logs:arn": group_arn(account, name)}},
        },
    )


def vpc(client) -> str:
    return client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]


def create(ec2, vpc_id: str, role: str, traffic: str = "REJECT", **destination) -> dict:
    destination = destination or {"LogGroupName": GROUP}
    return ec2.create_flow_logs(
        ResourceType="VPC",
        ResourceIds=[vpc_id],
        TrafficType=traffic,
        LogDestinationType="cloud-watch-logs",
        DeliverLogsPermissionArn=role,
        MaxAggregationInterval=600,
        TagSpecifications=SPEC,
        **destination,
    )


def status(ec2, flow_log_id: str) -> tuple[str, str | None]:
    found = ec2.describe_flow_logs(FlowLogIds=[flow_log_id])["FlowLogs"][0]
    return found["DeliverLogsStatus"], found.get("DeliverLogsErrorMessage")


def error_code(call) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"]


# --- moto's gaps, with evaluation off ------------------------------------------------


def test_a_group_arn_as_destination_names_the_group_and_describe_shows_both(account):
    ec2, logs = account.client("ec2"), account.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    vpc_id = vpc(ec2)
    role = f"arn:aws:iam::{account.id}:role/flow-logs"
    first = create(ec2, vpc_id, role, LogDestination=group_arn(account.id))["FlowLogIds"][0]
    found = ec2.describe_flow_logs(FlowLogIds=[first])["FlowLogs"][0]
    assert (found["LogGroupName"], found["LogDestination"]) == (GROUP, group_arn(account.id))
    assert found["DeliverLogsStatus"] == "SUCCESS"
    assert found["Tags"] == SPEC[0]["Tags"]
    second = create(ec2, vpc_id, role, "ACCEPT", LogGroupName=GROUP)["FlowLogIds"][0]
    assert ec2.describe_flow_logs(FlowLogIds=[second])["FlowLogs"][0]["LogDestination"] == group_arn(account.id)


def test_a_group_name_and_a_destination_together_or_a_destination_that_is_no_group_are_invalid(account):
    ec2 = account.client("ec2")
    vpc_id = vpc(ec2)
    role = f"arn:aws:iam::{account.id}:role/flow-logs"
    both = {"LogGroupName": GROUP, "LogDestination": group_arn(account.id)}
    assert error_code(lambda: create(ec2, vpc_id, role, **both)) == "InvalidParameter"
    bucket = {"LogDestination": "arn:aws:s3:::bucket"}
    assert error_code(lambda: create(ec2, vpc_id, role, **bucket)) == "InvalidParameter"
    assert ec2.describe_flow_logs()["FlowLogs"] == []


def test_a_duplicate_is_unsuccessful_and_another_traffic_type_to_the_same_group_is_created(account):
    ec2 = account.client("ec2")
    first, second = vpc(ec2), vpc(ec2)
    role = f"arn:aws:iam::{account.id}:role/flow-logs"
    create(ec2, first, role)
    # Same resource, traffic type and group (named by its ARN this time): 200, in Unsuccessful.
    again = create(ec2, first, role, LogDestination=group_arn(account.id))
    assert again["FlowLogIds"] == []
    assert again["Unsuccessful"][0]["ResourceId"] == first
    assert again["Unsuccessful"][0]["Error"]["Code"] == "FlowLogAlreadyExists"
    # The other resources of the call are created.
    both = ec2.create_flow_logs(
        ResourceType="VPC", ResourceIds=[first, second], TrafficType="REJECT", LogDestinationType="cloud-watch-logs",
        LogGroupName=GROUP, DeliverLogsPermissionArn=role,
    )
    assert len(both["FlowLogIds"]) == 1 and [u["ResourceId"] for u in both["Unsuccessful"]] == [first]
    # Another traffic type, or another group, is a flow log of its own.
    assert len(create(ec2, first, role, "ALL")["FlowLogIds"]) == 1
    assert len(create(ec2, first, role, LogGroupName="other")["FlowLogIds"]) == 1
    assert len(ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [first]}])["FlowLogs"]) == 3


def test_deleting_an_unknown_id_is_unsuccessful_and_the_known_ones_are_deleted(account):
    ec2 = account.client("ec2")
    known = create(ec2, vpc(ec2), f"arn:aws:iam::{account.id}:role/flow-logs")["FlowLogIds"][0]
    answer = ec2.delete_flow_logs(FlowLogIds=[known, "fl-0123456789abcdef0"])
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [(u["ResourceId"], u["Error"]["Code"]) for u in answer["Unsuccessful"]] == [("fl-0123456789abcdef0", "InvalidFlowLogId.NotFound")]
    assert ec2.describe_flow_logs()["FlowLogs"] == []
    assert ec2.delete_flow_logs(FlowLogIds=[known])["Unsuccessful"][0]["Error"]["Code"] == "InvalidFlowLogId.NotFound"


def test_describe_pages_and_filters_by_resource_tag_key_and_id(account):
    ec2 = account.client("ec2")
    role = f"arn:aws:iam::{account.id}:role/flow-logs"
    vpcs = [vpc(ec2) for _ in range(7)]
    ids = [create(ec2, v, role)["FlowLogIds"][0] for v in vpcs]
    untagged = ec2.create_flow_logs(
        ResourceType="VPC", ResourceIds=[vpcs[0]], TrafficType="ALL", LogDestinationType="cloud-watch-logs",
        LogGroupName=GROUP, DeliverLogsPermissionArn=role,
    )["FlowLogIds"][0]

    first = ec2.describe_flow_logs(MaxResults=5)
    assert len(first["FlowLogs"]) == 5 and first["NextToken"]
    rest = ec2.describe_flow_logs(MaxResults=5, NextToken=first["NextToken"])
    assert len(rest["FlowLogs"]) == 3 and "NextToken" not in rest
    paged = [f["FlowLogId"] for page in ec2.get_paginator("describe_flow_logs").paginate(PaginationConfig={"PageSize": 5}) for f in page["FlowLogs"]]
    assert sorted(paged) == sorted(ids + [untagged])
    assert error_code(lambda: ec2.describe_flow_logs(NextToken="not-a-token")) == "InvalidNextToken"

    by_resource = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpcs[0]]}])["FlowLogs"]
    assert sorted(f["FlowLogId"] for f in by_resource) == sorted([ids[0], untagged])
    by_key = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpcs[0]]}, {"Name": "tag-key", "Values": ["owner"]}])
    assert [f["FlowLogId"] for f in by_key["FlowLogs"]] == [ids[0]]
    by_tag = ec2.describe_flow_logs(Filters=[{"Name": "tag:owner", "Values": ["sagekeeper"]}, {"Name": "log-group-name", "Values": [GROUP]}])
    assert sorted(f["FlowLogId"] for f in by_tag["FlowLogs"]) == sorted(ids)
    assert ec2.describe_flow_logs(Filters=[{"Name": "log-group-name", "Values": ["other"]}])["FlowLogs"] == []
    by_id = ec2.describe_flow_logs(Filters=[{"Name": "flow-log-id", "Values": [ids[3]]}])["FlowLogs"]
    assert [f["ResourceId"] for f in by_id] == [vpcs[3]]
    assert [f["FlowLogId"] for f in ec2.describe_flow_logs(FlowLogIds=[ids[2]])["FlowLogs"]] == [ids[2]]


def test_with_evaluation_off_the_delivery_status_is_motos_answer(account):
    """moto's answer: SUCCESS whenever the group existed at the create, whatever the role."""
    ec2, logs = account.client("ec2"), account.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    vpc_id = vpc(ec2)
    present = create(ec2, vpc_id, f"arn:aws:iam::{account.id}:role/no-such-role")["FlowLogIds"][0]
    absent = create(ec2, vpc_id, f"arn:aws:iam::{account.id}:role/no-such-role", LogGroupName="absent")["FlowLogIds"][0]
    assert status(ec2, present) == ("SUCCESS", None)
    assert status(ec2, absent) == ("FAILED", "Access error")


# --- under IAM evaluation ---------------------------------------------------------------


class Setup:
    """The controller's arrangement in an enforced account: a key for the group, the group, a
    VPC, a delivery role, and a session allowed what the controller does."""

    def __init__(
        self, world: World, role_trust: str | None = None, *role_statements, boundary: list | None = None,
        role_name: str = "flow-logs", group: bool = True,
    ):
        self.world = world
        admin = world.admin
        self.key = admin.client("kms").create_key(Policy=key_policy(world.id))["KeyMetadata"]["Arn"]
        if group:
            admin.client("logs").create_log_group(logGroupName=GROUP, kmsKeyId=self.key, tags={"owner": "sagekeeper"})
        self.vpc = vpc(admin.client("ec2"))
        boundary_arn = world.managed_policy(f"{role_name}-boundary", *(boundary if boundary is not None else [writes(world.id)]))
        statements = role_statements or (writes(world.id),)
        self.role = world.role(role_name, *statements, boundary=boundary_arn, trust=role_trust or trust(world.id))
        self.ec2 = admin.client("ec2")

    def flow_log(self, traffic: str = "REJECT", **destination) -> str:
        answer = create(self.ec2, self.vpc, self.role, traffic, **destination)
        assert answer["Unsuccessful"] == [], answer
        return answer["FlowLogIds"][0]

    def status(self, flow_log_id: str) -> tuple[str, str | None]:
        return status(self.ec2, flow_log_id)


@pytest.fixture
def world(emulator) -> World:
    return World(emulator)


FAILED = ("FAILED", "Access error")
SUCCESS = ("SUCCESS", None)


def test_the_controllers_arrangement_delivers_and_a_role_broken_later_shows_at_the_next_describe(world):
    setup = Setup(world)
    flow_log = setup.flow_log()
    assert setup.status(flow_log) == SUCCESS
    iam = world.admin.client("iam")
    iam.delete_role_policy(RoleName="flow-logs", PolicyName="main")
    assert setup.status(flow_log) == FAILED
    failed = setup.ec2.describe_flow_logs(Filters=[{"Name": "deliver-log-status", "Values": ["FAILED"]}])["FlowLogs"]
    assert [f["FlowLogId"] for f in failed] == [flow_log]
    iam.put_role_policy(RoleName="flow-logs", PolicyName="main", PolicyDocument=document(writes(world.id)))
    assert setup.status(flow_log) == SUCCESS
    assert setup.ec2.describe_flow_logs(Filters=[{"Name": "deliver-log-status", "Values": ["FAILED"]}])["FlowLogs"] == []


def test_a_trust_without_the_source_account_condition_still_delivers(world):
    setup = Setup(world, trust(world.id, source_account="", source_arn=""))
    assert setup.status(setup.flow_log()) == SUCCESS


@pytest.mark.parametrize(
    "role_trust",
    [
        lambda a: trust(a, service="ec2.amazonaws.com"),
        lambda a: trust(a, source_account="999999999999"),
        lambda a: trust(a, source_arn=f"arn:aws:ec2:{REGION}:999999999999:vpc-flow-log/*"),
        lambda a: trust(a, source_arn=f"arn:aws:ec2:{REGION}:{a}:vpc-flow-log/fl-0000000000000000a"),
        lambda a: json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{a}:root"}, "Action": "sts:AssumeRole"}]}),
    ],
    ids=["another-service", "another-source-account", "another-accounts-flow-logs", "another-flow-log", "no-service"],
)
def test_a_trust_the_flow_logs_service_cannot_use_for_this_flow_log_fails_delivery(world, role_trust):
    setup = Setup(world, role_trust(world.id))
    assert setup.status(setup.flow_log()) == FAILED


def test_a_trust_naming_this_flow_log_delivers_and_a_deny_for_the_service_fails_it(world):
    setup = Setup(world)
    flow_log = setup.flow_log()
    iam = world.admin.client("iam")
    exact = trust(world.id, source_arn=f"arn:aws:ec2:{REGION}:{world.id}:vpc-flow-log/{flow_log}")
    iam.update_assume_role_policy(RoleName="flow-logs", PolicyDocument=exact)
    assert setup.status(flow_log) == SUCCESS
    denied = json.loads(exact)
    denied["Statement"].append({"Effect": "Deny", "Principal": {"Service": SERVICE}, "Action": "sts:AssumeRole"})
    iam.update_assume_role_policy(RoleName="flow-logs", PolicyDocument=json.dumps(denied))
    assert setup.status(flow_log) == FAILED


@pytest.mark.parametrize(
    "statements, boundary",
    [
        # The group's ARN alone does not cover its streams (the usual mistake).
        ([allow(["logs:CreateLogStream", "logs:PutLogEvents"], group_arn("{a}"))], None),
        ([allow("logs:CreateLogStream", group_arn("{a}") + ":*")], None),
        ([allow(["logs:CreateLogStream", "logs:PutLogEvents"], group_arn("{a}", "/other") + ":*")], None),
        # The boundary limits what the identity policy allows.
        ([allow("logs:*")], [allow("logs:CreateLogStream")]),
        ([allow("logs:*"), {"Effect": "Deny", "Action": "logs:PutLogEvents", "Resource": "*",
                            "Condition": {"StringEquals": {"aws:ResourceTag/owner": "sagekeeper"}}}], None),
    ],
    ids=["group-arn-only", "no-put-log-events", "another-group", "boundary", "deny-on-the-groups-tag"],
)
def test_a_role_that_may_not_write_the_groups_streams_fails_delivery(world, statements, boundary):
    fill = lambda s: json.loads(json.dumps(s).replace("{a}", world.id))  # noqa: E731
    setup = Setup(world, None, *fill(statements), boundary=fill(boundary) if boundary else [allow("logs:*")])
    assert setup.status(setup.flow_log()) == FAILED


def test_a_missing_role_or_another_accounts_role_fails_delivery(world, emulator):
    setup = Setup(world)
    other = World(emulator)
    foreign = other.role("flow-logs", writes(world.id), trust=trust(world.id))
    missing = create(setup.ec2, setup.vpc, f"arn:aws:iam::{world.id}:role/missing", LogGroupName="/a")["FlowLogIds"][0]
    across = create(setup.ec2, setup.vpc, foreign, LogGroupName="/b")["FlowLogIds"][0]
    assert setup.status(missing) == FAILED and setup.status(across) == FAILED


def test_an_absent_group_fails_delivery_unless_the_role_may_create_it(world):
    setup = Setup(world)
    absent = setup.flow_log(LogGroupName="/sagekeeper/absent")
    assert setup.status(absent) == FAILED
    creator = Setup(world, None, allow(["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]),
                    boundary=[allow("logs:*")], role_name="creator", group=False)
    assert creator.status(creator.flow_log(LogGroupName="/sagekeeper/absent")) == SUCCESS
    # The flow log still fails once the group is deleted under it.
    flow_log = setup.flow_log("ALL")
    assert setup.status(flow_log) == SUCCESS
    world.admin.client("logs").delete_log_group(logGroupName=GROUP)
    assert setup.status(flow_log) == FAILED


def test_a_groups_key_that_no_longer_admits_the_logs_service_fails_delivery(world):
    setup = Setup(world)
    flow_log = setup.flow_log()
    kms = world.admin.client("kms")
    kms.put_key_policy(KeyId=setup.key, PolicyName="default", Policy=key_policy(world.id, name="/another/group"))
    assert setup.status(flow_log) == FAILED
    kms.put_key_policy(KeyId=setup.key, PolicyName="default", Policy=key_policy(world.id))
    assert setup.status(flow_log) == SUCCESS
    kms.disable_key(KeyId=setup.key.rsplit("/", 1)[-1])  # moto's DisableKey takes no ARN
    assert setup.status(flow_log) == FAILED


def test_create_flow_logs_needs_pass_role_to_the_flow_logs_service_and_tagging_on_create(world):
    setup = Setup(world)
    create_on_vpc = allow("ec2:CreateFlowLogs", [f"arn:aws:ec2:{REGION}:{world.id}:vpc/*", flow_log_arns(world.id)])
    tag_on_create = allow("ec2:CreateTags", flow_log_arns(world.id), Condition={"StringEquals": {"ec2:CreateAction": "CreateFlowLogs"}})
    pass_to = lambda service: allow("iam:PassRole", setup.role, Condition={"StringEquals": {"iam:PassedToService": service}})  # noqa: E731

    no_pass = world.session("no-pass", create_on_vpc, tag_on_create).client("ec2")
    message = refused(lambda: create(no_pass, setup.vpc, setup.role), "UnauthorizedOperation")
    assert f"is not authorized to perform: iam:PassRole on resource: {setup.role} because no identity-based policy allows" in message
    wrong_service = world.session("pass-to-ec2", create_on_vpc, tag_on_create, pass_to("ec2.amazonaws.com")).client("ec2")
    refused(lambda: create(wrong_service, setup.vpc, setup.role), "UnauthorizedOperation")
    no_tags = world.session("no-tags", create_on_vpc, pass_to(SERVICE)).client("ec2")
    assert "ec2:CreateTags" in refused(lambda: create(no_tags, setup.vpc, setup.role), "UnauthorizedOperation")
    assert setup.ec2.describe_flow_logs()["FlowLogs"] == []

    controller = world.session(
        "controller", create_on_vpc, tag_on_create, pass_to(SERVICE),
        allow(["ec2:DescribeFlowLogs", "ec2:DeleteFlowLogs"]),
    ).client("ec2")
    flow_log = create(controller, setup.vpc, setup.role)["FlowLogIds"][0]
    assert status(controller, flow_log) == SUCCESS
    assert controller.delete_flow_logs(FlowLogIds=[flow_log])["Unsuccessful"] == []


def test_create_flow_logs_is_authorized_on_the_vpc_with_its_tags_and_on_the_new_flow_log_with_the_request_tags(world):
    setup = Setup(world)
    tagged_vpc = vpc(setup.ec2)
    setup.ec2.create_tags(Resources=[tagged_vpc], Tags=[{"Key": "owner", "Value": "sagekeeper"}])
    session = world.session(
        "scoped",
        allow("ec2:CreateFlowLogs", f"arn:aws:ec2:{REGION}:{world.id}:vpc/*", Condition={"StringEquals": {"aws:ResourceTag/owner": "sagekeeper"}}),
        allow("ec2:CreateFlowLogs", flow_log_arns(world.id), Condition={"StringEquals": {"aws:RequestTag/owner": "sagekeeper"}}),
        allow("ec2:CreateTags", flow_log_arns(world.id), Condition={"StringEquals": {"ec2:CreateAction": "CreateFlowLogs"}}),
        allow("iam:PassRole", setup.role),
    ).client("ec2")
    message = refused(lambda: create(session, setup.vpc, setup.role), "UnauthorizedOperation")
    assert f"ec2:CreateFlowLogs on resource: arn:aws:ec2:{REGION}:{world.id}:vpc/{setup.vpc}" in message
    untagged = lambda: session.create_flow_logs(  # noqa: E731
        ResourceType="VPC", ResourceIds=[tagged_vpc], TrafficType="REJECT", LogDestinationType="cloud-watch-logs",
        LogGroupName=GROUP, DeliverLogsPermissionArn=setup.role,
    )
    assert f"ec2:CreateFlowLogs on resource: {flow_log_arns(world.id)}" in refused(untagged, "UnauthorizedOperation")
    assert len(create(session, tagged_vpc, setup.role)["FlowLogIds"]) == 1


def test_describe_needs_its_permission_and_delete_is_authorized_on_the_flow_logs_tags(world):
    setup = Setup(world)
    ours = setup.flow_log()
    theirs = setup.ec2.create_flow_logs(
        ResourceType="VPC", ResourceIds=[setup.vpc], TrafficType="ALL", LogDestinationType="cloud-watch-logs",
        LogGroupName=GROUP, DeliverLogsPermissionArn=setup.role,
    )["FlowLogIds"][0]
    nobody = world.session("nobody").client("ec2")
    refused(lambda: nobody.describe_flow_logs(), "UnauthorizedOperation")
    deleter = world.session(
        "deleter", allow("ec2:DeleteFlowLogs", flow_log_arns(world.id), Condition={"StringEquals": {"ec2:ResourceTag/owner": "sagekeeper"}})
    ).client("ec2")
    message = refused(lambda: deleter.delete_flow_logs(FlowLogIds=[theirs]), "UnauthorizedOperation")
    assert f"ec2:DeleteFlowLogs on resource: arn:aws:ec2:{REGION}:{world.id}:vpc-flow-log/{theirs}" in message
    assert deleter.delete_flow_logs(FlowLogIds=[ours])["Unsuccessful"] == []
    assert [f["FlowLogId"] for f in setup.ec2.describe_flow_logs()["FlowLogs"]] == [theirs]


def test_tagging_a_flow_log_is_authorized_on_its_arn(world):
    setup = Setup(world)
    flow_log = setup.flow_log()
    arn = f"arn:aws:ec2:{REGION}:{world.id}:vpc-flow-log/{flow_log}"
    tagger = world.session("tagger", allow(["ec2:CreateTags", "ec2:DeleteTags"], arn)).client("ec2")
    tagger.create_tags(Resources=[flow_log], Tags=[{"Key": "team", "Value": "a"}])
    tagger.delete_tags(Resources=[flow_log], Tags=[{"Key": "owner"}])
    found = setup.ec2.describe_flow_logs(FlowLogIds=[flow_log])["FlowLogs"][0]
    assert found["Tags"] == [{"Key": "team", "Value": "a"}]
    other = setup.flow_log("ALL")
    refused(lambda: tagger.create_tags(Resources=[other], Tags=[{"Key": "team", "Value": "a"}]), "UnauthorizedOperation")
