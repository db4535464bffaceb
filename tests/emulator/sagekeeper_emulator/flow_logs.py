"""VPC flow logs to CloudWatch Logs, as AWS creates, describes, delivers and deletes them.

Where moto falls short of AWS, for flow logs to CloudWatch Logs (other destinations keep
moto's behaviour):
- The destination is a log group named by LogGroupName or by its ARN in LogDestination; both
  at once is InvalidParameter ("Please only provide LogGroupName or only provide
  LogDestination."). moto records no group for a LogDestination (and reports its delivery
  FAILED). DescribeFlowLogs shows both, the name and the group's ARN.
- A flow log for a resource that already has one with the same traffic type to the same group
  is not created: AWS answers 200 with the resource in `Unsuccessful` (FlowLogAlreadyExists)
  and creates the flow logs of the other resources. Another traffic type to the same group is
  a flow log of its own. moto fails the whole call, whatever the traffic type.
- DeleteFlowLogs deletes the flow logs it knows and lists each unknown id in `Unsuccessful`
  (InvalidFlowLogId.NotFound). moto fails the whole call after deleting the known ones.
- DescribeFlowLogs pages with MaxResults and NextToken (moto returns everything at once), and
  its `deliver-log-status` filter matches the status it shows (moto: always SUCCESS).
- Delivery, under IAM evaluation of the account (any mode but `off`): the flow logs service
  assumes the DeliverLogsPermissionArn role and writes to the group as that role. Each
  DescribeFlowLogs judges it anew (a role broken after the create shows at the next describe):
  DeliverLogsStatus is SUCCESS only when
  - the role exists in the flow log's account (and IAM has propagated it);
  - its trust policy lets `vpc-flow-logs.amazonaws.com` sts:AssumeRole with aws:SourceAccount =
    the account and aws:SourceArn = the flow log's ARN
    (`arn:aws:ec2:<region>:<account>:vpc-flow-log/<id>`);
  - its identity policies, within its permissions boundary, allow logs:CreateLogStream and
    logs:PutLogEvents on every stream of the group (`...:log-group:<name>:log-stream:*`; the
    service names streams after network interfaces, which come and go);
  - the group exists, or the role may logs:CreateLogGroup it (the service then creates it on
    first delivery; here it is not created, as no traffic flows);
  - the group's KMS key, if it has one, still lets CloudWatch Logs use it for the group.
  Otherwise FAILED, with DeliverLogsErrorMessage "Access error", AWS's wording for a delivery
  the role may not make. With evaluation off, moto's answer stays (FAILED only when the group
  did not exist at the create).
"""

from __future__ import annotations

import functools

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import EC2Backend
from moto.ec2.models.flow_logs import FlowLogs
from moto.ec2.responses.flow_logs import FlowLogs as FlowLogsResponse
from moto.ec2.utils import random_flow_log_id

from .authorization import evaluator, modes, resources
from .authorization.evaluation import Check, Principal, decide, parse, service_allows
from .logs import group_arn, key_admits_logs
from .policies import visible_role

CLOUDWATCH = "cloud-watch-logs"
SERVICE = "vpc-flow-logs.amazonaws.com"
ACCESS_ERROR = "Access error"
# The session name the service gives its role session is not documented; policies rarely name it.
SESSION = "vpc-flow-logs"
DELIVERY_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
DEFAULT_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
)
PAGE = 1000


def flow_log_arn(flow_log: FlowLogs) -> str:
    backend = flow_log.ec2_backend
    return f"arn:aws:ec2:{backend.region_name}:{backend.account_id}:vpc-flow-log/{flow_log.id}"


def _group_name(destination: str | None) -> str:
    """The group a log-group ARN names (`...:log-group:<name>`, or `...:<name>:*`)."""
    parts = (destination or "").split(":", 6)
    if len(parts) < 7 or parts[2] != "logs" or parts[5] != "log-group":
        raise EC2ClientError("InvalidParameter", f"LogDestination: {destination} is not a valid CloudWatch Logs log group ARN.")
    return parts[6][:-2] if parts[6].endswith(":*") else parts[6]


def _monitored(backend: EC2Backend, resource_type: str, resource_id: str) -> None:
    """Raises moto's not-found error unless the monitored resource exists."""
    lookup = {"VPC": backend.get_vpc, "Subnet": backend.get_subnet, "NetworkInterface": backend.get_network_interface}
    if resource_type in lookup:
        lookup[resource_type](resource_id)


def _duplicate(backend: EC2Backend, resource_id: str, traffic_type: str, group: str) -> bool:
    return any(
        (f.resource_id, f.traffic_type, f.log_destination_type, f.log_group_name) == (resource_id, traffic_type, CLOUDWATCH, group)
        for f in list(backend.flow_logs.values())
    )


def _create(original):
    @functools.wraps(original)
    def create_flow_logs(
        self: EC2Backend,
        resource_type,
        resource_ids,
        traffic_type,
        deliver_logs_permission_arn,
        log_destination_type,
        log_destination,
        log_group_name,
        log_format,
        max_aggregation_interval,
    ):
        kind = log_destination_type or CLOUDWATCH
        if kind != CLOUDWATCH:
            return original(
                self, resource_type, resource_ids, traffic_type, deliver_logs_permission_arn, log_destination_type,
                log_destination, log_group_name, log_format, max_aggregation_interval,
            )
        if log_group_name and log_destination:
            raise EC2ClientError("InvalidParameter", "Please only provide LogGroupName or only provide LogDestination.")
        interval = 600 if max_aggregation_interval is None else max_aggregation_interval
        self._validate_request(log_group_name, log_destination, kind, interval, deliver_logs_permission_arn)
        name = log_group_name or _group_name(log_destination)
        destination = group_arn(self.account_id, self.region_name, name)
        created, unsuccessful = [], []
        for resource_id in resource_ids:
            _monitored(self, resource_type, resource_id)
            if _duplicate(self, resource_id, traffic_type, name):
                message = "Error. There is an existing Flow Log with the same configuration and log destination."
                unsuccessful.append((resource_id, "FlowLogAlreadyExists", message))
                continue
            exists = resources.log_group(self.account_id, self.region_name, name) is not None
            flow_log = FlowLogs(
                self, random_flow_log_id(), resource_id, traffic_type, destination, name, deliver_logs_permission_arn,
                interval, kind, log_format or DEFAULT_FORMAT,
                "SUCCESS" if exists else "FAILED", None if exists else ACCESS_ERROR,
            )
            self.flow_logs[flow_log.id] = flow_log
            created.append(flow_log)
        return created, unsuccessful

    return create_flow_logs


