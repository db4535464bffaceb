"""An MLOpsProject's calls: registry groups, versions and approval, pipelines and executions, S3 objects."""

import json
import time
from datetime import datetime
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from sagekeeper_emulator.sagemaker import registry

DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": []})
NEW_DEFINITION = json.dumps(
    {"Version": "2020-12-01", "Parameters": [{"Name": "Epochs", "Type": "Integer"}], "Steps": []}
)
SPEC = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"}],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}
TAGS = [{"Key": "sagekeeper.io/owner", "Value": "team-a/churn"}, {"Key": "team", "Value": "a"}]


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def token(char: str) -> str:
    return char * 32


def role(account, name: str = "pipeline") -> str:
    return f"arn:aws:iam::{account.id}:role/{name}"


def create_pipeline(sagemaker, account, name: str = "train", **kwargs) -> str:
    return sagemaker.create_pipeline(
        PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=role(account), **kwargs
    )["PipelineArn"]


def register(sagemaker, group: str = "churn") -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=SPEC, ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageArn"]


def versions(sagemaker, group: str = "churn", **kwargs) -> list[int]:
    listed = sagemaker.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", **kwargs
    )["ModelPackageSummaryList"]
    return [p["ModelPackageVersion"] for p in listed]


def execution_status(sagemaker, arn: str) -> str:
    return sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]


# Model package groups


def test_group_created_with_tags_is_described_and_lists_them(account):
    sagemaker = account.client("sagemaker")
    created = sagemaker.create_model_package_group(ModelPackageGroupName="churn", Tags=TAGS)
    arn = created["ModelPackageGroupArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:{account.id}:model-package-group/churn"
    described = sagemaker.describe_model_package_group(ModelPackageGroupName="churn")
    assert (described["ModelPackageGroupArn"], described["ModelPackageGroupStatus"]) == (arn, "Completed")
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == TAGS

    sagemaker.add_tags(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "b"}, {"Key": "stage", "Value": "dev"}]
    )
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["sagekeeper.io/owner"])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "b"},
        {"Key": "stage", "Value": "dev"},
    ]


def test_describe_of_an_unknown_group_is_a_validation_error(account):
    code, message = error_of(
        lambda: account.client("sagemaker").describe_model_package_group(ModelPackageGroupName="nope")
    )
    assert code == "ValidationException"
    assert f"arn:aws:sagemaker:us-east-1:{account.id}:model-package-group/nope" in message


def test_group_policy_is_put_read_and_deleted(account):
    sagemaker = account.client("sagemaker")
    arn = sagemaker.create_model_package_group(ModelPackageGroupName="churn")["ModelPackageGroupArn"]
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account.id}:root"},
                    "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
                    "Resource": [arn, arn.replace("model-package-group/", "model-package/") + "/*"],
                }
            ],
        }
    )
    assert sagemaker.put_model_package_group_policy(ModelPackageGroupName="churn", ResourcePolicy=policy)[
        "ModelPackageGroupArn"
    ] == arn
    assert sagemaker.get_model_package_group_policy(ModelPackageGroupName="churn")["ResourcePolicy"] == policy
    sagemaker.delete_model_package_group_policy(ModelPackageGroupName="churn")
    assert (
        error_of(lambda: sagemaker.get_model_package_group_policy(ModelPackageGroupName="churn"))[0]
        == "ValidationException"
    )


