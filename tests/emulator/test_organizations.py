"""AWS Organizations: an organization made by the management account's admin, accounts of the
test's choosing enrolled through the control API, nested OUs, paging, MoveAccount and removal,
who may call (management account, delegated administrators, members, outsiders), the operation
table, and the global keys aws:PrincipalOrgID / aws:PrincipalOrgPaths in bucket and key policies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import _SESSION, RETRIES_OFF, Account, Emulator, _account_ids, start_emulator, stop_emulator

from sagekeeper_emulator.authorization import table

DENIED = "You don't have permissions to access this resource."


def document(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def admin(emulator: Emulator, account_id: str | None = None) -> Account:
    """The account-admin identity of a fresh (or the given) account."""
    account_id = account_id or str(next(_account_ids))
    created = emulator.post("/_emulator/credentials", {"account": account_id, "admin": True})
    credentials = {"aws_access_key_id": created["accessKeyId"], "aws_secret_access_key": created["secretAccessKey"]}
    return Account(emulator, account_id, credentials, created["arn"])


def error(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


class Org:
    """An organization whose management account is a fresh test account."""

    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self.admin = admin(emulator)
        self.id = self.admin.id
        self.client = self.admin.client("organizations")
        self.org_id = self.client.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        self.root = self.client.list_roots()["Roots"][0]["Id"]

    def ou(self, name: str, parent: str | None = None) -> str:
        return self.client.create_organizational_unit(ParentId=parent or self.root, Name=name)["OrganizationalUnit"]["Id"]

    def enroll(self, parent: str | None = None, account_id: str | None = None, **fields) -> str:
        account_id = account_id or str(next(_account_ids))
        body = {"managementAccount": self.id, "accountId": account_id, **fields}
        if parent:
            body["parentId"] = parent
        self.emulator.post("/_emulator/organizations/accounts", body)
        return account_id

    def accounts_in(self, parent: str, **kwargs) -> list[str]:
        pages = self.client.get_paginator("list_accounts_for_parent").paginate(ParentId=parent, **kwargs)
        return [a["Id"] for page in pages for a in page["Accounts"]]

    def move(self, account_id: str, source: str, destination: str) -> None:
        self.client.move_account(AccountId=account_id, SourceParentId=source, DestinationParentId=destination)


@pytest.fixture
def org(emulator) -> Org:
    return Org(emulator)


# --- routing, the organization, enrolment ------------------------------------------


def test_the_management_account_sees_its_organization_through_the_one_endpoint(org):
    described = org.client.describe_organization()["Organization"]
    assert described["Id"] == org.org_id and described["MasterAccountId"] == org.id
    assert described["Arn"] == f"arn:aws:organizations::{org.id}:organization/{org.org_id}"
    calls = org.admin.calls("organizations")
    assert [c["operation"] for c in calls] == ["CreateOrganization", "ListRoots", "DescribeOrganization"]
    assert {c["service"] for c in calls} == {"organizations"}


def test_an_enrolled_account_is_an_active_invited_member(org, emulator):
    ou = org.ou("prod")
    member = str(next(_account_ids))
    body = {"managementAccount": org.id, "accountId": member, "parentId": ou, "name": "prod-1", "email": "p1@example.com"}
    enrolled = emulator.post("/_emulator/organizations/accounts", body)
    assert enrolled == {
        "accountId": member,
        "managementAccount": org.id,
        "organizationId": org.org_id,
        "arn": f"arn:aws:organizations::{org.id}:account/{org.org_id}/{member}",
        "parentId": ou,
        "path": f"{org.org_id}/{org.root}/{ou}/",
        "name": "prod-1",
        "email": "p1@example.com",
        "status": "ACTIVE",
        "joinedMethod": "INVITED",
    }
    assert emulator.get(f"/_emulator/organizations/accounts/{member}") == enrolled
    described = org.client.describe_account(AccountId=member)["Account"]
    assert {k: described[k] for k in ("Id", "Arn", "Name", "Email", "Status", "JoinedMethod")} == {
        "Id": member,
        "Arn": enrolled["arn"],
        "Name": "prod-1",
        "Email": "p1@example.com",
        "Status": "ACTIVE",
        "JoinedMethod": "INVITED",
    }
    assert org.client.list_parents(ChildId=member)["Parents"] == [{"Id": ou, "Type": "ORGANIZATIONAL_UNIT"}]
    assert org.accounts_in(ou) == [member]
    assert member in [a["Id"] for a in org.client.list_accounts()["Accounts"]]
    # A principal of the member sees the organization it belongs to; no role was created in it.
    member_admin = admin(emulator, member)
    assert member_admin.client("organizations").describe_organization()["Organization"]["Id"] == org.org_id
    assert [r["RoleName"] for r in member_admin.client("iam").list_roles()["Roles"]] == []


def test_enrolment_defaults_to_the_root_and_takes_a_status(org, emulator):
    plain = org.enroll()
    assert emulator.get(f"/_emulator/organizations/accounts/{plain}")["parentId"] == org.root
    assert org.client.describe_account(AccountId=plain)["Account"]["Name"] == f"account-{plain}"
    suspended = org.enroll(status="SUSPENDED")
    assert org.client.describe_account(AccountId=suspended)["Account"]["Status"] == "SUSPENDED"
    listed = {a["Id"]: a["Status"] for a in org.client.list_accounts_for_parent(ParentId=org.root)["Accounts"]}
    assert listed == {org.id: "ACTIVE", plain: "ACTIVE", suspended: "SUSPENDED"}


def test_enrolment_refuses_what_cannot_be(org, emulator):
    member = org.enroll()
    path = "/_emulator/organizations/accounts"
    fresh = str(next(_account_ids))
    assert "already belongs" in emulator.post(path, {"managementAccount": org.id, "accountId": member}, expect=400)["error"]
    # The management account of another organization is in one too.
    assert "already belongs" in emulator.post(path, {"managementAccount": org.id, "accountId": Org(emulator).id}, expect=400)["error"]
    assert "no organization" in emulator.post(path, {"managementAccount": fresh, "accountId": str(next(_account_ids))}, expect=404)["error"]
    unknown_ou = f"ou-{org.root[2:]}-zzzzzzzz"
    assert "no root or OU" in emulator.post(path, {"managementAccount": org.id, "accountId": fresh, "parentId": unknown_ou}, expect=404)["error"]
    emulator.post(path, {"managementAccount": org.id, "accountId": "12345"}, expect=400)
    emulator.post(path, {"managementAccount": org.id, "accountId": fresh, "status": "GONE"}, expect=400)
    emulator.get(f"/_emulator/organizations/accounts/{fresh}", expect=404)


# --- OUs ----------------------------------------------------------------------------


def test_nested_ous_list_describe_and_name_their_parents(org):
    team = org.ou("team")
    prod = org.ou("prod", team)
    edge = org.ou("edge", prod)
    units = org.client.list_organizational_units_for_parent(ParentId=org.root)["OrganizationalUnits"]
    assert [(u["Id"], u["Name"]) for u in units] == [(team, "team")]
    assert [u["Id"] for u in org.client.list_organizational_units_for_parent(ParentId=team)["OrganizationalUnits"]] == [prod]
    assert [u["Id"] for u in org.client.list_organizational_units_for_parent(ParentId=prod)["OrganizationalUnits"]] == [edge]
    assert org.client.list_organizational_units_for_parent(ParentId=edge)["OrganizationalUnits"] == []
    described = org.client.describe_organizational_unit(OrganizationalUnitId=edge)["OrganizationalUnit"]
    assert described == {"Id": edge, "Arn": f"arn:aws:organizations::{org.id}:ou/{org.org_id}/{edge}", "Name": "edge"}
    assert org.client.list_parents(ChildId=edge)["Parents"] == [{"Id": prod, "Type": "ORGANIZATIONAL_UNIT"}]
    assert org.client.list_parents(ChildId=team)["Parents"] == [{"Id": org.root, "Type": "ROOT"}]
    deep = org.enroll(edge)
    assert org.accounts_in(edge) == [deep] and org.accounts_in(prod) == [] and org.accounts_in(team) == []


def test_ou_errors(org):
    team = org.ou("team")
    assert error(lambda: org.ou("team"))[0] == "DuplicateOrganizationalUnitException"
    org.ou("team", team)  # the same name under another parent is another OU
    unknown = f"ou-{org.root[2:]}-zzzzzzzz"
    assert error(lambda: org.ou("x", unknown))[0] == "ParentNotFoundException"
    assert error(lambda: org.client.describe_organizational_unit(OrganizationalUnitId=unknown))[0] == "OrganizationalUnitNotFoundException"
    assert error(lambda: org.client.list_accounts_for_parent(ParentId=unknown))[0] == "ParentNotFoundException"
    assert error(lambda: org.client.list_organizational_units_for_parent(ParentId=unknown))[0] == "ParentNotFoundException"
    assert error(lambda: org.client.list_parents(ChildId=str(next(_account_ids))))[0] == "ChildNotFoundException"
    assert error(lambda: org.client.delete_organizational_unit(OrganizationalUnitId=team))[0] == "OrganizationalUnitNotEmptyException"
    lonely = org.ou("lonely")
    member = org.enroll(lonely)
    assert error(lambda: org.client.delete_organizational_unit(OrganizationalUnitId=lonely))[0] == "OrganizationalUnitNotEmptyException"
    org.move(member, lonely, org.root)
    org.client.delete_organizational_unit(OrganizationalUnitId=lonely)


# --- paging -------------------------------------------------------------------------


def test_accounts_under_an_ou_page_by_twenty_to_the_end(org):
    ou = org.ou("many")
    members = [org.enroll(ou) for _ in range(45)]
    first = org.client.list_accounts_for_parent(ParentId=ou)
    assert len(first["Accounts"]) == 20 and first["NextToken"]
    second = org.client.list_accounts_for_parent(ParentId=ou, NextToken=first["NextToken"])
    third = org.client.list_accounts_for_parent(ParentId=ou, NextToken=second["NextToken"])
    assert len(second["Accounts"]) == 20 and len(third["Accounts"]) == 5 and "NextToken" not in third
    listed = [a["Id"] for page in (first, second, third) for a in page["Accounts"]]
    assert listed == members  # in the order they joined
    assert org.accounts_in(ou, PaginationConfig={"PageSize": 7}) == members
    assert org.accounts_in(ou, PaginationConfig={"PageSize": 20}) == members
    assert len(org.client.list_accounts()["Accounts"]) == 20


def test_max_results_and_tokens_are_checked(org):
    ou = org.ou("checked")
    other = org.ou("other")
    for _ in range(3):
        org.enroll(ou)
    # As an SDK that checks nothing (the Rust SDK does not check ranges) sends them.
    unchecked = _SESSION.client(
        "organizations",
        endpoint_url=org.emulator.url,
        config=RETRIES_OFF.merge(Config(parameter_validation=False)),
        **org.admin.credentials,
    )
    for bad, reason in ((0, "MIN_VALUE_EXCEEDED"), (21, "MAX_VALUE_EXCEEDED")):
        with pytest.raises(ClientError) as raised:
            unchecked.list_accounts_for_parent(ParentId=ou, MaxResults=bad)
        assert raised.value.response["Error"]["Code"] == "InvalidInputException"
        assert raised.value.response["Reason"] == reason
    assert error(lambda: org.client.list_organizational_units_for_parent(ParentId=ou, MaxResults=21))[0] == "InvalidInputException"
    token = org.client.list_accounts_for_parent(ParentId=ou, MaxResults=1)["NextToken"]
    assert error(lambda: org.client.list_accounts_for_parent(ParentId=other, NextToken=token))[0] == "InvalidInputException"
    assert error(lambda: org.client.list_organizational_units_for_parent(ParentId=ou, NextToken=token))[0] == "InvalidInputException"
    assert error(lambda: org.client.list_accounts_for_parent(ParentId=ou, NextToken="garbage"))[0] == "InvalidInputException"


def test_a_token_survives_accounts_moving_away_between_pages(org):
    ou = org.ou("moving")
    members = [org.enroll(ou) for _ in range(6)]
    first = org.client.list_accounts_for_parent(ParentId=ou, MaxResults=3)
    assert [a["Id"] for a in first["Accounts"]] == members[:3]
    org.move(members[2], ou, org.root)  # the last one listed
    org.move(members[3], ou, org.root)  # the next one
    rest = org.client.list_accounts_for_parent(ParentId=ou, MaxResults=3, NextToken=first["NextToken"])
    assert [a["Id"] for a in rest["Accounts"]] == members[4:] and "NextToken" not in rest


def test_ous_page_by_twenty(org):
    parent = org.ou("parent")
    units = [org.ou(f"u{n:02}", parent) for n in range(23)]
    first = org.client.list_organizational_units_for_parent(ParentId=parent)
    assert len(first["OrganizationalUnits"]) == 20 and first["NextToken"]
    pages = org.client.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent)
    assert [u["Id"] for page in pages for u in page["OrganizationalUnits"]] == units


# --- MoveAccount and removal ----------------------------------------------------------


def test_move_account_in_and_out(org):
    ou = org.ou("prod")
    member = org.enroll()
    org.move(member, org.root, ou)
    assert org.client.list_parents(ChildId=member)["Parents"] == [{"Id": ou, "Type": "ORGANIZATIONAL_UNIT"}]
    assert org.accounts_in(ou) == [member] and member not in org.accounts_in(org.root)
    org.move(member, ou, org.root)
    assert org.client.list_parents(ChildId=member)["Parents"] == [{"Id": org.root, "Type": "ROOT"}]
    assert org.accounts_in(ou) == []


def test_move_account_errors(org):
    ou, other = org.ou("a"), org.ou("b")
    member = org.enroll(ou)
    unknown = f"ou-{org.root[2:]}-zzzzzzzz"
    assert error(lambda: org.move(member, ou, ou))[0] == "DuplicateAccountException"
    assert error(lambda: org.move(member, other, org.root))[0] == "SourceParentNotFoundException"
    assert error(lambda: org.move(member, unknown, org.root))[0] == "SourceParentNotFoundException"
    assert error(lambda: org.move(member, ou, unknown))[0] == "DestinationParentNotFoundException"
    assert error(lambda: org.move(str(next(_account_ids)), ou, other))[0] == "AccountNotFoundException"
    assert org.accounts_in(ou) == [member]


def test_remove_account_from_organization(org, emulator):
    ou = org.ou("prod")
    member, stays = org.enroll(ou), org.enroll(ou)
    org.client.remove_account_from_organization(AccountId=member)
    assert org.accounts_in(ou) == [stays]
    assert error(lambda: org.client.describe_account(AccountId=member))[0] == "AccountNotFoundException"
    assert error(lambda: org.client.remove_account_from_organization(AccountId=member))[0] == "AccountNotFoundException"
    code, _ = error(lambda: admin(emulator, member).client("organizations").describe_organization())
    assert code == "AWSOrganizationsNotInUseException"
    emulator.get(f"/_emulator/organizations/accounts/{member}", expect=404)
    # Free again: another organization may take it in.
    assert emulator.post("/_emulator/organizations/accounts", {"managementAccount": Org(emulator).id, "accountId": member})
    code, _ = error(lambda: org.client.remove_account_from_organization(AccountId=org.id))
    assert code == "MasterCannotLeaveOrganizationException"


def test_the_control_api_removes_a_member(org, emulator):
    member = org.enroll()
    assert emulator.delete(f"/_emulator/organizations/accounts/{member}") == {"removed": 1}
    assert member not in org.accounts_in(org.root)
    emulator.delete(f"/_emulator/organizations/accounts/{member}", expect=404)
    assert "management account" in emulator.delete(f"/_emulator/organizations/accounts/{org.id}", expect=400)["error"]


def test_reset_forgets_memberships(tmp_path):
    process = start_emulator(tmp_path)
    try:
        emulator = Emulator(process.url)
        org = Org(emulator)
        member = org.enroll()
        emulator.post("/_emulator/reset", {})
        emulator.get(f"/_emulator/organizations/accounts/{member}", expect=404)
        # moto's reset alone would leave the member marked as in an organization.
        made = admin(emulator, member).client("organizations").create_organization(FeatureSet="ALL")
        assert made["Organization"]["MasterAccountId"] == member
    finally:
        stop_emulator(process)


# --- who may call ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c, o: c.list_accounts_for_parent(ParentId=o.root),
        lambda c, o: c.list_organizational_units_for_parent(ParentId=o.root),
        lambda c, o: c.describe_organizational_unit(OrganizationalUnitId=o.ou(f"x{next(_account_ids)}")),
        lambda c, o: c.list_roots(),
        lambda c, o: c.list_accounts(),
        lambda c, o: c.describe_account(AccountId=o.id),
        lambda c, o: c.list_parents(ChildId=o.id),
        lambda c, o: c.move_account(AccountId=o.id, SourceParentId=o.root, DestinationParentId=o.ou(f"y{next(_account_ids)}")),
        lambda c, o: c.create_organizational_unit(ParentId=o.root, Name="z"),
    ],
    ids=["ListAccountsForParent", "ListOrganizationalUnitsForParent", "DescribeOrganizationalUnit", "ListRoots",
         "ListAccounts", "DescribeAccount", "ListParents", "MoveAccount", "CreateOrganizationalUnit"],
)
def test_a_member_that_is_not_the_management_account_is_refused(org, emulator, call):
    member = admin(emulator, org.enroll()).client("organizations")
    code, message = error(lambda: call(member, org))
    assert (code, message) == ("AccessDeniedException", DENIED)
    outsider = admin(emulator).client("organizations")
    code, message = error(lambda: call(outsider, org))
    assert code == "AWSOrganizationsNotInUseException"


def test_an_outsider_is_not_in_an_organization(emulator):
    code, message = error(lambda: admin(emulator).client("organizations").describe_organization())
    assert (code, message) == ("AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")


def test_a_delegated_administrator_may_read_but_not_change(org, emulator):
    ou = org.ou("prod")
    delegate_id = org.enroll()
    members = [org.enroll(ou) for _ in range(3)]
    delegate = admin(emulator, delegate_id).client("organizations")
    org.client.register_delegated_administrator(AccountId=delegate_id, ServicePrincipal="ssm.amazonaws.com")
    assert [a["Id"] for a in delegate.list_accounts_for_parent(ParentId=ou)["Accounts"]] == members
    assert [u["Id"] for u in delegate.list_organizational_units_for_parent(ParentId=org.root)["OrganizationalUnits"]] == [ou]
    assert delegate.describe_organizational_unit(OrganizationalUnitId=ou)["OrganizationalUnit"]["Name"] == "prod"
    assert delegate.list_roots()["Roots"][0]["Id"] == org.root
    assert delegate.describe_organization()["Organization"]["Id"] == org.org_id
    assert delegate.describe_account(AccountId=members[0])["Account"]["Id"] == members[0]
    code, message = error(lambda: delegate.move_account(AccountId=members[0], SourceParentId=ou, DestinationParentId=org.root))
    assert (code, message) == ("AccessDeniedException", DENIED)
    assert error(lambda: delegate.create_organizational_unit(ParentId=org.root, Name="mine"))[0] == "AccessDeniedException"
    org.client.deregister_delegated_administrator(AccountId=delegate_id, ServicePrincipal="ssm.amazonaws.com")
    assert error(lambda: delegate.list_accounts_for_parent(ParentId=ou)) == ("AccessDeniedException", DENIED)


# --- the operation table ----------------------------------------------------------------

OPERATIONS = [
    "CreateOrganization", "DescribeOrganization", "DeleteOrganization", "ListRoots", "CreateOrganizationalUnit",
    "DescribeOrganizationalUnit", "DeleteOrganizationalUnit", "ListOrganizationalUnitsForParent",
    "ListAccountsForParent", "ListAccounts", "ListChildren", "ListParents", "DescribeAccount", "MoveAccount",
    "RemoveAccountFromOrganization", "CloseAccount", "RegisterDelegatedAdministrator",
    "DeregisterDelegatedAdministrator", "ListDelegatedAdministrators", "ListDelegatedServicesForAccount",
    "EnableAWSServiceAccess", "DisableAWSServiceAccess",
]


def test_the_table_has_the_operations_sagekeeper_and_its_tests_use():
    table.install()
    assert [op for op in OPERATIONS if table.lookup("organizations", op) is None] == []


def test_the_table_covers_the_organizations_operations_the_rust_code_calls():
    """As test_operation_table's scan, for Organizations: every `.op_name()` call in the Rust
    sources that names an Organizations operation (and no operation of the other services the
    scan there covers) has an entry."""
    import botocore.session

    session = botocore.session.get_session()

    def snake(name: str) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()

    others = {
        snake(name)
        for service in ("ec2", "iam", "kms", "logs", "s3", "sagemaker", "sts")
        for name in session.get_service_model(service).operation_names
    }
    ours = {snake(name): name for name in session.get_service_model("organizations").operation_names}
    root = Path(__file__).resolve().parents[2]
    sources = [*root.glob("crates/**/*.rs"), *root.glob("tests/**/*.rs")]
    called = {m for f in sources for m in re.findall(r"\.\s*([a-z_0-9]+)\(\)", f.read_text())}
    used = sorted(ours[m] for m in called if m in ours and m not in others)
    table.install()
    assert [op for op in used if table.lookup("organizations", op) is None] == []


def enforced(org: Org, emulator: Emulator, *statements) -> Account:
    """A session of a role in the management account with these identity statements, under
    enforced IAM evaluation."""
    emulator.post("/_emulator/iam", {"mode": "enforce", "accounts": [org.id]})
    iam = org.admin.client("iam")
    trust = document({"Effect": "Allow", "Principal": {"AWS": org.admin.arn}, "Action": "sts:AssumeRole"})
    arn = iam.create_role(RoleName="reader", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName="reader", PolicyName="main", PolicyDocument=document(*statements))
    return org.admin.assume(arn)


def test_iam_evaluation_authorizes_on_the_root_ou_and_account_arns(org, emulator):
    prod, dev = org.ou("prod"), org.ou("dev")
    member = org.enroll(prod)
    prod_arn = f"arn:aws:organizations::{org.id}:ou/{org.org_id}/{prod}"
    session = enforced(
        org,
        emulator,
        {"Effect": "Allow", "Action": ["organizations:ListAccountsForParent", "organizations:DescribeOrganizationalUnit"], "Resource": prod_arn},
        {"Effect": "Allow", "Action": "organizations:DescribeOrganization", "Resource": "*"},
        {"Effect": "Allow", "Action": "organizations:DescribeAccount", "Resource": f"arn:aws:organizations::{org.id}:account/{org.org_id}/*"},
    )
    client = session.client("organizations")
    assert [a["Id"] for a in client.list_accounts_for_parent(ParentId=prod)["Accounts"]] == [member]
    assert client.describe_organizational_unit(OrganizationalUnitId=prod)["OrganizationalUnit"]["Id"] == prod
    assert client.describe_organization()["Organization"]["Id"] == org.org_id
    assert client.describe_account(AccountId=member)["Account"]["Id"] == member
    code, message = error(lambda: client.list_accounts_for_parent(ParentId=dev))
    dev_arn = f"arn:aws:organizations::{org.id}:ou/{org.org_id}/{dev}"
    assert code == "AccessDeniedException"
    assert message == (
        f"User: {session.arn} is not authorized to perform: organizations:ListAccountsForParent on resource: "
        f"{dev_arn} because no identity-based policy allows the organizations:ListAccountsForParent action"
    )
    code, message = error(lambda: client.list_organizational_units_for_parent(ParentId=org.root))
    assert code == "AccessDeniedException" and f"root/{org.org_id}/{org.root}" in message
    code, message = error(lambda: client.move_account(AccountId=member, SourceParentId=prod, DestinationParentId=dev))
    assert code == "AccessDeniedException" and f"account/{org.org_id}/{member}" in message
    refusal = session.calls("organizations")[-1]
    assert refusal["decision"] == "Deny" and refusal["action"] == "organizations:MoveAccount"


def test_resource_tags_of_ous_are_condition_keys(org, emulator):
    tagged = org.client.create_organizational_unit(ParentId=org.root, Name="t", Tags=[{"Key": "team", "Value": "ml"}])
    plain = org.ou("plain")
    session = enforced(
        org,
        emulator,
        {"Effect": "Allow", "Action": "organizations:ListAccountsForParent", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/team": "ml"}}},
    )
    client = session.client("organizations")
    assert client.list_accounts_for_parent(ParentId=tagged["OrganizationalUnit"]["Id"])["Accounts"] == []
    assert error(lambda: client.list_accounts_for_parent(ParentId=plain))[0] == "AccessDeniedException"


def test_create_organizational_unit_with_tags_needs_tag_resource(org, emulator):
    session = enforced(
        org,
        emulator,
        {"Effect": "Allow", "Action": "organizations:CreateOrganizationalUnit", "Resource": "*"},
    )
    client = session.client("organizations")
    client.create_organizational_unit(ParentId=org.root, Name="untagged")
    code, message = error(lambda: client.create_organizational_unit(ParentId=org.root, Name="tagged", Tags=[{"Key": "a", "Value": "b"}]))
    assert code == "AccessDeniedException" and "organizations:TagResource" in message


def test_create_organization_needs_the_service_linked_role(emulator):
    account = admin(emulator)
    emulator.post("/_emulator/iam", {"mode": "enforce", "accounts": [account.id]})
    iam = account.client("iam")
    trust = document({"Effect": "Allow", "Principal": {"AWS": account.arn}, "Action": "sts:AssumeRole"})
    arn = iam.create_role(RoleName="founder", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName="founder", PolicyName="main", PolicyDocument=document(
        {"Effect": "Allow", "Action": "organizations:CreateOrganization", "Resource": "*"}))
    client = account.assume(arn).client("organizations")
    code, message = error(lambda: client.create_organization(FeatureSet="ALL"))
    assert code == "AccessDeniedException" and "iam:CreateServiceLinkedRole" in message
    iam.put_role_policy(RoleName="founder", PolicyName="slr", PolicyDocument=document(
        {"Effect": "Allow", "Action": "iam:CreateServiceLinkedRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "organizations.amazonaws.com"}}}))
    assert client.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"] == account.id


# --- aws:PrincipalOrgID and aws:PrincipalOrgPaths ------------------------------------------


class Principals:
    """A management account with an OU `prod`, and three accounts, each with a role allowed
    `statements` by its identity policy: `inside` and `moved` in prod, `outsider` in no
    organization. IAM evaluation is enforced in all of them."""

    def __init__(self, emulator: Emulator, *statements):
        self.org = Org(emulator)
        self.prod = self.org.ou("prod")
        self.team = self.org.ou("team", self.prod)
        self.sessions, self.admins = {}, {}
        for name in ("inside", "moved", "outsider"):
            account = self.admins[name] = admin(emulator)
            if name != "outsider":
                self.org.enroll(self.team, account.id)
            emulator.post("/_emulator/iam", {"mode": "enforce", "accounts": [account.id]})
            iam = account.client("iam")
            trust = document({"Effect": "Allow", "Principal": {"AWS": account.arn}, "Action": "sts:AssumeRole"})
            arn = iam.create_role(RoleName="worker", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            iam.put_role_policy(RoleName="worker", PolicyName="main", PolicyDocument=document(*statements))
            self.sessions[name] = account.assume(arn)
        emulator.post("/_emulator/iam", {"mode": "enforce", "accounts": [self.org.id]})

    @property
    def prod_paths(self) -> str:
        return f"{self.org.org_id}/{self.org.root}/{self.prod}/*"

    def move_out(self) -> None:
        self.org.move(self.sessions["moved"].id, self.team, self.org.root)


def test_the_org_path_of_a_member_reaches_its_parent(emulator):
    org = Org(emulator)
    a = org.ou("a")
    b = org.ou("b", a)
    member = org.enroll(b)
    assert emulator.get(f"/_emulator/organizations/accounts/{member}")["path"] == f"{org.org_id}/{org.root}/{a}/{b}/"
    assert emulator.get(f"/_emulator/organizations/accounts/{org.id}")["path"] == f"{org.org_id}/{org.root}/"


def test_a_bucket_policy_on_org_paths_admits_the_ou_and_follows_moves(emulator):
    principals = Principals(emulator, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    s3 = principals.org.admin.client("s3")
    s3.create_bucket(Bucket=f"shared-{principals.org.id}")
    bucket = f"shared-{principals.org.id}"
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    s3.put_bucket_policy(Bucket=bucket, Policy=document({
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [principals.prod_paths]}},
    }))

    def read(name: str) -> str:
        try:
            principals.sessions[name].client("s3").get_object(Bucket=bucket, Key="k")["Body"].read()
            return "allowed"
        except ClientError as refused:
            return refused.response["Error"]["Code"]

    assert (read("inside"), read("moved"), read("outsider")) == ("allowed", "allowed", "AccessDenied")
    principals.move_out()
    assert (read("inside"), read("moved")) == ("allowed", "AccessDenied")
    principals.org.move(principals.sessions["moved"].id, principals.org.root, principals.team)
    assert read("moved") == "allowed"


def test_a_key_policy_on_org_id_and_paths(emulator):
    """Each account has a key whose policy admits principals by organization id and path only (a
    key policy must allow even within its account; moto cannot reach another account's key)."""
    principals = Principals(emulator, {"Effect": "Allow", "Action": ["kms:DescribeKey", "kms:Encrypt"], "Resource": "*"})
    org = principals.org
    keys = {}
    for name, owner in principals.admins.items():
        policy = document(
            {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": owner.arn}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Org", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:DescribeKey", "kms:Encrypt"],
             "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": org.org_id},
                                            "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [principals.prod_paths]}}},
        )
        keys[name] = owner.client("kms").create_key(Policy=policy)["KeyMetadata"]["Arn"]

    def use(name: str) -> str:
        try:
            principals.sessions[name].client("kms").encrypt(KeyId=keys[name], Plaintext=b"x")
            return "allowed"
        except ClientError as refused:
            return refused.response["Error"]["Code"]

    assert (use("inside"), use("moved"), use("outsider")) == ("allowed", "allowed", "AccessDeniedException")
    principals.move_out()
    assert (use("inside"), use("moved")) == ("allowed", "AccessDeniedException")
    call = principals.sessions["moved"].calls("kms")[-1]
    assert call["decision"] == "Deny" and "because no resource-based policy allows the kms:Encrypt action" in call["message"]
    # The keys are global keys the evaluator knows, not unknown ones judged against access.
    assert not any("unknown" in c for c in principals.sessions["inside"].calls("kms"))
    emulator.delete(f"/_emulator/organizations/accounts/{principals.sessions['inside'].id}")
    assert use("inside") == "AccessDeniedException"


def test_resource_org_paths_name_the_unit_of_the_account_owning_the_resource(emulator):
    """aws:ResourceOrgPaths (and aws:ResourceOrgID) of a request are those of the account that
    owns the resource, read at each request like the principal's."""
    principals = Principals(emulator, {"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"})
    org = principals.org
    for account in principals.admins.values():
        account.client("iam").put_role_policy(RoleName="worker", PolicyName="main", PolicyDocument=document(
            {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*", "Condition": {
                "StringEquals": {"aws:ResourceOrgID": org.org_id},
                "ForAnyValue:StringLike": {"aws:ResourceOrgPaths": [principals.prod_paths]}}}))

    def get(name: str) -> str:
        try:
            principals.sessions[name].client("iam").get_role(RoleName="worker")
            return "allowed"
        except ClientError as refused:
            return refused.response["Error"]["Code"]

    assert (get("inside"), get("moved"), get("outsider")) == ("allowed", "allowed", "AccessDenied")
    principals.move_out()
    assert (get("inside"), get("moved")) == ("allowed", "AccessDenied")


