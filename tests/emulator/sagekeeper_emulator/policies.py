"""Resource policies as AWS treats them: principals validated, conditions evaluated.

What moto gets wrong, and what this module changes:
- KMS key policies (CreateKey, PutKeyPolicy), S3 bucket policies (PutBucketPolicy)
  and IAM trust policies (CreateRole, UpdateAssumeRolePolicy) naming an AWS
  principal that does not exist are accepted by moto; AWS refuses them
  (MalformedPolicyDocumentException / MalformedPolicy / MalformedPolicyDocument).
  A role younger than the account's iamPropagationSeconds counts as unknown
  (IAM eventual consistency).
- moto evaluates bucket policies for object operations even without auth, but
  ignores Principal and Condition, so every conditional Deny denies always, with
  a bare 403. Here Deny statements are evaluated with Principal, Action,
  Resource and Condition (aws:PrincipalArn, aws:SecureTransport,
  aws:SourceVpce, aws:ViaAWSService, aws:PrincipalAccount, aws:PrincipalOrgID,
  aws:PrincipalOrgPaths, and S3's
  s3:x-amz-server-side-encryption and s3:x-amz-server-side-encryption-aws-kms-key-id). The middleware turns
  moto's bare 403 into an AccessDenied XML error.
- moto's KMS DescribeKey check has the same flaw (any Deny of kms:* denies); it
  is replaced by the same evaluation.
"""

from __future__ import annotations

import functools
import inspect
import re
from datetime import timedelta

from moto.core.exceptions import JsonRESTError
from moto.core.utils import utcnow
from moto.iam.access_control import PermissionResult
from moto.iam.exceptions import MalformedPolicyDocument
from moto.iam.models import IAMBackend, iam_backends
from moto.kms import responses as kms_responses
from moto.kms.exceptions import AccessDeniedException
from moto.kms.models import KmsBackend
from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeBucket, S3Backend

from . import config, organizations
from .authorization.evaluation import Check, Evaluator, Principal, parse, statement_principal, statements
from .identity import Caller, RequestContext, current

_ACCOUNT = re.compile(r"\d{12}")
_IAM_ENTITY = re.compile(r"arn:aws:iam::(\d{12}):(user|role)/(?:.*/)?([^/]+)")
_ACCOUNT_ROOT = re.compile(r"arn:aws:iam::(\d{12}):root")
_SESSION = re.compile(r"arn:aws:sts::(\d{12}):assumed-role/([^/]+)/[^/]+")
# moto names the bucket-policy action after the HTTP method; AWS authorizes these as:
_S3_ACTIONS = {"s3:HeadObject": "s3:GetObject", "s3:PostObject": "s3:PutObject"}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _values(value) -> list[str]:
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(value)]


def _statements(policy: dict) -> list[dict]:
    return [s for s in _as_list(policy.get("Statement", [])) if isinstance(s, dict)]


# --- principals --------------------------------------------------------------


def visible_role(account: str, name: str):
    """The IAM role, or None if it doesn't exist or is younger than IAM propagation."""
    # list(): other request threads may be adding roles (moto's own lookups do the same)
    role = next((r for r in list(iam_backends[account]["aws"].get_roles()) if r.name == name), None)
    delay = config.registry.get(account).iamPropagationSeconds
    if role is None or utcnow() - role.create_date < timedelta(seconds=delay):
        return None
    return role


def principal_exists(principal: str) -> bool:
    """Whether AWS would accept this AWS principal in a resource policy."""
    if principal == "*" or _ACCOUNT.fullmatch(principal) or _ACCOUNT_ROOT.fullmatch(principal):
        return True
    if entity := _IAM_ENTITY.fullmatch(principal):
        account, kind, name = entity.groups()
        if kind == "role":
            return visible_role(account, name) is not None
        return name in iam_backends[account]["aws"].users
    if session := _SESSION.fullmatch(principal):
        return visible_role(*session.groups()) is not None
    return False


def invalid_principals(policy: dict) -> list[str]:
    """The AWS principals named by the policy that do not exist."""
    named = []
    for statement in _statements(policy):
        for key in ("Principal", "NotPrincipal"):
            principal = statement.get(key)
            if isinstance(principal, dict):
                named += _values(principal.get("AWS", []))
    return [p for p in named if not principal_exists(p)]


# --- resource-policy evaluation (the one engine: authorization.evaluation) ---------------

_ENGINE = Evaluator()


def _principal(caller: Caller) -> Principal:
    return Principal(caller.account, caller.arn, caller.principal_arn)


def conditions_match(conditions: dict, keys: dict[str, list[str]]) -> bool:
    """AND across operators and keys, OR across a key's values; key names case-insensitive.
    A condition that cannot be judged (an unknown operator) does not match."""
    return _ENGINE.conditions(conditions, keys, []) is True


