"""IAM evaluation: every request of an emulated account's principal is authorized as AWS would.

The middleware calls `authorize` before moto sees a request. For the caller's
account, the mode decides what happens:

- `off` (the default unless the server starts with `--iam-evaluation`): nothing
  is evaluated; the extension's older, narrower checks (role trust, bucket-policy
  denies, cross-account model packages) still apply.
- `audit`: every request is evaluated and the verdict recorded in the call log,
  but nothing is refused.
- `enforce`: a request that AWS would refuse is refused, in the service's error
  format with AWS's message shape.

Under evaluation, a request signed with an access key the emulator did not
issue, or attributed by moto's account header, is refused. The account-admin
identity a test uses to set up a scenario is exempt: credentials asked for with
`{"admin": true}` on `/_emulator/credentials`, and nothing else.

A request carrying `x-emulator-source-vpce` passes through that VPC endpoint:
its policy must allow each authorization too.

The operation table (`table/`) names the authorizations each operation needs;
an operation missing from it is refused. `evaluation` decides each one.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .. import organizations
from ..identity import Caller
from . import reference, resources, table
from .evaluation import Check, Decision, Evaluator, Principal, decide, through_endpoint

MODES = ("off", "audit", "enforce")
log = logging.getLogger("sagekeeper_emulator.iam")


class Modes:
    """The evaluation mode: a default, and per-account choices; thread-safe."""

    def __init__(self, default: str = "off") -> None:
        self._lock = threading.Lock()
        self.server_default = default
        self._default = default
        self._accounts: dict[str, str] = {}

    def set(self, mode: str, accounts: list[str] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        with self._lock:
            if accounts is None:
                self._default = mode
            else:
                self._accounts.update(dict.fromkeys(accounts, mode))

    def of(self, account: str) -> str:
        with self._lock:
            return self._accounts.get(account, self._default)

    def as_json(self) -> dict:
        with self._lock:
            return {"mode": self._default, "accounts": dict(self._accounts)}

    def reset(self) -> None:
        with self._lock:
            self._default = self.server_default
            self._accounts.clear()


modes = Modes()
# Access keys of account-admin identities, exempt from evaluation.
admin_keys: set[str] = set()


# Which service keys are known is decided per check, from the table's declaration (_validate).
evaluator = Evaluator()


@dataclass
class Verdict:
    """What authorization decided for one request, for the call log."""

    decision: str  # NotEvaluated | Exempt | Allow | Deny | WouldDeny
    statement: str | None = None
    action: str | None = None
    resource: str | None = None
    message: str | None = None
    code: str | None = None
    status: int = 403
    unknown: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.decision == "Deny"

    def as_log(self) -> dict:
        entry = {"decision": self.decision}
        if self.statement:
            entry["decidedBy"] = self.statement
        if self.decision in ("Deny", "WouldDeny"):
            entry.update(action=self.action, resource=self.resource, message=self.message)
        if self.unknown:
            entry["unknown"] = self.unknown
        return entry


_ACCESS_DENIED = {"json": ("AccessDeniedException", 400), "ec2": ("UnauthorizedOperation", 403)}
# Services on a JSON or CBOR protocol that keep their query protocol's error codes.
_QUERY_COMPATIBLE = {"monitoring"}
_INVALID_KEY = {
    "json": ("UnrecognizedClientException", 400, "The security token included in the request is invalid."),
    "ec2": ("AuthFailure", 401, "AWS was not able to validate the provided access credentials"),
    "s3": ("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."),
    "query": ("InvalidClientTokenId", 403, "The security token included in the request is invalid."),
}


def global_keys(caller: Caller, request, check: Check) -> dict[str, list[str]]:
    """The global condition keys of a request, for one check (lower-case names)."""
    headers = request.headers
    now = datetime.now(timezone.utc)
    keys = {
        "aws:principalarn": [caller.principal_arn],
        "aws:principalaccount": [caller.account],
        "aws:principaltype": ["AssumedRole" if caller.kind == "session" else "User"],
        "aws:resourceaccount": [check.resource_account or caller.account],
        "aws:requestedregion": [request.region or "us-east-1"],
        "aws:securetransport": [
            "false" if headers.get("x-emulator-secure-transport", "true").lower() == "false" else "true"
        ],
        "aws:viaawsservice": ["false"],
        "aws:currenttime": [now.strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:epochtime": [str(int(now.timestamp()))],
    }
    if caller.kind == "user":
        keys["aws:username"] = [caller.principal_arn.rsplit("/", 1)[-1]]
    # aws:PrincipalOrgID and aws:PrincipalOrgPaths, and the resource's aws:ResourceOrgID and
    # aws:ResourceOrgPaths, read now: a MoveAccount shows at the next request.
    keys.update(organizations.principal_org_keys(caller.account))
    keys.update(organizations.resource_org_keys(keys["aws:resourceaccount"][0]))
    keys.update(resources.principal_tags(caller.principal_arn))
    if "x-emulator-source-vpce" in headers:
        keys["aws:sourcevpce"] = [headers["x-emulator-source-vpce"]]
    via = check.keys.get("kms:viaservice")
    if via:
        # A call a service makes on the caller's behalf comes from the service, not the VPC.
        keys["aws:viaawsservice"] = ["true"]
        keys["aws:calledvia"] = [via[0].split(".")[0] + ".amazonaws.com"]
        keys.pop("aws:sourcevpce", None)
    return keys


def _message(caller: Caller, check: Check, decision: Decision) -> str:
    target = f" on resource: {check.resource}" if check.resource != "*" else ""
    return f"User: {caller.arn} is not authorized to perform: {check.action}{target} {decision.reason}"


def _validate(op: table.Operation, check: Check) -> None:
    """A check must be one the operation declares, with only declared (or global) keys; the
    declaration then says which service keys are known for it."""
    declared = [g for g in op.grants if g.action == check.action and g.resource_type == check.resource_type]
    if not declared:
        raise AssertionError(f"{op.service}:{op.name} made an undeclared check {check.action} on {check.resource_type}")
    patterns = [table.key_pattern(k) for g in declared for k in g.keys]
    extra = [k for k in check.keys if not any(p.fullmatch(k) for p in patterns)]
    if extra:
        raise AssertionError(f"{op.service}:{op.name} supplied undeclared keys {extra} for {check.action}")
    # A key the table declares is judged with the value it supplies (or as absent). A service key
    # the Service Authorization Reference does not list for the action is absent too: AWS never
    # sets it there (a `ForAnyValue` deny on it does not apply, as in AWS). A listed key the table
    # does not declare stays unknown: a gap of the table never widens access.
    listed = reference.condition_keys(check.action)
    check.declared = lambda key: any(p.fullmatch(key) for p in patterns) or (
        listed is not None and not reference.lists(listed, key)
    )


def authorize(request, caller: Caller) -> Verdict:
    """The verdict on one request (see the module docstring for the modes)."""
    mode = modes.of(caller.account)
    if mode == "off":
        return Verdict("NotEvaluated")
    if caller.admin:
        return Verdict("Exempt")
    protocol = request.protocol
    if caller.kind == "anonymous":
        code, status, message = _INVALID_KEY[protocol]
        return _refuse(mode, Verdict("Deny", message=message, code=code, status=status))
    code, status = _ACCESS_DENIED.get(protocol, ("AccessDenied", 403))
    if request.service in _QUERY_COMPATIBLE:
        # Served in JSON or CBOR, but the errors keep their query codes (awsQueryCompatible).
        code, status = "AccessDenied", 403
    op = table.lookup(request.service, request.operation)
    if op is None:
        message = (
            f"User: {caller.arn} is not authorized to perform: {request.service}:{request.operation} because "
            "the emulator's authorization table has no entry for this operation"
        )
        return _refuse(mode, Verdict("Deny", action=f"{request.service}:{request.operation}", message=message, code=code, status=status))
    principal = Principal(caller.account, caller.arn, caller.principal_arn)
    identity, boundary = resources.identity_policies(caller.account, caller.principal_arn)
    allowed_by, unknown = None, []
    for check in op.checks(table.Ctx(request, caller)):
        _validate(op, check)
        check.keys = {**global_keys(caller, request, check), **check.keys}
        decision = decide(evaluator, principal, check, identity, boundary)
        if decision.allowed and "aws:sourcevpce" in check.keys:
            # A request through a VPC endpoint (a test says so with `x-emulator-source-vpce`).
            endpoint = resources.vpc_endpoint_policy(check.keys["aws:sourcevpce"][0])
            if endpoint is not None:
                decision = through_endpoint(evaluator, principal, check, endpoint)
        unknown += decision.unknown
        if decision.unknown:
            log.warning("iam evaluation of %s on %s met %s", check.action, check.resource, ", ".join(decision.unknown))
        if not decision.allowed:
            verdict = Verdict(
                "Deny",
                statement=decision.statement,
                action=check.action,
                resource=check.resource,
                message=_message(caller, check, decision),
                code=code,
                status=status,
                unknown=unknown,
            )
            return _refuse(mode, verdict)
        allowed_by = allowed_by or decision.statement
    return Verdict("Allow", statement=allowed_by, unknown=unknown)


def response_message(request, verdict: Verdict) -> str:
    """The message a refusal carries in its response. EC2 wraps the refusal as AWS does: a fixed
    sentence, the plain refusal, and an opaque encoded authorization failure message (here the
    base64 of the decision, which `sts:DecodeAuthorizationMessage` would decode in AWS); the call
    log keeps the plain refusal."""
    if request.protocol != "ec2" or verdict.code != "UnauthorizedOperation":
        return verdict.message
    detail = json.dumps({"allowed": False, "explicitDeny": bool(verdict.statement), "action": verdict.action,
                         "resource": verdict.resource, "statement": verdict.statement})
    encoded = base64.urlsafe_b64encode(detail.encode()).decode().rstrip("=")
    return (
        f"You are not authorized to perform this operation. {verdict.message} "
        f"Encoded authorization failure message: {encoded}"
    )


def _refuse(mode: str, verdict: Verdict) -> Verdict:
    if mode == "audit":
        verdict.decision = "WouldDeny"
        log.warning("iam evaluation (audit): %s", verdict.message)
    return verdict


def reset() -> None:
    """Forget per-account modes and admin identities."""
    modes.reset()
    admin_keys.clear()


def install() -> None:
    """Load the operation table."""
    table.install()