def test_group_is_deleted_after_its_versions(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    packages = [register(sagemaker), register(sagemaker)]
    for package in packages:
        sagemaker.delete_model_package(ModelPackageName=package)
    assert versions(sagemaker) == []
    sagemaker.delete_model_package_group(ModelPackageGroupName="churn")
    assert (
        error_of(lambda: sagemaker.describe_model_package_group(ModelPackageGroupName="churn"))[0]
        == "ValidationException"
    )


# Model package versions


def test_versions_are_listed_newest_first_with_number_arn_and_approval(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    sagemaker.create_model_package_group(ModelPackageGroupName="other")
    arns = [register(sagemaker) for _ in range(4)]
    register(sagemaker, "other")

    listed = sagemaker.list_model_packages(
        ModelPackageGroupName="churn", SortBy="CreationTime", SortOrder="Descending"
    )["ModelPackageSummaryList"]
    assert [p["ModelPackageVersion"] for p in listed] == [4, 3, 2, 1]
    assert [p["ModelPackageArn"] for p in listed] == arns[::-1]
    assert arns[0] == f"arn:aws:sagemaker:us-east-1:{account.id}:model-package/churn/1"
    assert {p["ModelApprovalStatus"] for p in listed} == {"PendingManualApproval"}
    assert {(p["ModelPackageGroupName"], p["ModelPackageStatus"]) for p in listed} == {("churn", "Completed")}
    times = [p["CreationTime"] for p in listed]
    assert times == sorted(times, reverse=True)

    first = sagemaker.list_model_packages(
        ModelPackageGroupName="churn", SortBy="CreationTime", SortOrder="Descending", MaxResults=3
    )
    assert [p["ModelPackageVersion"] for p in first["ModelPackageSummaryList"]] == [4, 3, 2]
    assert versions(sagemaker, NextToken=first["NextToken"], MaxResults=3) == [1]
    assert versions(sagemaker, MaxResults=1) == [4]


def test_versions_created_in_the_same_instant_keep_their_creation_order():
    # moto stamps versions with utcnow(); equal stamps must still list by version, both ways.
    now = datetime(2025, 1, 1)
    packages = [SimpleNamespace(creation_time=now, model_package_version=v) for v in (2, 1, 3)]
    listing = registry._ordered_by_creation(lambda self, **kwargs: list(packages))
    for order, expected in (("Descending", [3, 2, 1]), ("Ascending", [1, 2, 3]), (None, [1, 2, 3])):
        listed = listing(None, sort_by="CreationTime", sort_order=order)
        assert [p.model_package_version for p in listed] == expected


def test_approval_changes_what_the_status_filter_lists(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    first, second, third = (register(sagemaker) for _ in range(3))
    assert versions(sagemaker, ModelApprovalStatus="Approved") == []

    for arn in (first, third):
        updated = sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
        assert updated["ModelPackageArn"] == arn
    assert versions(sagemaker, ModelApprovalStatus="Approved") == [3, 1]
    assert versions(sagemaker, ModelApprovalStatus="Approved", MaxResults=1) == [3]
    assert versions(sagemaker, ModelApprovalStatus="PendingManualApproval") == [2]

    sagemaker.update_model_package(ModelPackageArn=third, ModelApprovalStatus="Rejected")
    assert versions(sagemaker, ModelApprovalStatus="Approved", MaxResults=1) == [1]
    assert versions(sagemaker, ModelApprovalStatus="Rejected") == [3]
    listed = sagemaker.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert {p["ModelPackageVersion"]: p["ModelApprovalStatus"] for p in listed} == {
        1: "Approved",
        2: "PendingManualApproval",
        3: "Rejected",
    }
    assert sagemaker.describe_model_package(ModelPackageName=third)["ModelApprovalStatus"] == "Rejected"


def test_update_model_package_changes_only_what_it_names(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="churn")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName="churn",
        InferenceSpecification=SPEC,
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"commit": "abc123", "auc": "0.91"},
    )["ModelPackageArn"]
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok"
    )
    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"auc": "0.92"})
    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataPropertiesToRemove=["commit"])
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "ok"
    assert described["CustomerMetadataProperties"] == {"auc": "0.92"}
    assert described["InferenceSpecification"]["Containers"] == SPEC["Containers"]
    assert "LastModifiedTime" in described


def test_update_of_an_unknown_model_package_is_a_validation_error(account):
    arn = f"arn:aws:sagemaker:us-east-1:{account.id}:model-package/churn/9"
    sagemaker = account.client("sagemaker")
    code, _ = error_of(
        lambda: sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    )
    assert code == "ValidationException"


# Pipelines


def test_pipeline_is_described_with_its_definition_and_role_and_lists_its_tags(account):
    sagemaker = account.client("sagemaker")
    arn = create_pipeline(sagemaker, account, Tags=TAGS, ClientRequestToken=token("c"))
    assert arn == f"arn:aws:sagemaker:us-east-1:{account.id}:pipeline/train"
    described = sagemaker.describe_pipeline(PipelineName="train")
    assert (described["PipelineArn"], described["PipelineDefinition"], described["RoleArn"]) == (
        arn,
        DEFINITION,
        role(account),
    )
    assert described["PipelineStatus"] == "Active"
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == TAGS

    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "team", "Value": "b"}])
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["sagekeeper.io/owner"])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "b"}]


