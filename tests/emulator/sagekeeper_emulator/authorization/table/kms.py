"""KMS: every key operation needs the key policy (mandatory: a statement naming the account
root delegates to IAM, one naming the caller grants on its own). An operation on a key that
does not exist makes no check, so moto answers NotFoundException as AWS does. Aliases are
authorized on the alias and on the key they point to.
"""

from __future__ import annotations

from .. import resources
from ..evaluation import Policy
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

CALLER = "kms:CallerAccount"
VIA = "kms:ViaService"


def key_check(ctx: Ctx, action: str, key_id: str | None, *, keys=None, via: str | None = None, request_tags=None):
    """The check of `action` on the key `key_id` names (None when there is no such key)."""
    key = resources.kms_key(ctx.account, ctx.region, key_id)
    if key is None:
        return None
    values = {CALLER: [ctx.account], **(keys or {})}
    if via:
        values[VIA] = [via]
    return ctx.check(
        action,
        "key",
        key.arn,
        keys=values,
        request_tags=request_tags,
        resource_tags=key.tags,
        account=key.account,
        policy=Policy(f"key policy of {key.arn}", key.policy) if key.policy else None,
        policy_kind="required",
    )


def _key_operation(name: str, **keys):
    """An operation on one key; `keys` maps a service key to its value from the request."""
    action = f"kms:{name}"

    @operation("kms", name, grant(action, "key", CALLER, VIA, *RESOURCE_TAG, *keys))
    def entry(ctx: Ctx):
        values = {key: [value(ctx)] for key, value in keys.items()}
        check = key_check(ctx, action, ctx.param("KeyId"), keys=values)
        return [check] if check else []

    return entry


for _name in (
    "DescribeKey",
    "GetKeyPolicy",
    "GetKeyRotationStatus",
    "ListResourceTags",
    "EnableKey",
    "DisableKey",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "CancelKeyDeletion",
    "ListGrants",
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
):
    _key_operation(_name)
_key_operation(
    "PutKeyPolicy",
    **{"kms:BypassPolicyLockoutSafetyCheck": lambda ctx: "true" if ctx.param("BypassPolicyLockoutSafetyCheck") else "false"},
)
_key_operation(
    "ScheduleKeyDeletion",
    **{"kms:ScheduleKeyDeletionPendingWindowInDays": lambda ctx: str(ctx.param("PendingWindowInDays") or 30)},
)


@operation("kms", "TagResource", grant("kms:TagResource", "key", CALLER, VIA, *RESOURCE_TAG, *TAG_KEYS))
def tag_resource(ctx: Ctx):
    check = key_check(ctx, "kms:TagResource", ctx.param("KeyId"), request_tags=ctx.json_tags())
    return [check] if check else []


@operation("kms", "UntagResource", grant("kms:UntagResource", "key", CALLER, VIA, *RESOURCE_TAG, "aws:TagKeys"))
def untag_resource(ctx: Ctx):
    check = key_check(ctx, "kms:UntagResource", ctx.param("KeyId"), keys={"aws:TagKeys": ctx.param("TagKeys") or []})
    return [check] if check else []


@operation(
    "kms",
    "CreateGrant",
    grant(
        "kms:CreateGrant", "key", CALLER, VIA, *RESOURCE_TAG, "kms:GrantIsForAWSResource", "kms:GranteePrincipal", "kms:GrantOperations"
    ),
)
def create_grant(ctx: Ctx):
    keys = {
        "kms:GrantIsForAWSResource": ["false"],
        "kms:GranteePrincipal": [ctx.param("GranteePrincipal") or ""],
        "kms:GrantOperations": ctx.param("Operations") or [],
    }
    check = key_check(ctx, "kms:CreateGrant", ctx.param("KeyId"), keys=keys)
    return [check] if check else []


@operation("kms", "ListKeys", grant("kms:ListKeys"))
def list_keys(ctx: Ctx):
    return [ctx.check("kms:ListKeys", None)]


@operation("kms", "ListAliases", grant("kms:ListAliases"))
def list_aliases(ctx: Ctx):
    return [ctx.check("kms:ListAliases", None)]


@operation(
    "kms",
    "CreateKey",
    grant("kms:CreateKey", None, CALLER, *TAG_KEYS, "kms:KeySpec", "kms:KeyUsage", "kms:MultiRegion"),
    grant("kms:TagResource", "key", CALLER, *TAG_KEYS),
)
def create_key(ctx: Ctx):
    tags = ctx.json_tags()
    keys = {
        CALLER: [ctx.account],
        "kms:KeySpec": [ctx.param("KeySpec") or ctx.param("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"],
        "kms:KeyUsage": [ctx.param("KeyUsage") or "ENCRYPT_DECRYPT"],
        "kms:MultiRegion": ["true" if ctx.param("MultiRegion") else "false"],
    }
    checks = [ctx.check("kms:CreateKey", None, keys=keys, request_tags=tags)]
    if tags:
        # The key does not exist yet: AWS authorizes tagging it on the identity policies alone.
        checks.append(ctx.check("kms:TagResource", "key", ctx.arn("kms", "key/*"), keys={CALLER: [ctx.account]}, request_tags=tags))
    return checks


def _alias_checks(ctx: Ctx, action: str, alias: str, key_id: str | None):
    name = alias[len("alias/"):] if alias.startswith("alias/") else alias
    checks = [ctx.check(action, "alias", ctx.arn("kms", f"alias/{name}"), keys={CALLER: [ctx.account]})]
    if key := key_check(ctx, action, key_id):
        checks.append(key)
    return checks


@operation("kms", "CreateAlias", grant("kms:CreateAlias", "alias", CALLER), grant("kms:CreateAlias", "key", CALLER, VIA, *RESOURCE_TAG))
def create_alias(ctx: Ctx):
    return _alias_checks(ctx, "kms:CreateAlias", ctx.param("AliasName") or "", ctx.param("TargetKeyId"))


@operation("kms", "DeleteAlias", grant("kms:DeleteAlias", "alias", CALLER), grant("kms:DeleteAlias", "key", CALLER, VIA, *RESOURCE_TAG))
def delete_alias(ctx: Ctx):
    alias = ctx.param("AliasName") or ""
    return _alias_checks(ctx, "kms:DeleteAlias", alias, alias)
