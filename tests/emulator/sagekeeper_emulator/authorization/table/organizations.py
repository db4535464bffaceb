"""Organizations: the operations on an organization's roots, OUs and accounts are authorized on
their ARNs, which name the management account and the organization
(`arn:aws:organizations::<management>:ou/o-.../ou-...`), with their tags as
`aws:ResourceTag/*`. A caller whose account belongs to no organization makes no check on
a resource (there is no ARN to name): the service then answers
AWSOrganizationsNotInUseException, as AWS does.

Who may call at all (the management account; a delegated administrator for List* and
Describe*) is the service's own rule, applied after IAM evaluation (`organizations.py`). A
delegated administrator's check is judged with its own identity policies: the
registration, not a resource policy, lets it read the organization.

CreateOrganization also needs `iam:CreateServiceLinkedRole` for
AWSServiceRoleForOrganizations (the reference lists it as a dependent action);
CreateOrganizationalUnit with tags needs `organizations:TagResource` (the API reference
says so), checked on the parent, as the new OU has no ARN yet.
"""

from __future__ import annotations

import re

from ... import organizations
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

SERVICE_PRINCIPAL = "organizations:ServicePrincipal"
SLR = "arn:aws:iam::{account}:role/aws-service-role/organizations.amazonaws.com/AWSServiceRoleForOrganizations"
_ACCOUNT_ID = re.compile(r"\d{12}")


def _org(ctx: Ctx):
    """The backend holding the caller's organization, or None."""
    member = organizations.membership(ctx.account)
    return member.backend if member else None


def _parent(ctx: Ctx, action: str, parent_id, **extra):
    """The check of `action` on a root or OU, or None (no organization, or not a parent id)."""
    backend = _org(ctx)
    found = organizations.parent_arn(backend, parent_id) if backend and isinstance(parent_id, str) else None
    if found is None:
        return None
    resource_type, arn = found
    return ctx.check(action, resource_type, arn, resource_tags=organizations.tags_of(backend, parent_id), **extra)


def _account(ctx: Ctx, action: str, account_id, **extra):
    """The check of `action` on a member account, or None."""
    backend = _org(ctx)
    if backend is None or not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        return None
    arn = organizations.account_arn(backend, account_id)
    return ctx.check(action, "account", arn, resource_tags=organizations.tags_of(backend, account_id), **extra)


def _present(*checks):
    return [c for c in checks if c is not None]


def _on_parent(name: str, parameter: str = "ParentId"):
    action = f"organizations:{name}"

    @operation(
        "organizations",
        name,
        grant(action, "root", *RESOURCE_TAG),
        grant(action, "organizationalunit", *RESOURCE_TAG),
    )
    def entry(ctx: Ctx):
        return _present(_parent(ctx, action, ctx.param(parameter)))

    return entry


for _name in ("ListAccountsForParent", "ListOrganizationalUnitsForParent", "ListChildren"):
    _on_parent(_name)


def _on_ou(name: str):
    action = f"organizations:{name}"

    @operation("organizations", name, grant(action, "organizationalunit", *RESOURCE_TAG))
    def entry(ctx: Ctx):
        ou_id = ctx.param("OrganizationalUnitId")
        return _present(_parent(ctx, action, ou_id)) if isinstance(ou_id, str) and ou_id.startswith("ou-") else []

    return entry


for _name in ("DescribeOrganizationalUnit", "DeleteOrganizationalUnit"):
    _on_ou(_name)


def _on_account(name: str):
    action = f"organizations:{name}"

    @operation("organizations", name, grant(action, "account", *RESOURCE_TAG))
    def entry(ctx: Ctx):
        return _present(_account(ctx, action, ctx.param("AccountId")))

    return entry


for _name in ("DescribeAccount", "RemoveAccountFromOrganization", "CloseAccount", "ListDelegatedServicesForAccount"):
    _on_account(_name)


def _unscoped(name: str, *keys: str):
    action = f"organizations:{name}"

    @operation("organizations", name, grant(action, None, *keys))
    def entry(ctx: Ctx):
        values = {SERVICE_PRINCIPAL: [ctx.param("ServicePrincipal")] if ctx.param("ServicePrincipal") else None}
        return [ctx.check(action, None, keys=values if keys else None)]

    return entry


for _name in ("DescribeOrganization", "ListRoots", "ListAccounts", "DeleteOrganization"):
    _unscoped(_name)
for _name in ("ListDelegatedAdministrators", "EnableAWSServiceAccess", "DisableAWSServiceAccess"):
    _unscoped(_name, SERVICE_PRINCIPAL)


@operation(
    "organizations",
    "CreateOrganization",
    grant("organizations:CreateOrganization"),
    grant("iam:CreateServiceLinkedRole", "role", "iam:AWSServiceName"),
)
def create_organization(ctx: Ctx):
    return [
        ctx.check("organizations:CreateOrganization", None),
        ctx.check(
            "iam:CreateServiceLinkedRole",
            "role",
            SLR.format(account=ctx.account),
            keys={"iam:AWSServiceName": ["organizations.amazonaws.com"]},
        ),
    ]


@operation(
    "organizations",
    "CreateOrganizationalUnit",
    grant("organizations:CreateOrganizationalUnit", "root", *TAG_KEYS, *RESOURCE_TAG),
    grant("organizations:CreateOrganizationalUnit", "organizationalunit", *TAG_KEYS, *RESOURCE_TAG),
    grant("organizations:TagResource", "root", *TAG_KEYS, *RESOURCE_TAG),
    grant("organizations:TagResource", "organizationalunit", *TAG_KEYS, *RESOURCE_TAG),
)
def create_organizational_unit(ctx: Ctx):
    tags = ctx.json_tags() or None
    parent = ctx.param("ParentId")
    checks = [_parent(ctx, "organizations:CreateOrganizationalUnit", parent, request_tags=tags)]
    if tags:
        checks.append(_parent(ctx, "organizations:TagResource", parent, request_tags=tags))
    return _present(*checks)


@operation(
    "organizations",
    "MoveAccount",
    grant("organizations:MoveAccount", "account", *RESOURCE_TAG),
    grant("organizations:MoveAccount", "root", *RESOURCE_TAG),
    grant("organizations:MoveAccount", "organizationalunit", *RESOURCE_TAG),
)
def move_account(ctx: Ctx):
    return _present(
        _account(ctx, "organizations:MoveAccount", ctx.param("AccountId")),
        _parent(ctx, "organizations:MoveAccount", ctx.param("SourceParentId")),
        _parent(ctx, "organizations:MoveAccount", ctx.param("DestinationParentId")),
    )


@operation(
    "organizations",
    "ListParents",
    grant("organizations:ListParents", "account", *RESOURCE_TAG),
    grant("organizations:ListParents", "organizationalunit", *RESOURCE_TAG),
)
def list_parents(ctx: Ctx):
    child = ctx.param("ChildId")
    if isinstance(child, str) and child.startswith("ou-"):
        return _present(_parent(ctx, "organizations:ListParents", child))
    return _present(_account(ctx, "organizations:ListParents", child))


def _delegation(name: str):
    action = f"organizations:{name}"

    @operation("organizations", name, grant(action, "account", SERVICE_PRINCIPAL, *RESOURCE_TAG))
    def entry(ctx: Ctx):
        principal = ctx.param("ServicePrincipal")
        keys = {SERVICE_PRINCIPAL: [principal] if principal else None}
        return _present(_account(ctx, action, ctx.param("AccountId"), keys=keys))

    return entry


for _name in ("RegisterDelegatedAdministrator", "DeregisterDelegatedAdministrator"):
    _delegation(_name)
