"""IAM: roles, their policies and boundaries, and the managed policies a boundary names.

`iam:PermissionsBoundary` is the boundary a request sets (CreateRole,
PutRolePermissionsBoundary) or, for changes to an existing role, the boundary the
role carries now, as the Service Authorization Reference lists it for each action.
Creating a role with tags also needs iam:TagRole (IAM User Guide, "Permissions
required to tag IAM entities").
"""

from __future__ import annotations

from .. import resources
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

BOUNDARY = "iam:PermissionsBoundary"


def _role(ctx: Ctx, action: str, *, boundary: bool = False, keys=None, **extra):
    name = ctx.param("RoleName") or ""
    found = resources.role(ctx.account, name)
    values = dict(keys or {})
    if boundary:
        current = found.permissions_boundary_arn if found else None
        values[BOUNDARY] = [current] if current else None
    return ctx.check(
        action,
        "role",
        resources.role_arn(ctx.account, name),
        keys=values,
        resource_tags=resources.role_tags(found),
        **extra,
    )


def _simple(action: str, boundary: bool = False, *keys: str):
    name = action.split(":")[1]

    @operation("iam", name, grant(action, "role", *RESOURCE_TAG, *((BOUNDARY,) if boundary else ()), *keys))
    def entry(ctx: Ctx):
        return [_role(ctx, action, boundary=boundary)]

    return entry


for _action in ("GetRole", "GetRolePolicy", "ListRolePolicies", "ListRoleTags", "ListAttachedRolePolicies"):
    _simple(f"iam:{_action}")
for _action in ("DeleteRole", "DeleteRolePolicy", "DeleteRolePermissionsBoundary", "PutRolePolicy", "UpdateAssumeRolePolicy", "UpdateRole"):
    _simple(f"iam:{_action}", True)


@operation("iam", "ListRoles", grant("iam:ListRoles"))
def list_roles(ctx: Ctx):
    return [ctx.check("iam:ListRoles", None)]


@operation("iam", "GetAccountAuthorizationDetails", grant("iam:GetAccountAuthorizationDetails"))
def get_account_authorization_details(ctx: Ctx):
    return [ctx.check("iam:GetAccountAuthorizationDetails", None)]


@operation("iam", "ListPolicies", grant("iam:ListPolicies"))
def list_policies(ctx: Ctx):
    return [ctx.check("iam:ListPolicies", None)]


@operation(
    "iam",
    "CreateRole",
    grant("iam:CreateRole", "role", BOUNDARY, *TAG_KEYS),
    grant("iam:TagRole", "role", *TAG_KEYS),
)
def create_role(ctx: Ctx):
    name, path = ctx.param("RoleName") or "", ctx.param("Path") or "/"
    arn = f"arn:aws:iam::{ctx.account}:role{path}{name}"
    boundary = ctx.param("PermissionsBoundary")
    tags = ctx.query_tags("Tags")
    checks = [ctx.check("iam:CreateRole", "role", arn, keys={BOUNDARY: [boundary] if boundary else None}, request_tags=tags)]
    if tags:
        checks.append(ctx.check("iam:TagRole", "role", arn, request_tags=tags))
    return checks


@operation("iam", "PutRolePermissionsBoundary", grant("iam:PutRolePermissionsBoundary", "role", *RESOURCE_TAG, BOUNDARY))
def put_role_permissions_boundary(ctx: Ctx):
    wanted = ctx.param("PermissionsBoundary")
    return [_role(ctx, "iam:PutRolePermissionsBoundary", keys={BOUNDARY: [wanted] if wanted else None})]


@operation("iam", "TagRole", grant("iam:TagRole", "role", *RESOURCE_TAG, *TAG_KEYS))
def tag_role(ctx: Ctx):
    check = _role(ctx, "iam:TagRole")
    tagged = ctx.check("iam:TagRole", "role", check.resource, request_tags=ctx.query_tags("Tags"))
    check.keys.update(tagged.keys)
    return [check]


