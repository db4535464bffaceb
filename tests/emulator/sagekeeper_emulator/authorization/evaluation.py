"""AWS's policy evaluation logic, as pure functions of policies and one request.

Follows the IAM User Guide's "Policy evaluation logic" and "Cross-account policy
evaluation logic":

1. An explicit Deny in any applicable policy (identity, permissions boundary,
   resource) denies.
2. Within one account, an Allow from the caller's identity policies (limited by
   its permissions boundary) allows; so does an Allow in the resource's policy
   that names the caller. A resource policy naming an IAM user or a role
   *session* grants directly; one naming the *role* is still limited by the
   role's boundary; one naming the account (its id or root) delegates to IAM,
   so the identity policies must allow.
3. Across accounts, the identity policies (within the boundary) and the
   resource's policy must both allow.
4. A request through a VPC endpoint must also be allowed by the endpoint's
   policy (`through_endpoint`).
5. KMS key policies and role trust policies are mandatory: without an Allow in
   them, identity policies grant nothing, even within the account.
6. What an AWS service principal may do under a resource policy (a key policy
   for CloudWatch Logs, a trust policy for the flow logs service) is
   `service_allows`: an Allow naming the service (or `*`) and no Deny.

Condition operators: String*, Numeric*, Date*, Bool, BinaryEquals, IpAddress,
NotIpAddress, Arn*, Null, each with `IfExists`, and the `ForAnyValue:` and
`ForAllValues:` set qualifiers. Policy variables (`${aws:PrincipalAccount}`,
`${aws:username}`, `${*}`...) are replaced in Resource, NotResource and
condition values. An operator, a condition key or a policy variable the
evaluator does not know never widens access: an Allow statement using it does
not apply and a Deny statement using it does; each case is reported.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

# Global condition keys AWS sets (or may set) on requests; a policy using one of
# these is judged on whether this request carries it, never refused as unknown.
GLOBAL_KEYS = frozenset(
    k.lower()
    for k in (
        "aws:CalledVia",
        "aws:CalledViaFirst",
        "aws:CalledViaLast",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:FederatedProvider",
        "aws:MultiFactorAuthAge",
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalIsAWSService",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalServiceName",
        "aws:PrincipalServiceNamesList",
        "aws:PrincipalType",
        "aws:RequestedRegion",
        "aws:ResourceAccount",
        "aws:ResourceOrgID",
        "aws:ResourceOrgPaths",
        "aws:SecureTransport",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceIp",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:TagKeys",
        "aws:TokenIssueTime",
        "aws:userid",
        "aws:username",
        "aws:UserAgent",
        "aws:ViaAWSService",
        "aws:VpcSourceIp",
    )
)
# Key families with a tag (or similar) name after the slash.
GLOBAL_KEY_PREFIXES = ("aws:requesttag/", "aws:resourcetag/", "aws:principaltag/")

_STRING = {
    "StringEquals": (False, lambda p, v: p == v),
    "StringNotEquals": (True, lambda p, v: p == v),
    "StringEqualsIgnoreCase": (False, lambda p, v: p.lower() == v.lower()),
    "StringNotEqualsIgnoreCase": (True, lambda p, v: p.lower() == v.lower()),
    "StringLike": (False, lambda p, v: _glob(p, v)),
    "StringNotLike": (True, lambda p, v: _glob(p, v)),
    "ArnEquals": (False, lambda p, v: _arn_matches(p, v)),
    "ArnLike": (False, lambda p, v: _arn_matches(p, v)),
    "ArnNotEquals": (True, lambda p, v: _arn_matches(p, v)),
    "ArnNotLike": (True, lambda p, v: _arn_matches(p, v)),
    "Bool": (False, lambda p, v: p.lower() == v.lower()),
    "BinaryEquals": (False, lambda p, v: p == v),
    "NumericEquals": (False, lambda p, v: _number(p, v, lambda a, b: a == b)),
    "NumericNotEquals": (True, lambda p, v: _number(p, v, lambda a, b: a == b)),
    "NumericLessThan": (False, lambda p, v: _number(p, v, lambda a, b: b < a)),
    "NumericLessThanEquals": (False, lambda p, v: _number(p, v, lambda a, b: b <= a)),
    "NumericGreaterThan": (False, lambda p, v: _number(p, v, lambda a, b: b > a)),
    "NumericGreaterThanEquals": (False, lambda p, v: _number(p, v, lambda a, b: b >= a)),
    "DateEquals": (False, lambda p, v: _date(p, v, lambda a, b: a == b)),
    "DateNotEquals": (True, lambda p, v: _date(p, v, lambda a, b: a == b)),
    "DateLessThan": (False, lambda p, v: _date(p, v, lambda a, b: b < a)),
    "DateLessThanEquals": (False, lambda p, v: _date(p, v, lambda a, b: b <= a)),
    "DateGreaterThan": (False, lambda p, v: _date(p, v, lambda a, b: b > a)),
    "DateGreaterThanEquals": (False, lambda p, v: _date(p, v, lambda a, b: b >= a)),
    "IpAddress": (False, lambda p, v: _ip(p, v)),
    "NotIpAddress": (True, lambda p, v: _ip(p, v)),
}
KNOWN_OPERATORS = frozenset(_STRING) | {"Null"}

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LITERALS = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True)
class Principal:
    """The caller as policies see it."""

    account: str
    arn: str  # the session ARN for assumed roles, else the user ARN
    principal_arn: str  # aws:PrincipalArn: the role ARN for sessions, the user ARN for users

    @property
    def is_session(self) -> bool:
        return ":assumed-role/" in self.arn


@dataclass(frozen=True)
class Policy:
    """One policy document and what it is, for messages and the call log."""

    name: str  # e.g. "role sk-x inline policy main", "arn:aws:iam::1:policy/b", "bucket policy of b"
    document: dict


@dataclass
class Check:
    """One authorization AWS makes: an action on a resource, with the request's keys."""

    action: str
    resource: str  # an ARN, or "*" for actions without a resource type
    keys: dict[str, list[str]] = field(default_factory=dict)  # lower-case names
    resource_type: str | None = None  # as the Service Authorization Reference names it
    resource_account: str | None = None  # None: the caller's account (or no resource)
    resource_policy: Policy | None = None
    # "none": the resource type has no resource policy; "optional": S3 buckets,
    # SageMaker groups; "required": KMS key policies and role trust policies.
    resource_policy_kind: str = "none"
    # The service keys AWS sets for this authorization (the operation table's declaration); a
    # service key outside it is unknown here, even if other operations set it.
    declared: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class Decision:
    """The verdict on one check and the statement that decided it."""

    allowed: bool
    reason: str = ""  # AWS's wording after the resource: "because no ..." / "with an explicit deny in ..."
    statement: str | None = None  # "<policy name>: <Sid or #index>"
    unknown: tuple[str, ...] = ()  # operators, keys or variables met that the evaluator does not know