def test_update_pipeline_replaces_definition_and_role(account):
    sagemaker = account.client("sagemaker")
    arn = create_pipeline(sagemaker, account)
    created = sagemaker.describe_pipeline(PipelineName="train")
    time.sleep(0.01)  # timestamps have millisecond precision on the wire
    updated = sagemaker.update_pipeline(
        PipelineName="train", PipelineDefinition=NEW_DEFINITION, RoleArn=role(account, "pipeline-v2")
    )
    assert updated["PipelineArn"] == arn
    described = sagemaker.describe_pipeline(PipelineName="train")
    assert described["PipelineDefinition"] == NEW_DEFINITION
    assert described["RoleArn"] == role(account, "pipeline-v2")
    assert described["CreationTime"] == created["CreationTime"]
    assert described["LastModifiedTime"] > created["LastModifiedTime"]


def test_unknown_pipeline_is_resource_not_found(account):
    sagemaker = account.client("sagemaker")
    arn = f"arn:aws:sagemaker:us-east-1:{account.id}:pipeline/nope"
    for call in (
        lambda: sagemaker.describe_pipeline(PipelineName="nope"),
        lambda: sagemaker.delete_pipeline(PipelineName="nope", ClientRequestToken=token("d")),
        lambda: sagemaker.update_pipeline(PipelineName="nope", PipelineDefinition=DEFINITION),
        lambda: sagemaker.start_pipeline_execution(PipelineName="nope"),
        lambda: sagemaker.list_pipeline_executions(PipelineName="nope"),
    ):
        code, message = error_of(call)
        assert code == "ResourceNotFound" and arn in message


def test_duplicate_pipeline_name_is_a_validation_error(account):
    sagemaker = account.client("sagemaker")
    create_pipeline(sagemaker, account, ClientRequestToken=token("a"))
    for kwargs in ({}, {"ClientRequestToken": token("b")}):
        code, message = error_of(lambda: create_pipeline(sagemaker, account, **kwargs))
        assert code == "ValidationException"
        assert message == (
            "Pipeline names must be unique within an AWS account and region. "
            "Pipeline with name (train) already exists."
        )


def test_create_pipeline_retried_with_its_token_returns_the_pipeline(account):
    sagemaker = account.client("sagemaker")
    arn = create_pipeline(sagemaker, account, ClientRequestToken=token("a"))
    retried = sagemaker.create_pipeline(
        PipelineName="train",
        PipelineDefinition=NEW_DEFINITION,
        RoleArn=role(account),
        ClientRequestToken=token("a"),
    )
    assert retried["PipelineArn"] == arn
    assert sagemaker.describe_pipeline(PipelineName="train")["PipelineDefinition"] == DEFINITION
    assert [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]] == ["train"]

    # The token belongs to that create: after a delete, the name is free and the old token means nothing.
    sagemaker.delete_pipeline(PipelineName="train", ClientRequestToken=token("d"))
    create_pipeline(sagemaker, account, ClientRequestToken=token("b"))
    assert error_of(lambda: create_pipeline(sagemaker, account, ClientRequestToken=token("a")))[0] == (
        "ValidationException"
    )


def test_delete_pipeline_removes_it_and_its_executions(account):
    sagemaker = account.client("sagemaker")
    arn = create_pipeline(sagemaker, account)
    execution = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))[
        "PipelineExecutionArn"
    ]
    deleted = sagemaker.delete_pipeline(PipelineName="train", ClientRequestToken=token("d"))
    assert deleted["PipelineArn"] == arn
    assert error_of(lambda: sagemaker.describe_pipeline(PipelineName="train"))[0] == "ResourceNotFound"
    assert (
        error_of(lambda: sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution))[0]
        == "ResourceNotFound"
    )

    create_pipeline(sagemaker, account)
    assert sagemaker.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"] == []
    again = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))
    assert again["PipelineExecutionArn"] != execution


def test_delete_pipeline_is_a_conflict_while_an_execution_runs(account):
    sagemaker = account.client("sagemaker")
    create_pipeline(sagemaker, account)
    account.configure(pipelineExecutionSeconds=None)
    execution = sagemaker.start_pipeline_execution(PipelineName="train")["PipelineExecutionArn"]
    assert (
        error_of(lambda: sagemaker.delete_pipeline(PipelineName="train", ClientRequestToken=token("d")))[0]
        == "ConflictException"
    )
    sagemaker.stop_pipeline_execution(PipelineExecutionArn=execution, ClientRequestToken=token("t"))
    assert execution_status(sagemaker, execution) == "Stopped"
    sagemaker.delete_pipeline(PipelineName="train", ClientRequestToken=token("d"))


