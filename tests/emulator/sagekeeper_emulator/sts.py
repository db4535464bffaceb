"""AssumeRole as AWS does it: the role must exist and its trust policy must allow the caller.

moto (without its auth mode) hands out credentials for any role ARN, existing
or not, whatever the trust policy says and whatever ExternalId is sent. AWS
answers AccessDenied (403) unless the role exists in the target account (and
IAM has propagated it: iamPropagationSeconds), and an Allow statement of its
trust policy names the caller (`*`, the caller's account or account root, its
user or role ARN, or its session ARN) with conditions that hold, such as
`sts:ExternalId`. Successful calls keep moto's behaviour: the credentials are
attributed to the role's account.
"""

from __future__ import annotations

import functools
import re

from moto.sts.responses import TokenResponse

from .identity import Caller, current
from .policies import evaluate, parse, request_keys, visible_role
from .protocol import AwsError

_ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)")


def trust_allows(role_arn: str, caller: Caller, keys: dict[str, list[str]]) -> bool:
    """Whether `caller` may assume `role_arn` now (role visible, trust policy allows)."""
    match = _ROLE_ARN.fullmatch(role_arn or "")
    role = visible_role(*match.groups()) if match else None
    policy = parse(role.assume_role_policy_document) if role else None
    return bool(policy) and evaluate(policy, "sts:AssumeRole", role.arn, caller, keys) == "Allow"


def _checked_assume_role(original):
    @functools.wraps(original)
    def assume_role(self: TokenResponse):
        role_arn, external_id = self._get_param("RoleArn"), self._get_param("ExternalId")
        context = current()
        keys = request_keys(context)
        if external_id is not None:
            keys["sts:externalid"] = [external_id]
        if not trust_allows(role_arn, context.caller, keys):
            raise AwsError(
                "query",
                "sts",
                "AccessDenied",
                f"User: {context.caller.arn} is not authorized to perform: sts:AssumeRole "
                f"on resource: {role_arn}",
                403,
            )
        return original(self)

    return assume_role


def install() -> None:
    """Patch moto's STS AssumeRole handler with the existence and trust checks."""
    TokenResponse.assume_role = _checked_assume_role(TokenResponse.assume_role)