@dataclass
class _Match:
    applies: bool
    unknown: list[str]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def statements(document: dict) -> list[dict]:
    """The statements of a policy document (a single statement may stand alone)."""
    return [s for s in _as_list(document.get("Statement", [])) if isinstance(s, dict)]


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _arn_matches(pattern: str, arn: str) -> bool:
    """ARN matching: each of the six colon-separated parts is matched on its own."""
    if pattern == "*":
        return True
    wanted, actual = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return _glob(pattern, arn)
    return all(_glob(w, a) for w, a in zip(wanted, actual))


def _number(policy: str, value: str, compare: Callable[[float, float], bool]) -> bool:
    try:
        return compare(float(policy), float(value))
    except ValueError:
        return False


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _date(policy: str, value: str, compare: Callable[[datetime, datetime], bool]) -> bool:
    a, b = _when(policy), _when(value)
    return a is not None and b is not None and compare(a, b)


def _ip(policy: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(policy, strict=False)
    except ValueError:
        return False


class Evaluator:
    """Evaluates statements against one request context.

    Which service keys are known for a check comes from the check (the operation
    table's declaration for it), else from `known_key` (default: all). Global keys
    are always known. An unknown key is reported and never widens access.
    """

    def __init__(self, known_key: Callable[[str], bool] | None = None):
        self._known_key = known_key or (lambda key: True)

    def known(self, key: str, check: Check | None = None) -> bool:
        key = key.lower()
        if key in GLOBAL_KEYS or key.startswith(GLOBAL_KEY_PREFIXES):
            return True
        declared = check.declared if check is not None and check.declared is not None else self._known_key
        return declared(key)

    # --- policy variables -------------------------------------------------------

    def substitute(
        self, text: str, keys: dict[str, list[str]], unknown: list[str], check: Check | None = None
    ) -> str | None:
        """`text` with its policy variables replaced; None when one cannot be resolved."""
        failed = False

        def value(match: re.Match) -> str:
            nonlocal failed
            name, _, default = match.group(1).partition(",")
            name = name.strip()
            if name in _LITERALS:
                return _LITERALS[name]
            values = keys.get(name.lower())
            if values and len(values) == 1:
                return values[0]
            if default:
                return default.strip().strip("'")
            known = "" if self.known(name, check) else "unknown "
            unknown.append(f"{known}variable ${{{name}}} without a single value")
            failed = True
            return ""

        replaced = _VARIABLE.sub(value, text)
        return None if failed else replaced

    # --- conditions -------------------------------------------------------------

    def _key_result(
        self,
        operator: str,
        key: str,
        wanted: list[str],
        keys: dict[str, list[str]],
        unknown: list[str],
        check: Check | None,
    ) -> bool | None:
        """True/False for one key of a condition block; None when it cannot be judged."""
        qualifier, _, base = operator.rpartition(":")
        if qualifier not in ("", "ForAnyValue", "ForAllValues"):
            unknown.append(f"operator {operator}")
            return None
        if_exists = base.endswith("IfExists") and base != "IfExists"
        if if_exists:
            base = base[: -len("IfExists")]
        if base not in KNOWN_OPERATORS or (base == "Null" and (if_exists or qualifier)):
            unknown.append(f"operator {operator}")
            return None
        actual = keys.get(key.lower())
        if actual is None and not self.known(key, check):
            unknown.append(f"condition key {key}")
            return None
        if base == "Null":
            return (actual is None) == ("true" in [w.lower() for w in wanted])
        resolved = [self.substitute(w, keys, unknown, check) for w in wanted]
        if any(r is None for r in resolved):
            return None
        wanted = [r for r in resolved if r is not None]
        negated, match = _STRING[base]

        def one(value: str) -> bool:
            hit = any(match(w, value) for w in wanted)
            return not hit if negated else hit

        if qualifier == "ForAnyValue":
            return bool(actual) and any(one(v) for v in actual)
        if qualifier == "ForAllValues":
            return not actual or all(one(v) for v in actual)
        if actual is None:
            # AWS: a missing key fails positive operators and satisfies negated ones.
            return if_exists or negated
        hit = any(match(w, v) for w in wanted for v in actual)
        return not hit if negated else hit

    def conditions(
        self, block, keys: dict[str, list[str]], unknown: list[str], check: Check | None = None
    ) -> bool | None:
        """AND across operators and keys, OR across a key's values; None: cannot be judged."""
        if not isinstance(block, dict):
            unknown.append("a Condition that is not an object")
            return None
        judged = True
        for operator, entries in block.items():
            if not isinstance(entries, dict):
                unknown.append(f"operator {operator} without keys")
                return None
            for key, wanted in entries.items():
                result = self._key_result(operator, key, [_text(w) for w in _as_list(wanted)], keys, unknown, check)
                if result is False:
                    return False
                if result is None:
                    judged = False
        return True if judged else None

    # --- statements -------------------------------------------------------------

    def _listed(self, statement: dict, name: str, value: str, check: Check, unknown: list[str]) -> bool | None:
        """Whether value is in the statement's Action/Resource (or outside its NotX); None: cannot tell."""
        negated = f"Not{name}" in statement
        patterns = statement.get(f"Not{name}") if negated else statement.get(name)
        if patterns is None:
            return None if name == "Action" else True  # a statement without Action is malformed
        hit, unresolved = False, False
        for pattern in _as_list(patterns):
            pattern = str(pattern)
            if name == "Action":
                hit = hit or _glob(pattern, value, ignore_case=True)
                continue
            resolved = self.substitute(pattern, check.keys, unknown, check)
            if resolved is None:
                unresolved = True
            elif _arn_matches(resolved, value):
                hit = True
        if hit:
            return not negated
        return None if unresolved else negated

    def statement(self, statement: dict, check: Check, principal_form: str | None = "identity") -> _Match:
        """Whether the statement applies to the check (Principal already resolved to a form)."""
        unknown: list[str] = []
        deny = statement.get("Effect") == "Deny"
        if principal_form is None:
            return _Match(False, unknown)
        parts = [
            self._listed(statement, "Action", check.action, check, unknown),
            self._listed(statement, "Resource", check.resource, check, unknown),
        ]
        if "Condition" in statement and False not in parts:
            parts.append(self.conditions(statement["Condition"], check.keys, unknown, check))
        if any(p is False for p in parts):
            return _Match(False, unknown)
        if any(p is None for p in parts):
            # Never widen access: an Allow that cannot be judged does not apply, a Deny does.
            return _Match(deny, unknown or ["a statement without Action"])
        return _Match(True, unknown)


# --- principals in resource policies ----------------------------------------------

_IAM_ENTITY = re.compile(r"arn:[^:]+:iam::(\d{12}):(user|role)/(?:.*/)?([^/]+)")
_ROOT = re.compile(r"arn:[^:]+:iam::(\d{12}):root")
_SESSION = re.compile(r"arn:[^:]+:sts::(\d{12}):assumed-role/([^/]+)/([^/]+)")
# How directly a resource policy names the caller, most direct first.
_FORMS = ("session", "user", "role", "account", "everyone")


def _entity(arn: str) -> tuple[str, ...] | None:
    match = _IAM_ENTITY.fullmatch(arn)
    return match.groups() if match else None


def principal_form(entry: str, principal: Principal) -> str | None:
    """How one AWS principal entry of a resource policy names the caller, or None."""
    if entry == "*":
        return "everyone"
    if entry == principal.account or entry == f"arn:aws:iam::{principal.account}:root":
        return "account"
    if principal.is_session and entry == principal.arn:
        return "session"
    entity = _entity(entry)
    if entity is not None and entity == _entity(principal.principal_arn):
        return "role" if entity[1] == "role" else "user"
    return None


def _aws_entries(value) -> list[str] | None:
    """The AWS principal entries of a Principal element (None when it names only services)."""
    if value == "*":
        return ["*"]
    if isinstance(value, dict):
        return [str(e) for e in _as_list(value.get("AWS", []))] if "AWS" in value else None
    return None


def statement_principal(statement: dict, principal: Principal) -> str | None:
    """The form in which a resource-policy statement names the caller; None if it does not."""
    if "NotPrincipal" in statement:
        entries = _aws_entries(statement["NotPrincipal"]) or []
        forms = {principal_form(e, principal) for e in entries} - {None}
        if statement.get("Effect") == "Deny":
            # AWS: to exempt a session from a Deny, NotPrincipal must name it and its account.
            exempt = bool({"session", "user"} & forms) and "account" in forms
            return None if exempt else "everyone"
        return None if forms else "everyone"
    entries = _aws_entries(statement.get("Principal"))
    if not entries:
        return None
    forms = [principal_form(e, principal) for e in entries]
    named = [f for f in _FORMS if f in forms]
    return named[0] if named else None


# --- the decision ------------------------------------------------------------------


def _label(policy: Policy, statement: dict, index: int) -> str:
    return f"{policy.name}: {statement.get('Sid') or f'statement #{index}'}"


def _scan(
    evaluator: Evaluator, policies: Iterable[Policy], check: Check, principal: Principal | None
) -> tuple[str | None, list[tuple[str, str]], list[str]]:
    """(label of the first applying Deny, [(label, principal form) of applying Allows], unknowns)."""
    deny, allows, unknown = None, [], []
    for policy in policies:
        for index, statement in enumerate(statements(policy.document)):
            form = statement_principal(statement, principal) if principal is not None else "identity"
            match = evaluator.statement(statement, check, form)
            unknown += match.unknown
            if not match.applies:
                continue
            if statement.get("Effect") == "Deny":
                deny = deny or _label(policy, statement, index)
            elif statement.get("Effect") == "Allow":
                allows.append((_label(policy, statement, index), form or "identity"))
    return deny, allows, unknown


def decide(
    evaluator: Evaluator,
    principal: Principal,
    check: Check,
    identity: list[Policy],
    boundary: Policy | None,
) -> Decision:
    """AWS's verdict on `check` for `principal` with these identity policies and boundary."""
    id_deny, id_allows, unknown = _scan(evaluator, identity, check, None)
    b_deny, b_allows, more = _scan(evaluator, [boundary] if boundary else [], check, None)
    unknown += more
    resource = [check.resource_policy] if check.resource_policy else []
    r_deny, r_allows, more = _scan(evaluator, resource, check, principal)
    unknown += more
    seen = tuple(dict.fromkeys(unknown))
    action = check.action

    def deny(reason: str, statement: str | None = None) -> Decision:
        return Decision(False, reason, statement, seen)

    if id_deny:
        return deny("with an explicit deny in an identity-based policy", id_deny)
    if r_deny:
        return deny("with an explicit deny in a resource-based policy", r_deny)
    if b_deny:
        return deny("with an explicit deny in a permissions boundary", b_deny)
    within_boundary = boundary is None or bool(b_allows)
    identity_allow = id_allows[0][0] if id_allows and within_boundary else None
    forms = {form for _, form in r_allows}
    same_account = check.resource_account in (None, principal.account)
    no_identity = (
        f"because no identity-based policy allows the {action} action"
        if not id_allows
        else f"because no permissions boundary allows the {action} action"
    )
    no_resource = f"because no resource-based policy allows the {action} action"

    if not same_account:
        if identity_allow is None:
            return deny(no_identity)
        if not r_allows:
            return deny(no_resource)
        return Decision(True, statement=identity_allow, unknown=seen)
    # Within the account: a resource policy naming the session or user grants on its own,
    # one naming the role grants within the boundary, one naming the account delegates to IAM.
    direct = next((label for label, form in r_allows if form in ("session", "user")), None)
    by_role = next((label for label, form in r_allows if form in ("role", "everyone")), None)
    if direct:
        return Decision(True, statement=direct, unknown=seen)
    if by_role and within_boundary:
        return Decision(True, statement=by_role, unknown=seen)
    outside_boundary = f"because no permissions boundary allows the {action} action"
    if check.resource_policy_kind == "required" and "account" not in forms:
        return deny(outside_boundary if by_role else no_resource)
    if identity_allow is None:
        return deny(outside_boundary if by_role else no_identity)
    return Decision(True, statement=identity_allow, unknown=seen)


def through_endpoint(evaluator: Evaluator, principal: Principal, check: Check, endpoint: Policy) -> Decision:
    """The verdict of a VPC endpoint's policy on a request through it: it must allow (naming
    the caller or `*`), and an explicit Deny in it refuses, whatever the other policies say."""
    deny, allows, unknown = _scan(evaluator, [endpoint], check, principal)
    seen = tuple(dict.fromkeys(unknown))
    if deny:
        return Decision(False, "with an explicit deny in a VPC endpoint policy", deny, seen)
    if not allows:
        return Decision(False, f"because no VPC endpoint policy allows the {check.action} action", None, seen)
    return Decision(True, statement=allows[0][0], unknown=seen)


def _names_service(value, service: str) -> bool:
    """Whether a Principal element names the service principal (`*` names everyone)."""
    if value == "*":
        return True
    entries = value.get("Service", []) if isinstance(value, dict) else []
    return service.lower() in (str(e).lower() for e in _as_list(entries))


def service_statement_principal(statement: dict, service: str) -> str | None:
    """The form in which a statement names an AWS service principal; None if it does not.
    NotPrincipal applies to every principal it does not name."""
    if "NotPrincipal" in statement:
        return None if _names_service(statement["NotPrincipal"], service) else "everyone"
    return "service" if _names_service(statement.get("Principal"), service) else None


def service_allows(
    policy: dict | None,
    service: str,
    action: str,
    resource: str,
    context: dict[str, list[str]] | None = None,
    evaluator: Evaluator | None = None,
) -> bool:
    """Whether a resource policy (a KMS key policy, a role's trust policy) lets the AWS service
    principal `service` (`logs.us-east-1.amazonaws.com`) perform `action` on `resource`: an Allow
    naming the service (or `*`) applies and no Deny does. The service's request carries the
    `context` keys (aws:SourceAccount, kms:EncryptionContext:..., any case) and, as AWS sets them
    for service principals, aws:PrincipalServiceName and aws:PrincipalIsAWSService. A key absent
    from the context is absent (positive operators fail); a condition that cannot be judged never
    lets an Allow apply and always lets a Deny apply."""
    if not policy:
        return False
    keys = {"aws:principalservicename": [service], "aws:principalisawsservice": ["true"]}
    keys.update({k.lower(): list(v) for k, v in (context or {}).items()})
    check = Check(action, resource, keys)
    engine = evaluator or Evaluator()
    allowed = False
    for statement in statements(policy):
        if not engine.statement(statement, check, service_statement_principal(statement, service)).applies:
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def parse(document) -> dict | None:
    """A policy document as a dict, or None when it is not a JSON object."""
    if isinstance(document, bytes):
        document = document.decode("utf-8", "replace")
    try:
        policy = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return None
    return policy if isinstance(policy, dict) else None