# Pipeline executions


def test_execution_carries_its_description_and_display_name(account):
    sagemaker = account.client("sagemaker")
    pipeline = create_pipeline(sagemaker, account)
    arn = sagemaker.start_pipeline_execution(
        PipelineName="train",
        PipelineExecutionDescription="spec generation 3",
        PipelineExecutionDisplayName="churn-gen-3",
        ClientRequestToken=token("s"),
    )["PipelineExecutionArn"]
    assert arn.startswith(f"{pipeline}/execution/")
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert (described["PipelineArn"], described["PipelineExecutionStatus"]) == (pipeline, "Succeeded")
    assert (described["PipelineExecutionDescription"], described["PipelineExecutionDisplayName"]) == (
        "spec generation 3",
        "churn-gen-3",
    )
    [summary] = sagemaker.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"]
    assert (summary["PipelineExecutionArn"], summary["PipelineExecutionDisplayName"]) == (arn, "churn-gen-3")
    assert summary["PipelineExecutionDescription"] == "spec generation 3"


def test_start_retried_with_its_token_starts_nothing_new(account):
    sagemaker = account.client("sagemaker")
    create_pipeline(sagemaker, account)
    create_pipeline(sagemaker, account, name="evaluate")
    account.configure(pipelineExecutionSeconds=None)

    first = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))
    retried = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))
    assert retried["PipelineExecutionArn"] == first["PipelineExecutionArn"]
    listed = sagemaker.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in listed] == [first["PipelineExecutionArn"]]

    # Still the same execution once it has finished; another token, or another pipeline, starts a new one.
    sagemaker.stop_pipeline_execution(
        PipelineExecutionArn=first["PipelineExecutionArn"], ClientRequestToken=token("t")
    )
    again = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))
    assert again["PipelineExecutionArn"] == first["PipelineExecutionArn"]
    assert execution_status(sagemaker, first["PipelineExecutionArn"]) == "Stopped"
    other = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("u"))
    assert other["PipelineExecutionArn"] != first["PipelineExecutionArn"]
    elsewhere = sagemaker.start_pipeline_execution(PipelineName="evaluate", ClientRequestToken=token("s"))
    assert "/evaluate/execution/" in elsewhere["PipelineExecutionArn"]
    assert len(sagemaker.list_pipeline_executions(PipelineName="train")["PipelineExecutionSummaries"]) == 2
    assert len(sagemaker.list_pipeline_executions(PipelineName="evaluate")["PipelineExecutionSummaries"]) == 1


def test_retried_start_leaves_a_finished_execution_as_it_is(account, emulator):
    sagemaker = account.client("sagemaker")
    create_pipeline(sagemaker, account)
    account.configure(pipelineExecutionSeconds=None)
    arn = sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))[
        "PipelineExecutionArn"
    ]
    emulator.post("/_emulator/pipeline-executions", {"arn": arn, "status": "Failed", "failureReason": "x"})
    sagemaker.start_pipeline_execution(PipelineName="train", ClientRequestToken=token("s"))
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert (described["PipelineExecutionStatus"], described["FailureReason"]) == ("Failed", "x")
    assert account.operations("sagemaker").count("StartPipelineExecution") == 2


# S3 objects


def test_object_put_head_delete(account):
    s3, bucket, key = account.client("s3"), f"sagekeeper-{account.id}", "projects/churn/pipeline.json"
    kms_key = account.client("kms").create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket=bucket)
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key=key))[0] == "404"
    put = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=DEFINITION.encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key,
        BucketKeyEnabled=True,
        Metadata={"sha256": "abc"},
    )
    head = s3.head_object(Bucket=bucket, Key=key)
    assert (head["ContentLength"], head["ETag"]) == (len(DEFINITION), put["ETag"])
    assert head["Metadata"] == {"sha256": "abc"}
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key)
    deleted = s3.delete_object(Bucket=bucket, Key=key)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key=key))[0] == "404"
    # Deleting a key that is not there succeeds, as in AWS.
    assert s3.delete_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
