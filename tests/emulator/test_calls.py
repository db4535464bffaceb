"""The call log: every AWS request, attributed and named, in order."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from botocore.exceptions import ClientError

from conftest import trust_policy


def test_call_log_records_account_service_operation_and_status_in_order(account):
    account.client("sagemaker").list_models()
    account.client("kms").list_keys()
    account.client("sts").get_caller_identity()
    account.client("iam").list_roles()
    account.client("ec2").describe_vpcs()
    with pytest.raises(ClientError):
        account.client("sagemaker").describe_endpoint(EndpointName="missing")

    calls = account.calls()
    assert [(c["account"], c["service"], c["operation"], c["status"]) for c in calls] == [
        (account.id, "sagemaker", "ListModels", 200),
        (account.id, "kms", "ListKeys", 200),
        (account.id, "sts", "GetCallerIdentity", 200),
        (account.id, "iam", "ListRoles", 200),
        (account.id, "ec2", "DescribeVpcs", 200),
        (account.id, "sagemaker", "DescribeEndpoint", 400),
    ]
    times = [datetime.fromisoformat(c["time"]) for c in calls]
    assert times == sorted(times)


def test_call_log_names_the_caller_of_each_call(account, other_account):
    role = other_account.client("iam").create_role(
        RoleName="deployer", AssumeRolePolicyDocument=trust_policy(f"arn:aws:iam::{account.id}:root")
    )["Role"]["Arn"]
    other_account.clear_calls()
    account.assume(role, session_name="sagekeeper").client("kms").list_keys()
    other_account.client("kms").list_keys()

    calls = other_account.calls()
    assert [(c["caller"], c["operation"]) for c in calls] == [
        (f"arn:aws:sts::{other_account.id}:assumed-role/deployer/sagekeeper", "ListKeys"),
        (other_account.arn, "ListKeys"),
    ]


def test_call_log_names_s3_rest_operations(account):
    s3, bucket = account.client("s3"), f"calls-{account.id}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": account.id},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.get_bucket_encryption(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3.get_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"x")
    s3.head_object(Bucket=bucket, Key="a/b.txt")
    s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read()
    s3.copy_object(Bucket=bucket, Key="c.txt", CopySource={"Bucket": bucket, "Key": "a/b.txt"})
    s3.list_objects_v2(Bucket=bucket)
    s3.list_object_versions(Bucket=bucket)
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c.txt"}]})
    s3.delete_object(Bucket=bucket, Key="a/b.txt")
    s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.delete_bucket(Bucket=bucket)  # versions remain: BucketNotEmpty

    calls = account.calls("s3")
    assert [c["operation"] for c in calls] == [
        "CreateBucket",
        "HeadBucket",
        "PutBucketEncryption",
        "GetBucketEncryption",
        "PutBucketVersioning",
        "PutPublicAccessBlock",
        "PutBucketTagging",
        "PutBucketPolicy",
        "GetBucketPolicy",
        "PutObject",
        "HeadObject",
        "GetObject",
        "CopyObject",
        "ListObjectsV2",
        "ListObjectVersions",
        "DeleteObjects",
        "DeleteObject",
        "DeleteBucketPolicy",
        "DeleteBucket",
    ]
    assert all(200 <= c["status"] < 300 for c in calls[:-1])
    assert calls[-1]["status"] == 409


def test_call_log_filters_by_service_and_clears_one_account(account, other_account):
    account.client("sagemaker").list_models()
    account.client("sts").get_caller_identity()
    other_account.client("sts").get_caller_identity()

    assert account.operations("sts") == ["GetCallerIdentity"]
    account.clear_calls()
    assert account.calls() == []
    assert other_account.operations() == ["GetCallerIdentity"]


def test_control_calls_are_not_logged(account, emulator):
    emulator.get("/_emulator/health")
    account.configure(domainPendingSeconds=0)
    assert account.calls() == []


def test_concurrent_calls_are_all_served_and_logged(account):
    clients = [account.client("sts") for _ in range(8)]

    def call_ten_times(client) -> int:
        return sum(client.get_caller_identity()["Account"] == account.id for _ in range(10))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(call_ten_times, clients)) == 80
    assert account.operations() == ["GetCallerIdentity"] * 80
