"""What authorization needs to know about principals and resources, read from moto's state.

A caller's identity policies (inline and attached managed, a user's groups'
too) and permissions boundary; a resource's owning account, its resource
policy and its tags (for aws:ResourceTag). Reads only; a resource that does
not exist yet (or any more) simply has no policy and no tags.
"""

from __future__ import annotations

import re

from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.logs.models import logs_backends
from moto.s3.models import s3_backends

from .evaluation import Policy, parse

_ROLE_ARN = re.compile(r"arn:[^:]+:iam::(\d{12}):role/(?:.*/)?([^/]+)")
_USER_ARN = re.compile(r"arn:[^:]+:iam::(\d{12}):user/(?:.*/)?([^/]+)")


def _iam(account: str):
    return iam_backends[account]["aws"]


def role(account: str, name: str):
    """The IAM role `name` of `account`, or None."""
    return next((r for r in list(_iam(account).get_roles()) if r.name == name), None)


def role_from_arn(arn: str):
    """The IAM role an ARN names, or None."""
    match = _ROLE_ARN.fullmatch(arn or "")
    return role(*match.groups()) if match else None


def principal_tags(principal_arn: str) -> dict[str, list[str]]:
    """aws:PrincipalTag/<key> of a role's (sessions': their role's) or user's tags (lower-case
    names); session tags are not modelled."""
    entity = None
    if match := _ROLE_ARN.fullmatch(principal_arn or ""):
        entity = role(*match.groups())
    elif match := _USER_ARN.fullmatch(principal_arn or ""):
        entity = _iam(match.group(1)).users.get(match.group(2))
    tags = getattr(entity, "tags", None) or {}
    pairs = tags.values() if isinstance(tags, dict) else tags
    return {f"aws:principaltag/{t['Key']}".lower(): [t["Value"]] for t in pairs if isinstance(t, dict) and "Key" in t}


def role_arn(account: str, name: str, path: str = "/") -> str:
    """The ARN of role `name` (its real path when it exists)."""
    found = role(account, name)
    return found.arn if found else f"arn:aws:iam::{account}:role{path}{name}"


def managed_policy(account: str, arn: str) -> Policy | None:
    """The default version of a managed policy, or None if it does not exist."""
    policy = _iam(account).managed_policies.get(arn)
    if policy is None:
        return None
    version = next((v for v in policy.versions if v.is_default), None)
    document = parse(version.document) if version else None
    return Policy(arn, document or {})


def _tags(tags) -> dict[str, str]:
    if isinstance(tags, dict):  # moto keeps some tags as {key: {"Key", "Value"}}
        return {k: (v.get("Value", "") if isinstance(v, dict) else str(v)) for k, v in tags.items()}
    return {t["Key"]: t.get("Value", "") for t in tags or []}


def role_tags(found) -> dict[str, str]:
    """A role's tags."""
    return _tags(found.tags) if found else {}


def identity_policies(account: str, principal_arn: str) -> tuple[list[Policy], Policy | None]:
    """The identity policies of a role or user, and its permissions boundary (empty if gone)."""
    policies: list[Policy] = []
    boundary_arn = None
    if match := _ROLE_ARN.fullmatch(principal_arn):
        entity = role(*match.groups())
        kind = "role"
    elif match := _USER_ARN.fullmatch(principal_arn):
        entity = _iam(account).users.get(match.group(2))
        kind = "user"
    else:
        return [], None
    if entity is None:
        return [], None
    holders = [entity]
    if kind == "user":
        holders += _iam(account).get_groups_for_user(entity.name)
    for holder in holders:
        label = f"{type(holder).__name__.lower()} {holder.name}"
        for name, document in dict(holder.policies).items():
            policies.append(Policy(f"{label} inline policy {name}", parse(document) or {}))
        for arn in list(holder.managed_policies):
            if found := managed_policy(account, arn):
                policies.append(found)
    boundary_arn = getattr(entity, "permissions_boundary_arn", None)
    boundary = None
    if boundary_arn:
        # A boundary that names no policy allows nothing.
        boundary = managed_policy(account, boundary_arn) or Policy(boundary_arn, {})
    return policies, boundary


# --- KMS ----------------------------------------------------------------------------


class Key:
    """A KMS key as authorization sees it."""

    def __init__(self, arn: str, account: str, policy: dict | None, tags: dict[str, str], state: str | None = None):
        self.arn, self.account, self.policy, self.tags, self.state = arn, account, policy, tags, state


def kms_key(account: str, region: str, key_id: str | None) -> Key | None:
    """The key a KeyId (id, ARN, alias name or alias ARN) names; None if unknown."""
    if not key_id:
        return None
    if key_id.startswith("arn:"):
        parts = key_id.split(":")
        if len(parts) >= 6:
            region, account = parts[3], parts[4]
    try:
        backend = kms_backends[account][region]
        raw = backend.any_id_to_key_id(key_id)
        key = backend.keys.get(raw)
    except Exception:  # an unknown alias or region; moto raises its own NotFound later
        key = None
    if key is None:
        if key_id.startswith("arn:") and ":key/" in key_id:
            return Key(key_id, account, None, {})
        return None
    tags = {t["TagKey"]: t["TagValue"] for t in backend.list_resource_tags(key.id).get("Tags", [])}
    return Key(key.arn, account, parse(key.policy), tags, key.key_state)