@operation("iam", "UntagRole", grant("iam:UntagRole", "role", *RESOURCE_TAG, "aws:TagKeys"))
def untag_role(ctx: Ctx):
    return [_role(ctx, "iam:UntagRole", keys={"aws:TagKeys": ctx.members("TagKeys")})]


def _policy_entry(action: str):
    name = action.split(":")[1]

    @operation("iam", name, grant(action, "policy"))
    def entry(ctx: Ctx):
        return [ctx.check(action, "policy", ctx.param("PolicyArn") or "")]

    return entry


for _action in ("GetPolicy", "GetPolicyVersion", "CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicy", "DeletePolicyVersion", "ListPolicyVersions"):
    _policy_entry(f"iam:{_action}")


@operation("iam", "CreatePolicy", grant("iam:CreatePolicy", "policy", *TAG_KEYS))
def create_policy(ctx: Ctx):
    path = ctx.param("Path") or "/"
    arn = f"arn:aws:iam::{ctx.account}:policy{path}{ctx.param('PolicyName') or ''}"
    return [ctx.check("iam:CreatePolicy", "policy", arn, request_tags=ctx.query_tags("Tags"))]


def _attachment(action: str):
    name = action.split(":")[1]

    @operation("iam", name, grant(action, "role", *RESOURCE_TAG, BOUNDARY, "iam:PolicyARN"))
    def entry(ctx: Ctx):
        return [_role(ctx, action, boundary=True, keys={"iam:PolicyARN": [ctx.param("PolicyArn") or ""]})]

    return entry


_attachment("iam:AttachRolePolicy")
_attachment("iam:DetachRolePolicy")


def _user(ctx: Ctx) -> str:
    return f"arn:aws:iam::{ctx.account}:user/{ctx.param('UserName') or ''}"


@operation("iam", "CreateUser", grant("iam:CreateUser", "user", BOUNDARY, *TAG_KEYS))
def create_user(ctx: Ctx):
    boundary = ctx.param("PermissionsBoundary")
    return [
        ctx.check(
            "iam:CreateUser",
            "user",
            _user(ctx),
            keys={BOUNDARY: [boundary] if boundary else None},
            request_tags=ctx.query_tags("Tags"),
        )
    ]


@operation("iam", "PutUserPolicy", grant("iam:PutUserPolicy", "user"))
def put_user_policy(ctx: Ctx):
    return [ctx.check("iam:PutUserPolicy", "user", _user(ctx))]


@operation("iam", "AttachUserPolicy", grant("iam:AttachUserPolicy", "user", BOUNDARY, "iam:PolicyARN"))
def attach_user_policy(ctx: Ctx):
    return [ctx.check("iam:AttachUserPolicy", "user", _user(ctx), keys={"iam:PolicyARN": [ctx.param("PolicyArn") or ""]})]


@operation("iam", "CreateAccessKey", grant("iam:CreateAccessKey", "user"))
def create_access_key(ctx: Ctx):
    return [ctx.check("iam:CreateAccessKey", "user", _user(ctx))]


@operation("iam", "GetUser", grant("iam:GetUser", "user"))
def get_user(ctx: Ctx):
    return [ctx.check("iam:GetUser", "user", _user(ctx))]


@operation("iam", "CreateServiceLinkedRole", grant("iam:CreateServiceLinkedRole", "role", "iam:AWSServiceName"))
def create_service_linked_role(ctx: Ctx):
    """Authorized on the role it makes, `role/aws-service-role/<service>/<name>`: the name AWS
    gives Application Auto Scaling's SageMaker role, a placeholder for other services'."""
    from ... import autoscaling

    service = ctx.param("AWSServiceName") or ""
    if service == autoscaling.LINKED_SERVICE:
        arn = autoscaling.service_linked_role_arn(ctx.account)
    else:
        arn = f"arn:aws:iam::{ctx.account}:role/aws-service-role/{service}/AWSServiceRoleFor{service.split('.')[0].title()}"
    return [ctx.check("iam:CreateServiceLinkedRole", "role", arn, keys={"iam:AWSServiceName": [service]})]