def test_a_trust_policy_on_org_id(emulator):
    """AssumeRole across accounts is judged on the trust policy with the caller's org keys."""
    principals = Principals(emulator, {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})
    org = principals.org
    trust = document({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
                      "Condition": {"StringEquals": {"aws:PrincipalOrgID": org.org_id}}})
    role = org.admin.client("iam").create_role(RoleName="org-reader", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    assert principals.sessions["inside"].assume(role).id == org.id
    assert error(lambda: principals.sessions["outsider"].assume(role))[0] == "AccessDenied"


def test_org_keys_count_when_evaluation_is_off(emulator):
    """The bucket-policy Deny the emulator evaluates outside IAM evaluation sees the keys too."""
    org = Org(emulator)
    owner = org.admin
    member, outsider = admin(emulator, org.enroll()), admin(emulator)
    bucket = f"org-only-{org.id}"
    s3 = owner.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    s3.put_bucket_policy(Bucket=bucket, Policy=document({
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringNotEquals": {"aws:PrincipalOrgID": org.org_id}},
    }))
    plain_member = emulator.new_account(member.id)
    plain_outsider = emulator.new_account(outsider.id)
    assert plain_member.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert error(lambda: plain_outsider.client("s3").get_object(Bucket=bucket, Key="k"))[0] == "AccessDenied"


def test_principal_tags_are_the_roles_tags_in_bucket_and_identity_policies(emulator):
    """aws:PrincipalTag/<key> of a session is its role's tag."""
    principals = Principals(emulator, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    owner = principals.org.admin
    bucket = f"tagged-{principals.org.id}"
    s3 = owner.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    s3.put_bucket_policy(Bucket=bucket, Policy=document({
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": principals.org.org_id, "aws:PrincipalTag/team": "fraud"}},
    }))

    def read(name: str) -> str:
        try:
            principals.sessions[name].client("s3").get_object(Bucket=bucket, Key="k")
            return "allowed"
        except ClientError as refused:
            return refused.response["Error"]["Code"]

    assert read("inside") == "AccessDenied", "untagged"
    principals.admins["inside"].client("iam").tag_role(RoleName="worker", Tags=[{"Key": "team", "Value": "fraud"}])
    principals.admins["moved"].client("iam").tag_role(RoleName="worker", Tags=[{"Key": "team", "Value": "other"}])
    assert (read("inside"), read("moved")) == ("allowed", "AccessDenied")
