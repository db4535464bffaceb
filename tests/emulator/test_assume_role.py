"""AssumeRole: the role must exist and trust the caller (ExternalId included), as in AWS."""

import pytest
from botocore.exceptions import ClientError

from conftest import trust_policy


def make_role(owner, name: str, policy: str) -> str:
    return owner.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=policy)["Role"]["Arn"]


def denial(caller, role_arn: str, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as raised:
        caller.assume(role_arn, **kwargs)
    error = raised.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_assuming_a_role_that_does_not_exist_is_access_denied(account, other_account):
    role = f"arn:aws:iam::{other_account.id}:role/missing"
    assert denial(account, role) == (
        "AccessDenied",
        f"User: {account.arn} is not authorized to perform: sts:AssumeRole on resource: {role}",
        403,
    )


def test_trusted_account_root_may_assume_and_lands_in_the_role_account(account, other_account):
    role = make_role(other_account, "deployer", trust_policy(f"arn:aws:iam::{account.id}:root"))
    assumed = account.assume(role, session_name="sagekeeper")
    identity = assumed.client("sts").get_caller_identity()
    assert identity["Account"] == other_account.id
    assert identity["Arn"] == f"arn:aws:sts::{other_account.id}:assumed-role/deployer/sagekeeper"
    assumed.client("sagemaker").list_models()
    assert other_account.operations() == ["CreateRole", "GetCallerIdentity", "ListModels"]


def test_caller_outside_the_trust_policy_is_denied(account, other_account, emulator):
    stranger = emulator.new_account()
    role = make_role(other_account, "deployer", trust_policy(account.id))
    assert denial(stranger, role)[0] == "AccessDenied"
    account.assume(role)


def test_trust_naming_the_callers_user_admits_only_that_user(account, other_account, emulator):
    colleague = emulator.new_account(account.id)
    role = make_role(other_account, "deployer", trust_policy(account.arn))
    account.assume(role)
    assert denial(colleague, role)[0] == "AccessDenied"


def test_trust_naming_a_role_admits_sessions_of_that_role(account, other_account):
    controller = make_role(account, "controller", trust_policy(account.id))
    target = make_role(other_account, "deployer", trust_policy(controller))
    account.assume(controller).assume(target)
    assert denial(account, target)[0] == "AccessDenied"


def test_trust_for_everyone_admits_any_account(account, other_account):
    role = make_role(other_account, "open", trust_policy("*"))
    account.assume(role)


def test_external_id_condition_must_be_satisfied(account, other_account):
    role = make_role(
        other_account, "deployer", trust_policy(account.id, StringEquals={"sts:ExternalId": "fraud-7f3a"})
    )
    assert denial(account, role)[0] == "AccessDenied"
    assert denial(account, role, ExternalId="wrong")[0] == "AccessDenied"
    account.assume(role, ExternalId="fraud-7f3a")


def test_calls_with_assumed_credentials_are_logged_in_the_role_account(account, other_account):
    role = make_role(other_account, "deployer", trust_policy(account.id))
    account.assume(role).client("ec2").describe_vpcs()
    assert account.operations() == ["AssumeRole"]
    assert other_account.calls("ec2")[0]["account"] == other_account.id