# --- delivery ------------------------------------------------------------------------


def _role_may(role, action: str, resource: str, resource_type: str, tags: dict[str, str]) -> bool:
    """Whether the role's session may perform `action` (identity policies within the boundary)."""
    account = role.arn.split(":")[4]
    region = resource.split(":")[3]
    principal = Principal(account, f"arn:aws:sts::{account}:assumed-role/{role.name}/{SESSION}", role.arn)
    keys = {
        "aws:principalarn": [role.arn],
        "aws:principalaccount": [account],
        "aws:principaltype": ["AssumedRole"],
        "aws:resourceaccount": [resource.split(":")[4]],
        "aws:requestedregion": [region],
        "aws:securetransport": ["true"],
        "aws:viaawsservice": ["false"],
        **{f"aws:resourcetag/{k}".lower(): [v] for k, v in tags.items()},
    }
    check = Check(action, resource, keys, resource_type=resource_type, resource_account=resource.split(":")[4])
    identity, boundary = resources.identity_policies(account, role.arn)
    return decide(evaluator, principal, check, identity, boundary).allowed


def delivers(flow_log: FlowLogs) -> bool:
    """Whether the flow logs service can deliver this flow log now (see the module docstring)."""
    account, region = flow_log.ec2_backend.account_id, flow_log.ec2_backend.region_name
    arn = flow_log.deliver_logs_permission_arn or ""
    parts = arn.split(":")
    role = visible_role(account, arn.rsplit("/", 1)[-1]) if len(parts) == 6 and parts[4] == account and ":role/" in arn else None
    if role is None or role.arn != arn:
        return False
    context = {"aws:SourceAccount": [account], "aws:SourceArn": [flow_log_arn(flow_log)]}
    if not service_allows(parse(role.assume_role_policy_document), SERVICE, "sts:AssumeRole", role.arn, context):
        return False
    name = flow_log.log_group_name or ""
    group, group_resource = resources.log_group(account, region, name), group_arn(account, region, name)
    if group is None:
        if not _role_may(role, "logs:CreateLogGroup", group_resource, "log-group", {}):
            return False
    elif group.kms_key_id and not key_admits_logs(group.kms_key_id, group_resource):
        return False
    tags = resources.log_group_tags(account, region, name)
    streams = f"{group_resource}:log-stream:*"
    return all(_role_may(role, action, streams, "log-stream", tags) for action in DELIVERY_ACTIONS)


def _judge(flow_log: FlowLogs) -> None:
    if flow_log.log_destination_type != CLOUDWATCH:
        return
    ok = delivers(flow_log)
    flow_log.deliver_logs_status = "SUCCESS" if ok else "FAILED"
    flow_log.deliver_logs_error_message = None if ok else ACCESS_ERROR


# --- responses -----------------------------------------------------------------------


def describe_flow_logs(self: FlowLogsResponse) -> ActionResult:
    flow_log_ids = self._get_param("FlowLogIds", [])
    filters = self._filters_from_querystring()
    self.error_on_dryrun()
    backend = self.ec2_backend
    if modes.of(backend.account_id) != "off":
        for flow_log in list(backend.flow_logs.values()):
            _judge(flow_log)
    matches = backend.describe_flow_logs(flow_log_ids, filters)
    token = self._get_param("NextToken") or "0"
    if not token.isdigit():
        raise EC2ClientError("InvalidNextToken", f"The token '{token}' is invalid.")
    start, size = int(token), self._get_int_param("MaxResults") or PAGE
    result = {"FlowLogs": matches[start : start + size]}
    if start + size < len(matches):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def delete_flow_logs(self: FlowLogsResponse) -> ActionResult:
    flow_log_ids = self._get_param("FlowLogIds", [])
    self.error_on_dryrun()
    unsuccessful = []
    for flow_log_id in flow_log_ids:
        if self.ec2_backend.flow_logs.pop(flow_log_id, None) is None:
            message = f"These flow log ids in the input list are not found: [TotalCount: 1] {flow_log_id}"
            unsuccessful.append({"ResourceId": flow_log_id, "Error": {"Code": "InvalidFlowLogId.NotFound", "Message": message}})
    return ActionResult({"Unsuccessful": unsuccessful})


def _status_filter(original):
    @functools.wraps(original)
    def get_filter_value(self: FlowLogs, filter_name: str, method_name: str | None = None):
        if filter_name == "deliver-log-status":
            return self.deliver_logs_status
        return original(self, filter_name, method_name)

    return get_filter_value


def install() -> None:
    """Patch moto's flow logs: creation, deletion, paging, and delivery status."""
    EC2Backend.create_flow_logs = _create(EC2Backend.create_flow_logs)
    FlowLogsResponse.describe_flow_logs = describe_flow_logs
    FlowLogsResponse.delete_flow_logs = delete_flow_logs
    FlowLogs.get_filter_value = _status_filter(FlowLogs.get_filter_value)
