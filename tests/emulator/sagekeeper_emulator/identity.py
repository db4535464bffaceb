"""Who is calling: the principal behind a request's access key.

moto only derives an account id from the access key (moto.iam.models.
get_account_id_from). Policy checks need the principal as AWS sees it: the
caller ARN that GetCallerIdentity reports and `aws:PrincipalArn` (the role ARN
for assumed-role sessions, the user ARN for IAM users). The middleware stores
the current request's caller and headers in a context variable, because the
moto hooks that evaluate policies (a bucket's get_permission) never see the
request.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from, iam_backends
from moto.sts.models import sts_backends


@dataclass(frozen=True)
class Caller:
    """The principal that signed a request."""

    account: str
    arn: str  # as GetCallerIdentity reports it
    principal_arn: str  # aws:PrincipalArn
    kind: str = "anonymous"  # user | session | anonymous (a key the emulator did not issue)
    admin: bool = False  # the account-admin identity of a test's setup, exempt from IAM evaluation


@dataclass(frozen=True)
class RequestContext:
    """The caller and headers of the request being served on this thread."""

    caller: Caller
    headers: dict[str, str] = field(default_factory=dict)


def _anonymous(account: str) -> Caller:
    # Keys moto does not know land in the default (or header-selected) account;
    # moto's GetCallerIdentity calls that identity user/moto.
    return Caller(account, f"arn:aws:sts::{account}:user/moto", f"arn:aws:iam::{account}:user/moto")


def identify(access_key: str | None, account_header: str | None = None, admin_keys=frozenset()) -> Caller:
    """The caller for an access key, attributed to an account exactly as moto does; keys in
    `admin_keys` belong to account-admin identities."""
    if account_header:
        return _anonymous(account_header)
    if not access_key:
        return _anonymous(DEFAULT_ACCOUNT_ID)
    account = get_account_id_from(access_key)
    iam = iam_backends[account]["aws"]
    key = iam.access_keys.get(access_key)
    if key is None:
        return _anonymous(account)
    if key.role_arn:
        session = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key)
        role_name = key.role_arn.rsplit("/", 1)[-1]
        role = next((r for r in list(iam.get_roles()) if r.name == role_name), None)
        arn = session.arn if session else key.role_arn
        return Caller(account, arn, role.arn if role else key.role_arn, "session")
    user = iam.users.get(key.user_name)
    if user is None:
        return _anonymous(account)
    return Caller(account, user.arn, user.arn, "user", access_key in admin_keys)


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("request")


def current() -> RequestContext:
    """The request being served; an anonymous default-account caller outside one."""
    return _current.get(RequestContext(_anonymous(DEFAULT_ACCOUNT_ID)))


def bind(context: RequestContext) -> contextvars.Token:
    """Make `context` the current request until `unbind(token)`."""
    return _current.set(context)


def unbind(token: contextvars.Token) -> None:
    """End the scope opened by `bind`."""
    _current.reset(token)
