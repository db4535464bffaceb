"""CloudWatch Logs where moto falls short of AWS.

- AssociateKmsKey / DisassociateKmsKey (moto: NotImplemented) set and clear a log group's
  `kmsKeyId`, which DescribeLogGroups shows; an unknown group is ResourceNotFoundException.
- PutRetentionPolicy refuses a value outside CloudWatch's allowed list with
  InvalidParameterException (moto accepts any number).
- TagResource / UntagResource / ListTagsForResource on a log-group ARN whose group does not
  exist answer ResourceNotFoundException (moto tags any ARN).
- CreateLogGroup and AssociateKmsKey with a kmsKeyId: AWS has CloudWatch Logs try the key first
  and answers AccessDeniedException ("The specified KMS key does not exist or is not allowed to
  be used with Arn '<group arn>'") unless the key exists in the group's region, is enabled, and
  its key policy lets the service principal `logs.<region>.amazonaws.com` encrypt, decrypt and
  generate data keys with the encryption context `aws:logs:arn` = the group's ARN. moto takes
  any key id. The check is AWS's, not the caller's permission: like SageMaker's image pull as
  the model's role, it applies whenever the account's IAM evaluation is not `off`, to every
  caller, the account-admin identity included.
"""

from __future__ import annotations

import functools

from moto.logs.exceptions import InvalidParameterException, LogsClientError, ResourceNotFoundException
from moto.logs.responses import LogsResponse

from .authorization import modes, resources
from .authorization.evaluation import service_allows

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
# What CloudWatch Logs does with a group's key, which the key policy must let it do.
KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")


class AccessDeniedException(LogsClientError):
    def __init__(self, msg: str):
        self.code = 400
        super().__init__("AccessDeniedException", msg)


def group_arn(account: str, region: str, name: str) -> str:
    """The ARN of log group `name` (the form KMS encryption contexts and IAM policies name)."""
    return f"arn:aws:logs:{region}:{account}:log-group:{name}"


def key_admits_logs(key_id: str, arn: str) -> bool:
    """Whether CloudWatch Logs may encrypt the group `arn` with the key: the key exists in the
    group's region and is enabled, and its policy lets `logs.<region>.amazonaws.com` perform
    KEY_ACTIONS with the encryption context aws:logs:arn = the group's ARN."""
    region, account = arn.split(":")[3:5]
    key = resources.kms_key(account, region, key_id)
    if key is None or key.policy is None or key.state != "Enabled" or key.arn.split(":")[3] != region:
        return False
    context = {"kms:EncryptionContext:aws:logs:arn": [arn], "kms:EncryptionContextKeys": ["aws:logs:arn"]}
    service = f"logs.{region}.amazonaws.com"
    return all(service_allows(key.policy, service, action, key.arn, context) for action in KEY_ACTIONS)


def _check_key(response: LogsResponse, name: str, key_id: str) -> None:
    """AWS's check of a key given to a group (see the module docstring), unless evaluation is off."""
    if modes.of(response.current_account) == "off":
        return
    arn = group_arn(response.current_account, response.region, name)
    if not key_admits_logs(key_id, arn):
        raise AccessDeniedException(f"The specified KMS key does not exist or is not allowed to be used with Arn '{arn}'")


def _group(response: LogsResponse, name: str | None):
    found = response.logs_backend.groups.get(name or "")
    if found is None:
        raise ResourceNotFoundException()
    return found


def associate_kms_key(self: LogsResponse) -> str:
    # AWS also takes resourceIdentifier (a query-definition ARN); only log groups are emulated.
    group = _group(self, self._get_param("logGroupName"))
    key_id = self._get_param("kmsKeyId")
    if not key_id:
        raise InvalidParameterException("kmsKeyId is required.")
    _check_key(self, group.name, key_id)
    group.kms_key_id = key_id
    return ""


def disassociate_kms_key(self: LogsResponse) -> str:
    group = _group(self, self._get_param("logGroupName"))
    group.kms_key_id = None
    return ""


def _checked_retention(original):
    @functools.wraps(original)
    def put_retention_policy(self: LogsResponse):
        days = self._get_param("retentionInDays")
        if days not in RETENTION_DAYS:
            raise InvalidParameterException(
                constraint=f"Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]",
                parameter="retentionInDays",
                value=days,
            )
        return original(self)

    return put_retention_policy


def _key_checked_create(original):
    @functools.wraps(original)
    def create_log_group(self: LogsResponse):
        key_id = self._get_param("kmsKeyId")
        if key_id:
            _check_key(self, self._get_param("logGroupName") or "", key_id)
        return original(self)

    return create_log_group


def _existing_group(original):
    @functools.wraps(original)
    def handler(self: LogsResponse):
        arn = self._get_param("resourceArn") or ""
        parts = arn.split(":", 6)
        if len(parts) == 7 and parts[2] == "logs" and parts[5] == "log-group":
            name = parts[6][:-2] if parts[6].endswith(":*") else parts[6]
            group = self.logs_backend.groups.get(name)
            if group is None or parts[3] != self.region or parts[4] != self.current_account:
                raise ResourceNotFoundException(f"The specified resource does not exist: {arn}")
        return original(self)

    return handler


def install() -> None:
    """Patch moto's CloudWatch Logs handlers."""
    LogsResponse.associate_kms_key = associate_kms_key
    LogsResponse.disassociate_kms_key = disassociate_kms_key
    LogsResponse.put_retention_policy = _checked_retention(LogsResponse.put_retention_policy)
    LogsResponse.create_log_group = _key_checked_create(LogsResponse.create_log_group)
    for name in ("tag_resource", "untag_resource", "list_tags_for_resource"):
        setattr(LogsResponse, name, _existing_group(getattr(LogsResponse, name)))