def evaluate(policy: dict, action: str, resource: str, caller: Caller, keys: dict) -> str | None:
    """A resource policy's verdict for the caller: 'Deny' if a matching Deny applies, else
    'Allow' if an Allow does, else None."""
    check = Check(action, resource, keys)
    verdict = None
    for statement in statements(policy):
        form = statement_principal(statement, _principal(caller))
        if not _ENGINE.statement(statement, check, form).applies:
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow":
            verdict = "Allow"
    return verdict


def _principal_tags(principal_arn: str) -> dict[str, list[str]]:
    from .authorization import resources  # late: authorization imports this module's users

    return resources.principal_tags(principal_arn)


def request_keys(context: RequestContext) -> dict[str, list[str]]:
    """Global condition keys of the current request (lower-case names)."""
    headers, caller = context.headers, context.caller
    secure = headers.get("x-emulator-secure-transport", "true").lower() != "false"
    keys = {
        "aws:principalarn": [caller.principal_arn],
        "aws:principalaccount": [caller.account],
        "aws:securetransport": ["true" if secure else "false"],
        "aws:viaawsservice": ["false"],
        **organizations.principal_org_keys(caller.account),
        **_principal_tags(caller.principal_arn),
    }
    if "x-emulator-source-vpce" in headers:
        keys["aws:sourcevpce"] = [headers["x-emulator-source-vpce"]]
    # S3's encryption keys come from the request's own headers, when it names them.
    for header in ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"):
        if header in headers:
            keys[f"s3:{header}"] = [headers[header]]
    return keys


# --- moto hooks ----------------------------------------------------------------


def _bucket_permission(bucket: FakeBucket, action: str, resource: str) -> PermissionResult:
    policy = parse(bucket.policy) if bucket.policy else None
    context = current()
    # The account-admin identity a test arranges scenarios with is exempt, as from IAM evaluation.
    if policy is None or context.caller.admin:
        return PermissionResult.NEUTRAL
    verdict = evaluate(
        policy, _S3_ACTIONS.get(action, action), resource, context.caller, request_keys(context)
    )
    return {"Deny": PermissionResult.DENIED, "Allow": PermissionResult.PERMITTED}.get(
        verdict, PermissionResult.NEUTRAL
    )


def _kms_key_policy_check(key, action: str) -> None:
    policy, context = parse(key.policy), current()
    if context.caller.admin:
        return
    if policy and evaluate(policy, action, key.arn, context.caller, request_keys(context)) == "Deny":
        raise AccessDeniedException(
            f"User: {context.caller.arn} is not authorized to perform: {action} on resource: "
            f"{key.arn} with an explicit deny in a resource-based policy"
        )


def _check_bucket_policy(document) -> None:
    policy = parse(document)
    if policy is None:
        raise S3ClientError("MalformedPolicy", "Policies must be valid JSON and the first byte must be '{'")
    if invalid_principals(policy):
        raise S3ClientError("MalformedPolicy", "Invalid principal in policy")


def _check_key_policy(document) -> None:
    if document is None:
        return
    policy = parse(document)
    if policy is None:
        raise JsonRESTError("MalformedPolicyDocumentException", "The policy is not valid JSON.")
    if invalid_principals(policy):
        raise JsonRESTError(
            "MalformedPolicyDocumentException",
            "Policy contains a statement with one or more invalid principals.",
        )


def _check_trust_policy(document) -> None:
    policy = parse(document)
    bad = invalid_principals(policy) if policy else []
    if bad:
        raise MalformedPolicyDocument(f'Invalid principal in policy: "AWS":"{bad[0]}"')


def _validating(original, check, parameter: str):
    """Wrap a moto backend method so that its policy parameter is checked first."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def method(self, *args, **kwargs):
        check(signature.bind(self, *args, **kwargs).arguments.get(parameter))
        return original(self, *args, **kwargs)

    return method


def install() -> None:
    """Patch moto: principal validation, and condition-aware Deny evaluation."""
    S3Backend.put_bucket_policy = _validating(S3Backend.put_bucket_policy, _check_bucket_policy, "policy")
    KmsBackend.create_key = _validating(KmsBackend.create_key, _check_key_policy, "policy")
    KmsBackend.put_key_policy = _validating(KmsBackend.put_key_policy, _check_key_policy, "policy")
    IAMBackend.create_role = _validating(
        IAMBackend.create_role, _check_trust_policy, "assume_role_policy_document"
    )
    IAMBackend.update_assume_role_policy = _validating(
        IAMBackend.update_assume_role_policy, _check_trust_policy, "policy_document"
    )
    FakeBucket.get_permission = _bucket_permission
    kms_responses.validate_policy = _kms_key_policy_check