# --- S3 -----------------------------------------------------------------------------


def bucket(name: str):
    """moto's bucket `name` in whichever account owns it, or None."""
    owner = s3_backends.bucket_accounts.get(name)
    if not owner:
        return None
    partition, account = owner
    return s3_backends[account][partition].buckets.get(name)


def bucket_default_key(found) -> str | None:
    """The KMS key of a bucket's default SSE-KMS encryption, if any."""
    rules = ((found.encryption or {}).get("Rule") if found else None) or []
    for rule in rules if isinstance(rules, list) else [rules]:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") == "aws:kms":
            return default.get("KMSMasterKeyID") or "alias/aws/s3"
    return None


def object_key(found, key: str, version: str | None):
    """moto's stored object (a version when given), or None."""
    if found is None:
        return None
    if version is None:
        return found.keys.get(key)
    return next((v for v in found.keys.getlist(key, default=[]) if str(v.version_id) == str(version)), None)


# --- EC2 ----------------------------------------------------------------------------


def ec2_tags(account: str, region: str, resource_id: str) -> dict[str, str]:
    """The tags of an EC2 resource."""
    return dict(ec2_backends[account][region].tags.get(resource_id, {}))


def vpc_endpoint_policy(endpoint_id: str) -> Policy | None:
    """The policy of VPC endpoint `endpoint_id`, in whichever account and region holds it; None
    if there is no such endpoint."""
    for account in list(ec2_backends.keys()):
        regional = ec2_backends[account]
        for region in list(dict.keys(regional)):
            endpoint = dict.get(regional, region).vpc_end_points.get(endpoint_id)
            if endpoint is not None:
                return Policy(f"VPC endpoint policy of {endpoint_id}", parse(endpoint.policy_document) or {})
    return None


def route_table_of_association(account: str, region: str, association_id: str) -> tuple[str | None, str | None]:
    """(route table id, subnet id) of a route table association."""
    backend = ec2_backends[account][region]
    for table in list(backend.route_tables.values()):
        associations = dict(table._associations)
        if association_id in associations:
            return table.id, associations[association_id]
    return None, None


# --- SageMaker ----------------------------------------------------------------------

_RECORDS = {"user-profile": "UserProfileArn", "space": "SpaceArn", "app": "AppArn"}


def sagemaker_tags(arn: str) -> dict[str, str]:
    """The tags of a SageMaker resource (moto's or the extension's records); {} if unknown."""
    from moto.sagemaker.models import sagemaker_backends

    from ..sagemaker.core import table

    parts = arn.split(":", 5)
    if len(parts) != 6:
        return {}
    region, account, resource = parts[3], parts[4], parts[5]
    kind, _, name = resource.partition("/")
    backend = sagemaker_backends[account][region]
    try:
        if kind in _RECORDS:
            record = next((r for r in table(kind, account, region).values() if r[_RECORDS[kind]] == arn), None)
            return _tags(record["Tags"]) if record else {}
        if kind == "model-package":
            found = backend.model_packages.get(arn)
        elif kind == "domain":
            found = backend.domains.get(name)
        else:
            found = backend._get_resource_from_arn(arn)
    except Exception:  # an unknown resource has no tags
        return {}
    return _tags(getattr(found, "tags", None)) if found is not None else {}


def group_policy(account: str, region: str, group: str) -> dict | None:
    """A model package group's resource policy, or None."""
    from ..sagemaker.core import table

    return parse(table("group-policy", account, region).get(group) or "")


def next_version(account: str, region: str, group: str) -> int:
    """The version number CreateModelPackage will give in `group` (numbers are never reused)."""
    from moto.sagemaker.models import sagemaker_backends

    from ..sagemaker.core import table

    backend = sagemaker_backends[account][region]
    live = [p.model_package_version or 0 for p in list(backend.model_packages.values()) if p.model_package_group_name == group]
    return max([table("group-version", account, region).get(group, 0), *live]) + 1


# --- CloudWatch Logs -------------------------------------------------------------------


def log_group(account: str, region: str, name: str):
    """moto's log group `name`, or None."""
    try:
        return logs_backends[account][region].groups.get(name)
    except KeyError:  # a region moto does not know
        return None


def log_group_tags(account: str, region: str, name: str) -> dict[str, str]:
    """The tags of log group `name` (empty if it does not exist)."""
    backend = logs_backends[account][region]
    found = backend.groups.get(name)
    return dict(backend.list_tags_for_resource(found.arn)) if found else {}
