"""STS: assuming a role needs the role's trust policy (a mandatory resource policy) and, across
accounts or where the trust names only the account, the caller's identity policy too.
GetCallerIdentity needs no permission at all (AWS: even an explicit deny does not stop it)."""

from __future__ import annotations

from .. import resources
from ..evaluation import Policy, parse
from . import Ctx, grant, operation


@operation("sts", "GetCallerIdentity")
def get_caller_identity(ctx: Ctx):
    return []


@operation("sts", "AssumeRole", grant("sts:AssumeRole", "role", "sts:ExternalId", "sts:RoleSessionName"))
def assume_role(ctx: Ctx):
    arn = ctx.param("RoleArn") or ""
    role = resources.role_from_arn(arn)
    trust = parse(role.assume_role_policy_document) if role else None
    keys = {"sts:ExternalId": [ctx.param("ExternalId")] if ctx.param("ExternalId") is not None else None}
    keys["sts:RoleSessionName"] = [ctx.param("RoleSessionName", "")]
    account = arn.split(":")[4] if arn.count(":") >= 5 else None
    return [
        ctx.check(
            "sts:AssumeRole",
            "role",
            role.arn if role else arn,
            keys=keys,
            account=account,
            policy=Policy(f"trust policy of role {role.name}", trust) if trust else None,
            policy_kind="required",
        )
    ]
