"""AWS Organizations as AWS runs it, on moto's organizations backend.

moto keeps one organizations backend per account (the partition, `aws`, stands in
for the region of this global service) and routes a request to the backend of
the account that signed it. The organization lives in the management account's
backend; `organizations_backends.master_accounts` maps each member account to
it. What moto gets wrong, and what this module changes:

- Who may call what. moto serves any caller from its own backend: a member account
  sees an empty backend (ParentNotFoundException and the like), a delegated
  administrator cannot read the organization, an account outside every
  organization gets whatever error its empty backend raises. AWS: CreateOrganization
  and DescribeOrganization are open to any account (DescribeOrganization answers
  AWSOrganizationsNotInUseException outside an organization); the List* and
  Describe* operations to the management account and registered delegated
  administrators; everything else to the management account only. A member that
  may not call is refused with AccessDeniedException ("You don't have permissions
  to access this resource."), an account outside every organization with
  AWSOrganizationsNotInUseException.
- Paging. ListAccountsForParent, ListOrganizationalUnitsForParent and ListAccounts
  page by MaxResults (1 to 20, AWS's limits; default 20; outside them
  InvalidInputException) with opaque tokens that survive accounts moving or leaving
  between pages (moto's tokens name the next item and fail once it has moved).
  moto's ListAccounts default page is 100, more than AWS allows.
- MoveAccount checks what AWS checks: AccountNotFoundException,
  SourceParentNotFoundException (also when the account is not in the source
  parent), DestinationParentNotFoundException, DuplicateAccountException (already
  in the destination). moto answers ParentNotFoundException and moves anything.
- RemoveAccountFromOrganization of the management account is
  MasterCannotLeaveOrganizationException, of an unknown account
  AccountNotFoundException (moto: AWSOrganizationsNotInUseException); a removed
  delegated administrator loses its registration.
- ListParents of an unknown child is ChildNotFoundException.
- CreateOrganizationalUnit checks the parent (ParentNotFoundException) and the name
  (DuplicateOrganizationalUnitException within the parent); DeleteOrganizationalUnit
  refuses an OU with accounts or OUs in it (OrganizationalUnitNotEmptyException).
  moto creates under any parent and deletes anything.
- moto's reset forgets the organizations but not which accounts were members.

Tests put accounts with ids of their choosing into an organization with `enroll`
(the control API): an ACTIVE member that joined by invitation, as CreateAccount
cannot choose an id. The principals of member and management accounts carry the
global condition keys `aws:PrincipalOrgID` and `aws:PrincipalOrgPaths`
(`principal_org_keys`), and their resources `aws:ResourceOrgID` and
`aws:ResourceOrgPaths` (`resource_org_keys`), read from the organization at each
request, so a move is seen by the next one.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import threading
from dataclasses import dataclass

from moto.core.utils import unix_time, utcnow
from moto.organizations import utils as org_utils
from moto.organizations.exceptions import (
    AccountNotFoundException,
    AWSOrganizationsNotInUseException,
    DuplicateOrganizationalUnitException,
    OrganizationsClientError,
)
from moto.organizations.models import (
    FakeAccount,
    FakeOrganizationalUnit,
    FakeRoot,
    OrganizationsBackend,
    organizations_backends,
)
from moto.organizations.responses import OrganizationsResponse

PARTITION = "aws"
MAX_RESULTS = 20  # the upper bound of MaxResults in every Organizations List* operation
DEFAULT_PAGE = 20  # AWS documents the default only as "specific to the operation"; the maximum here
STATUSES = ("ACTIVE", "SUSPENDED", "PENDING_CLOSURE")
# Read-only operations a delegated administrator may call (besides the management account).
_READ_PREFIXES = ("List", "Describe")
# Operations any account may call: moto's own answers are right for them.
_ANY_ACCOUNT = ("CreateOrganization", "DescribeOrganization")

_lock = threading.RLock()
_ou_order = itertools.count(1)


def _error(code: str, message: str, reason: str | None = None) -> OrganizationsClientError:
    error = OrganizationsClientError(code, message)
    if reason:
        error.Reason = reason  # InvalidInputException carries a Reason member
    return error


def access_denied() -> OrganizationsClientError:
    return _error("AccessDeniedException", "You don't have permissions to access this resource.")


# --- where an account stands -------------------------------------------------------


def _backend(account: str) -> OrganizationsBackend | None:
    """The account's organizations backend, without creating one (moto's BackendDict would)."""
    per_account = dict.get(organizations_backends, account)
    return dict.get(per_account, PARTITION) if per_account is not None else None


@dataclass(frozen=True)
class Membership:
    """An account's place in an organization."""

    backend: OrganizationsBackend  # the management account's, which holds the organization
    account: str

    @property
    def management(self) -> bool:
        return self.backend.account_id == self.account

    @property
    def organization_id(self) -> str:
        return self.backend.org.id

    @property
    def delegated_admin(self) -> bool:
        return any(admin.account.id == self.account for admin in list(self.backend.admins))

    def record(self) -> FakeAccount | None:
        return next((a for a in list(self.backend.accounts) if a.id == self.account), None)

    def path(self) -> str | None:
        """aws:PrincipalOrgPaths of the account: `o-.../r-.../ou-.../` down to its parent."""
        record = self.record()
        return org_path(self.backend, record.parent_id) if record else None


