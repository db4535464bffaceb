"""The model registry: group conflicts, group policies, deletes, version numbers, tags."""

import json

import pytest
from botocore.exceptions import ClientError

SPEC = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"}],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def register(sagemaker, group: str) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=SPEC, ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageArn"]


def group_arn(account, name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{account.id}:model-package-group/{name}"


def test_duplicate_model_package_group_is_a_validation_error_naming_it(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn", ModelPackageGroupDescription="first")
    code, message = error_of(lambda: sagemaker.create_model_package_group(ModelPackageGroupName="churn"))
    assert code == "ValidationException" and group_arn(account, "churn") in message
    assert (
        sagemaker.describe_model_package_group(ModelPackageGroupName="churn")["ModelPackageGroupDescription"]
        == "first"
    )


def test_group_policy_put_get_delete(account, other_account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{other_account.id}:root"},
                    "Action": "sagemaker:DescribeModelPackageGroup",
                    "Resource": group_arn(account, "churn"),
                }
            ],
        }
    )

    put = sagemaker.put_model_package_group_policy(ModelPackageGroupName="churn", ResourcePolicy=policy)
    assert put["ModelPackageGroupArn"] == group_arn(account, "churn")
    assert sagemaker.get_model_package_group_policy(ModelPackageGroupName="churn")["ResourcePolicy"] == policy
    sagemaker.delete_model_package_group_policy(ModelPackageGroupName="churn")
    code, message = error_of(lambda: sagemaker.get_model_package_group_policy(ModelPackageGroupName="churn"))
    assert (code, message) == (
        "ValidationException",
        f"Cannot find resource policy for: {group_arn(account, 'churn')}",
    )


def test_group_policy_calls_on_an_unknown_group_are_validation_errors(account):
    sagemaker = account.client("sagemaker")
    for call in (
        lambda: sagemaker.get_model_package_group_policy(ModelPackageGroupName="nope"),
        lambda: sagemaker.put_model_package_group_policy(ModelPackageGroupName="nope", ResourcePolicy="{}"),
        lambda: sagemaker.delete_model_package_group_policy(ModelPackageGroupName="nope"),
    ):
        assert error_of(call) == (
            "ValidationException",
            f"Cannot find Model Package Group: {group_arn(account, 'nope')}",
        )


def test_delete_group_is_refused_while_it_holds_versions(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    package = register(sagemaker, "churn")
    assert (
        error_of(lambda: sagemaker.delete_model_package_group(ModelPackageGroupName="churn"))[0]
        == "ConflictException"
    )

    sagemaker.delete_model_package(ModelPackageName=package)
    sagemaker.delete_model_package_group(ModelPackageGroupName="churn")
    assert (
        error_of(lambda: sagemaker.describe_model_package_group(ModelPackageGroupName="churn"))[0]
        == "ValidationException"
    )


def test_delete_model_package_by_arn_removes_only_that_version(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    first, second = register(sagemaker, "churn"), register(sagemaker, "churn")
    sagemaker.delete_model_package(ModelPackageName=first)
    listed = sagemaker.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [second]
    assert (
        error_of(lambda: sagemaker.describe_model_package(ModelPackageName=first))[0] == "ValidationException"
    )


def test_delete_unversioned_model_package_by_name(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package(ModelPackageName="standalone", InferenceSpecification=SPEC)
    sagemaker.delete_model_package(ModelPackageName="standalone")
    assert (
        error_of(lambda: sagemaker.describe_model_package(ModelPackageName="standalone"))[0]
        == "ValidationException"
    )


def test_version_numbers_are_never_reused_after_a_delete(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    register(sagemaker, "churn")
    second = register(sagemaker, "churn")
    sagemaker.delete_model_package(ModelPackageName=second)
    third = register(sagemaker, "churn")
    assert third.endswith("/churn/3")
    assert sagemaker.describe_model_package(ModelPackageName=third)["ModelPackageVersion"] == 3


def test_tags_on_a_model_package_arn(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    package = register(sagemaker, "churn")
    sagemaker.add_tags(ResourceArn=package, Tags=[{"Key": "stage", "Value": "staging"}])
    assert sagemaker.list_tags(ResourceArn=package)["Tags"] == [{"Key": "stage", "Value": "staging"}]
    sagemaker.delete_tags(ResourceArn=package, TagKeys=["stage"])
    assert sagemaker.list_tags(ResourceArn=package)["Tags"] == []


def test_tags_on_an_unknown_arn_are_a_validation_error(account):
    arn = f"arn:aws:sagemaker:us-east-1:{account.id}:model-package/none/1"
    assert (
        error_of(lambda: account.client("sagemaker").list_tags(ResourceArn=arn))[0] == "ValidationException"
    )
