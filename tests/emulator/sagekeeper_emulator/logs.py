"""CloudWatch Logs where moto falls short of AWS.

- AssociateKmsKey / DisassociateKmsKey (moto: NotImplemented) set and clear a log group's
  `kmsKeyId`, which DescribeLogGroups shows; an unknown group is ResourceNotFoundException.
- PutRetentionPolicy refuses a value outside CloudWatch's allowed list with
  InvalidParameterException (moto accepts any number).
- TagResource / UntagResource / ListTagsForResource on a log-group ARN whose group does not
  exist answer ResourceNotFoundException (moto tags any ARN).
"""

from __future__ import annotations

import functools

from moto.logs.exceptions import InvalidParameterException, ResourceNotFoundException
from moto.logs.responses import LogsResponse

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)


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
    for name in ("tag_resource", "untag_resource", "list_tags_for_resource"):
        setattr(LogsResponse, name, _existing_group(getattr(LogsResponse, name)))