def membership(account: str) -> Membership | None:
    """The organization `account` belongs to (as management account or member), or None."""
    own = _backend(account)
    if own is not None and own.org is not None:
        return Membership(own, account)
    entry = organizations_backends.master_accounts.get(account)
    if entry is None:
        return None
    management = _backend(entry[0])
    if management is None or management.org is None:
        return None
    return Membership(management, account)


def org_path(backend: OrganizationsBackend, parent_id: str | None) -> str:
    """The organization path of a child of `parent_id`: org id, root, OUs, with a trailing `/`."""
    by_id = {ou.id: ou for ou in list(backend.ou)}
    chain: list[str] = []
    while parent_id in by_id and parent_id not in chain:
        chain.append(parent_id)
        node = by_id[parent_id]
        if isinstance(node, FakeRoot):
            break
        parent_id = node.parent_id
    return "/".join([backend.org.id, *reversed(chain)]) + "/"


def principal_org_keys(account: str) -> dict[str, list[str]]:
    """aws:PrincipalOrgID and aws:PrincipalOrgPaths of a principal of `account` (lower-case
    names); empty outside every organization."""
    member = membership(account)
    if member is None:
        return {}
    keys = {"aws:principalorgid": [member.organization_id]}
    path = member.path()
    if path:
        keys["aws:principalorgpaths"] = [path]
    return keys


def resource_org_keys(account: str) -> dict[str, list[str]]:
    """aws:ResourceOrgID and aws:ResourceOrgPaths of a resource `account` owns (lower-case
    names); empty outside every organization."""
    return {
        key.replace("aws:principal", "aws:resource"): value for key, value in principal_org_keys(account).items()
    }


# --- ARNs and tags, for the operation table ----------------------------------------


def account_arn(backend: OrganizationsBackend, account_id: str) -> str:
    return org_utils.ACCOUNT_ARN_FORMAT.format(PARTITION, backend.account_id, backend.org.id, account_id)


def parent_arn(backend: OrganizationsBackend, parent_id: str) -> tuple[str, str] | None:
    """(resource type, ARN) of a root or OU id; None when the id is neither."""
    if parent_id.startswith("r-"):
        return "root", org_utils.ROOT_ARN_FORMAT.format(PARTITION, backend.account_id, backend.org.id, parent_id)
    if parent_id.startswith("ou-"):
        return "organizationalunit", org_utils.OU_ARN_FORMAT.format(
            PARTITION, backend.account_id, backend.org.id, parent_id
        )
    return None


