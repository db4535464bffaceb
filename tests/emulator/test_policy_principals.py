"""Resource and trust policies naming principals that don't exist are refused, as in AWS."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import trust_policy


def policy_naming(principal, resource: str = "*", action: str = "kms:Decrypt") -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource}
            ],
        }
    )


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


@pytest.fixture
def principals(account, other_account):
    """Principals that exist: roles (one with a path) and a user, in this and another account."""
    for owner, name, path in (
        (account, "deployer", "/"),
        (account, "pathed", "/service/"),
        (other_account, "model-execution", "/"),
    ):
        owner.client("iam").create_role(
            RoleName=name, Path=path, AssumeRolePolicyDocument=trust_policy(owner.id)
        )
    return {
        "everyone": "*",
        "account id": account.id,
        "account root": f"arn:aws:iam::{other_account.id}:root",
        "role": f"arn:aws:iam::{account.id}:role/deployer",
        "role with path, named with its path": f"arn:aws:iam::{account.id}:role/service/pathed",
        "role with path, named by name": f"arn:aws:iam::{account.id}:role/pathed",
        "cross-account role": f"arn:aws:iam::{other_account.id}:role/model-execution",
        "user": account.arn,
    }


def test_existing_principals_are_accepted_everywhere(account, principals):
    kms, s3, iam = account.client("kms"), account.client("s3"), account.client("iam")
    bucket = f"principals-{account.id}"
    s3.create_bucket(Bucket=bucket)
    for index, principal in enumerate(principals.values()):
        key = kms.create_key(Policy=policy_naming({"AWS": principal}))["KeyMetadata"]["KeyId"]
        kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy_naming({"AWS": [principal]}))
        s3.put_bucket_policy(
            Bucket=bucket,
            Policy=policy_naming({"AWS": principal}, f"arn:aws:s3:::{bucket}/*", "s3:GetObject"),
        )
        iam.create_role(RoleName=f"trusting-{index}", AssumeRolePolicyDocument=trust_policy(principal))


def test_service_principals_are_not_checked(account):
    account.client("kms").create_key(Policy=policy_naming({"Service": "nothing.amazonaws.com"}))
    account.client("iam").create_role(
        RoleName="svc",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )


def test_kms_refuses_unknown_principals_on_create_and_put(account):
    kms = account.client("kms")
    unknown = {"AWS": f"arn:aws:iam::{account.id}:role/nobody"}
    expected = (
        "MalformedPolicyDocumentException",
        "Policy contains a statement with one or more invalid principals.",
    )
    assert error_of(lambda: kms.create_key(Policy=policy_naming(unknown))) == expected
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    assert (
        error_of(lambda: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=policy_naming(unknown)))
        == expected
    )


def test_s3_refuses_a_bucket_policy_with_an_unknown_principal(account):
    s3, bucket = account.client("s3"), f"unknown-{account.id}"
    s3.create_bucket(Bucket=bucket)
    policy = policy_naming(
        {"AWS": [account.arn, f"arn:aws:iam::{account.id}:user/ghost"]},
        f"arn:aws:s3:::{bucket}/*",
        "s3:GetObject",
    )
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    error = raised.value.response
    assert (error["Error"]["Code"], error["Error"]["Message"]) == (
        "MalformedPolicy",
        "Invalid principal in policy",
    )
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_iam_refuses_trust_policies_with_an_unknown_principal(account):
    iam = account.client("iam")
    ghost = f"arn:aws:iam::{account.id}:role/ghost"
    expected = ("MalformedPolicyDocument", f'Invalid principal in policy: "AWS":"{ghost}"')
    assert (
        error_of(lambda: iam.create_role(RoleName="r", AssumeRolePolicyDocument=trust_policy(ghost)))
        == expected
    )
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=trust_policy(account.id))
    assert (
        error_of(lambda: iam.update_assume_role_policy(RoleName="r", PolicyDocument=trust_policy(ghost)))
        == expected
    )


def test_a_role_of_another_account_with_the_same_name_does_not_count(account, other_account):
    other_account.client("iam").create_role(
        RoleName="only-there", AssumeRolePolicyDocument=trust_policy(other_account.id)
    )
    code, _ = error_of(
        lambda: account.client("kms").create_key(
            Policy=policy_naming({"AWS": f"arn:aws:iam::{account.id}:role/only-there"})
        )
    )
    assert code == "MalformedPolicyDocumentException"


def test_new_roles_are_unknown_during_iam_propagation(account):
    account.configure(iamPropagationSeconds=1)
    account.client("iam").create_role(RoleName="fresh", AssumeRolePolicyDocument=trust_policy(account.id))
    fresh = f"arn:aws:iam::{account.id}:role/fresh"
    s3, bucket = account.client("s3"), f"fresh-{account.id}"
    s3.create_bucket(Bucket=bucket)
    bucket_policy = policy_naming({"AWS": fresh}, f"arn:aws:s3:::{bucket}/*", "s3:GetObject")

    assert (
        error_of(lambda: account.client("kms").create_key(Policy=policy_naming({"AWS": fresh})))[0]
        == "MalformedPolicyDocumentException"
    )
    assert error_of(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy))[0] == "MalformedPolicy"
    assert error_of(lambda: account.assume(fresh))[0] == "AccessDenied"

    time.sleep(1.1)
    account.client("kms").create_key(Policy=policy_naming({"AWS": fresh}))
    s3.put_bucket_policy(Bucket=bucket, Policy=bucket_policy)
    account.assume(fresh)