def tags_of(backend: OrganizationsBackend, resource_id: str) -> dict[str, str]:
    """The tags of a root, OU or account of the organization (none if unknown)."""
    for item in [*list(backend.ou), *list(backend.accounts)]:
        if item.id == resource_id:
            return dict(item.tags)
    return {}


# --- enrolment (the control API) ---------------------------------------------------


def _summary(member: Membership) -> dict:
    record = member.record()
    return {
        "accountId": member.account,
        "managementAccount": member.backend.account_id,
        "organizationId": member.organization_id,
        "arn": account_arn(member.backend, member.account),
        "parentId": record.parent_id if record else None,
        "path": member.path(),
        "name": record.name if record else None,
        "email": record.email if record else None,
        "status": record.status if record else None,
        "joinedMethod": record.joined_method if record else None,
    }


def enroll(
    management: str,
    account_id: str,
    parent_id: str | None = None,
    name: str | None = None,
    email: str | None = None,
    status: str = "ACTIVE",
) -> dict:
    """Make `account_id` a member of the organization of `management`, in `parent_id` (the
    root by default), as an account that accepted an invitation: ACTIVE unless told, no
    OrganizationAccountAccessRole. LookupError: no such organization or parent; ValueError:
    the account already belongs to an organization."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    with _lock:
        backend = _backend(management)
        if backend is None or backend.org is None:
            raise LookupError(f"account {management} has no organization")
        if membership(account_id) is not None:
            raise ValueError(f"account {account_id} already belongs to an organization")
        parent_id = parent_id or backend.org.root_id
        if not any(ou.id == parent_id for ou in backend.ou):
            raise LookupError(f"organization {backend.org.id} has no root or OU {parent_id}")
        # FakeAccount's constructor makes a random id and an OrganizationAccountAccessRole in it,
        # as CreateAccount does; an invited account has neither.
        account = FakeAccount.__new__(FakeAccount)
        account.type = "ACCOUNT"
        account.region = backend.org.region
        account.organization_id = backend.org.id
        account.master_account_id = backend.account_id
        account.create_account_status_id = org_utils.make_random_create_account_status_id()
        account.id = account_id
        account.name = name or f"account-{account_id}"
        account.email = email or f"{account_id}@example.com"
        account.create_time = utcnow()
        account.status = status
        account.state = status
        account.joined_method = "INVITED"
        account.parent_id = parent_id
        account.attached_policies = []
        account.tags = {}
        backend.accounts.append(account)
        for policy_id in (org_utils.DEFAULT_SCP_POLICY_ID, org_utils.DEFAULT_RCP_POLICY_ID):
            backend.attach_policy(PolicyId=policy_id, TargetId=account_id)
        organizations_backends.master_accounts[account_id] = (management, PARTITION)
        return _summary(Membership(backend, account_id))


def describe(account_id: str) -> dict:
    """Where `account_id` stands (LookupError outside every organization)."""
    member = membership(account_id)
    if member is None:
        raise LookupError(f"account {account_id} belongs to no organization")
    return _summary(member)


def remove(account_id: str) -> None:
    """RemoveAccountFromOrganization, done by the control API."""
    member = membership(account_id)
    if member is None:
        raise LookupError(f"account {account_id} belongs to no organization")
    if member.management:
        raise ValueError(f"account {account_id} is the management account of {member.organization_id}")
    member.backend.remove_account_from_organization(AccountId=account_id)


# --- moto patches --------------------------------------------------------------------


def _routed_backend(self: OrganizationsResponse) -> OrganizationsBackend:
    """The backend that serves this request, or the refusal AWS answers."""
    action = self._get_action()
    if action in _ANY_ACCOUNT:
        return organizations_backends[self.current_account][self.partition]
    member = membership(self.current_account)
    if member is None:
        raise AWSOrganizationsNotInUseException()
    if member.management or (action.startswith(_READ_PREFIXES) and member.delegated_admin):
        return member.backend
    raise access_denied()


def _max_results(response: OrganizationsResponse) -> int:
    value = response._get_param("MaxResults")
    if value is None:
        return DEFAULT_PAGE
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error("InvalidInputException", "You specified an invalid value.", "INVALID_INPUT")
    if value < 1:
        raise _error(
            "InvalidInputException", "You provided a value that is less than the minimum allowed.", "MIN_VALUE_EXCEEDED"
        )
    if value > MAX_RESULTS:
        raise _error(
            "InvalidInputException", "You provided a value that exceeds the maximum allowed.", "MAX_VALUE_EXCEEDED"
        )
    return value


def _invalid_token() -> OrganizationsClientError:
    return _error(
        "InvalidInputException",
        "You specified an invalid value for nextToken. You must get the value from the response to a previous "
        "call to the API.",
        "INVALID_PAGINATION_TOKEN",
    )


def _page(response: OrganizationsResponse, scope: str, items: list, key) -> tuple[list, str | None]:
    """One page of `items` (sorted by `key`), and the token of the next one. A token names the
    last item returned, so accounts that move or leave between pages shift nothing."""
    limit = _max_results(response)
    items = sorted(items, key=key)
    token = response._get_param("NextToken")
    start = 0
    if token is not None:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()))
            after = tuple(state["after"])
            valid = state["operation"] == response._get_action() and state["scope"] == scope
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            raise _invalid_token() from None
        if not valid:
            raise _invalid_token()
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = items[start : start + limit]
    if start + limit >= len(items):
        return page, None
    state = {"operation": response._get_action(), "scope": scope, "after": list(key(page[-1]))}
    return page, base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _account_key(account: FakeAccount) -> tuple:
    return (unix_time(account.create_time), account.id)


def _ou_key(ou: FakeOrganizationalUnit) -> tuple:
    return (getattr(ou, "emulator_order", 0), ou.id)


def _parent(backend: OrganizationsBackend, parent_id, code: str = "ParentNotFoundException") -> str:
    if not isinstance(parent_id, str) or not any(ou.id == parent_id for ou in list(backend.ou)):
        raise _error(code, "We can't find a root or OU with the ParentId that you specified.")
    return parent_id


def _paged(results: str, page: list, token: str | None) -> str:
    body = {results: page}
    if token:
        body["NextToken"] = token
    return json.dumps(body)


def list_accounts_for_parent(self: OrganizationsResponse) -> str:
    backend = self.organizations_backend
    parent = _parent(backend, self._get_param("ParentId"))
    accounts = [a for a in list(backend.accounts) if a.parent_id == parent]
    page, token = _page(self, parent, accounts, _account_key)
    return _paged("Accounts", [a.describe() for a in page], token)


def list_organizational_units_for_parent(self: OrganizationsResponse) -> str:
    backend = self.organizations_backend
    parent = _parent(backend, self._get_param("ParentId"))
    units = [ou for ou in list(backend.ou) if ou.parent_id == parent and not isinstance(ou, FakeRoot)]
    page, token = _page(self, parent, units, _ou_key)
    listed = [{"Id": ou.id, "Arn": ou.arn, "Name": ou.name} for ou in page]
    return _paged("OrganizationalUnits", listed, token)


def list_accounts(self: OrganizationsResponse) -> str:
    backend = self.organizations_backend
    page, token = _page(self, "", list(backend.accounts), _account_key)
    return _paged("Accounts", [a.describe() for a in page], token)


def move_account(self: OrganizationsBackend, **kwargs) -> None:
    with _lock:
        account = next((a for a in self.accounts if a.id == kwargs.get("AccountId")), None)
        if account is None:
            raise AccountNotFoundException()
        source = _parent(self, kwargs.get("SourceParentId"), "SourceParentNotFoundException")
        destination = kwargs.get("DestinationParentId")
        if not isinstance(destination, str) or not any(ou.id == destination for ou in self.ou):
            raise _error(
                "DestinationParentNotFoundException",
                "We can't find the destination container (a root or OU) with the ParentId that you specified.",
            )
        if account.parent_id == destination:
            raise _error("DuplicateAccountException", "That account is already present in the specified destination.")
        if account.parent_id != source:
            raise _error(
                "SourceParentNotFoundException",
                "We can't find a source root or OU with the ParentId that you specified.",
            )
        account.parent_id = destination


def remove_account_from_organization(self: OrganizationsBackend, **kwargs) -> None:
    account_id = kwargs.get("AccountId")
    with _lock:
        if account_id == self.account_id:
            raise _error(
                "MasterCannotLeaveOrganizationException",
                "You can't remove a management account from an organization. If you want the management account to "
                "become a member account in another organization, you must first delete the current organization of "
                "the management account.",
            )
        account = next((a for a in self.accounts if a.id == account_id), None)
        if account is None:
            raise AccountNotFoundException()
        for policy in list(account.attached_policies):
            if account in policy.attachments:
                policy.attachments.remove(account)
        self.accounts.remove(account)
        self.admins = [admin for admin in self.admins if admin.account.id != account_id]
        organizations_backends.master_accounts.pop(account_id, None)


def list_parents(self: OrganizationsBackend, **kwargs) -> dict:
    child_id = kwargs.get("ChildId")
    child = next((c for c in [*list(self.accounts), *list(self.ou)] if c.id == child_id), None)
    if child is None or isinstance(child, FakeRoot):
        raise _error(
            "ChildNotFoundException",
            "We can't find an organizational unit (OU) or AWS account with the ChildId that you specified.",
        )
    parent = next((ou for ou in list(self.ou) if ou.id == child.parent_id), None)
    return {"Parents": [{"Id": parent.id, "Type": parent.type}] if parent else []}


def _creating_organizational_unit(original):
    def create_organizational_unit(self: OrganizationsBackend, **kwargs) -> dict:
        with _lock:
            parent = _parent(self, kwargs.get("ParentId"))
            if any(ou.parent_id == parent and ou.name == kwargs.get("Name") for ou in self.ou):
                raise DuplicateOrganizationalUnitException()
            described = original(self, **kwargs)
            created = next(ou for ou in self.ou if ou.id == described["OrganizationalUnit"]["Id"])
            created.emulator_order = next(_ou_order)
            return described

    return create_organizational_unit


def _deleting_organizational_unit(original):
    def delete_organizational_unit(self: OrganizationsBackend, **kwargs) -> None:
        with _lock:
            ou_id = kwargs.get("OrganizationalUnitId")
            self.get_organizational_unit_by_id(ou_id)
            if any(child.parent_id == ou_id for child in [*self.accounts, *self.ou]):
                raise _error(
                    "OrganizationalUnitNotEmptyException",
                    "The specified OU is not empty. Move all accounts to another root or to other OUs, remove all "
                    "child OUs, and try the operation again.",
                )
            original(self, **kwargs)

    return delete_organizational_unit


def reset() -> None:
    """Forget which accounts were members (moto's reset keeps the map)."""
    organizations_backends.master_accounts.clear()


def install() -> None:
    """Patch moto's organizations backend and responses."""
    OrganizationsResponse.organizations_backend = property(_routed_backend)
    OrganizationsResponse.list_accounts_for_parent = list_accounts_for_parent
    OrganizationsResponse.list_organizational_units_for_parent = list_organizational_units_for_parent
    OrganizationsResponse.list_accounts = list_accounts
    OrganizationsBackend.move_account = move_account
    OrganizationsBackend.remove_account_from_organization = remove_account_from_organization
    OrganizationsBackend.list_parents = list_parents
    OrganizationsBackend.create_organizational_unit = _creating_organizational_unit(
        OrganizationsBackend.create_organizational_unit
    )
    OrganizationsBackend.delete_organizational_unit = _deleting_organizational_unit(
        OrganizationsBackend.delete_organizational_unit
    )
