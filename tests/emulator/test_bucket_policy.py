"""Bucket policies on object operations: Deny statements evaluated with their conditions."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import trust_policy

VPCE = {"x-emulator-source-vpce": "vpce-0allowed"}
INSECURE = {"x-emulator-secure-transport": "false"}


def put_policy(owner, bucket: str, *statements: dict) -> None:
    for statement in statements:
        statement.setdefault("Resource", [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"])
    owner.client("s3").put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    )


def outcome(call) -> str:
    """'ok', or the error code (with HTTP status) of the call."""
    try:
        call()
        return "ok"
    except ClientError as error:
        return f'{error.response["Error"]["Code"]} {error.response["ResponseMetadata"]["HTTPStatusCode"]}'


@pytest.fixture
def bucket(account):
    """A bucket holding data/x.csv and private/y.csv, owned by the account's user (the controller)."""
    name = f"data-{account.id}"
    s3 = account.client("s3")
    s3.create_bucket(Bucket=name)
    for key in ("data/x.csv", "private/y.csv"):
        s3.put_object(Bucket=name, Key=key, Body=b"1,2\n")
    return name


@pytest.fixture
def scientist(account):
    """An assumed-role session of another principal in the same account."""
    role = account.client("iam").create_role(
        RoleName="scientist", AssumeRolePolicyDocument=trust_policy(account.id)
    )
    return account.assume(role["Role"]["Arn"])


@pytest.fixture
def vpc_only(account, bucket):
    """The environment's policy: deny outside the VPC endpoint (controller exempt), deny non-TLS."""
    put_policy(
        account,
        bucket,
        {
            "Sid": "DenyOutsideVpce",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Condition": {
                "StringNotEquals": {"aws:SourceVpce": "vpce-0allowed"},
                "ArnNotEquals": {"aws:PrincipalArn": account.arn},
            },
        },
        {
            "Sid": "DenyInsecure",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )
    return bucket


def test_reads_and_writes_outside_the_vpc_endpoint_are_access_denied(scientist, vpc_only):
    s3 = scientist.client("s3")
    assert outcome(lambda: s3.get_object(Bucket=vpc_only, Key="data/x.csv")) == "AccessDenied 403"
    assert (
        outcome(lambda: s3.put_object(Bucket=vpc_only, Key="data/new.csv", Body=b"x")) == "AccessDenied 403"
    )
    assert outcome(lambda: s3.head_object(Bucket=vpc_only, Key="data/x.csv")) == "403 403"
    assert outcome(lambda: s3.delete_object(Bucket=vpc_only, Key="data/x.csv")) == "AccessDenied 403"


def test_access_denied_is_an_s3_xml_error(scientist, vpc_only, emulator):
    s3 = scientist.client("s3")
    bodies = []
    s3.meta.events.register(
        "after-call.s3.GetObject", lambda http_response, **_: bodies.append(http_response.text)
    )
    with pytest.raises(ClientError):
        s3.get_object(Bucket=vpc_only, Key="data/x.csv")
    assert "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>" in bodies[0]


def test_requests_through_the_allowed_vpc_endpoint_pass(scientist, vpc_only):
    s3 = scientist.client("s3", headers=VPCE)
    assert s3.get_object(Bucket=vpc_only, Key="data/x.csv")["Body"].read() == b"1,2\n"
    assert outcome(lambda: s3.put_object(Bucket=vpc_only, Key="data/new.csv", Body=b"x")) == "ok"


def test_requests_through_another_vpc_endpoint_are_denied(scientist, vpc_only):
    s3 = scientist.client("s3", headers={"x-emulator-source-vpce": "vpce-0other"})
    assert outcome(lambda: s3.get_object(Bucket=vpc_only, Key="data/x.csv")) == "AccessDenied 403"


def test_the_exempt_principal_arn_passes_without_a_vpc_endpoint(account, vpc_only):
    assert outcome(lambda: account.client("s3").get_object(Bucket=vpc_only, Key="data/x.csv")) == "ok"


def test_insecure_transport_is_denied_even_through_the_vpc_endpoint(account, scientist, vpc_only):
    for caller in (scientist, account):
        s3 = caller.client("s3", headers={**VPCE, **INSECURE})
        assert outcome(lambda: s3.get_object(Bucket=vpc_only, Key="data/x.csv")) == "AccessDenied 403"


def test_a_conditional_deny_that_does_not_hold_does_not_deny(account, scientist, bucket):
    put_policy(
        account,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0bad"}},
        },
    )
    s3 = scientist.client("s3")
    assert outcome(lambda: s3.get_object(Bucket=bucket, Key="data/x.csv")) == "ok"
    bad = scientist.client("s3", headers={"x-emulator-source-vpce": "vpce-0bad"})
    assert outcome(lambda: bad.get_object(Bucket=bucket, Key="data/x.csv")) == "AccessDenied 403"


def test_encryption_headers_are_condition_keys(account, scientist, bucket):
    key = "arn:aws:kms:us-east-1:111111111111:key/s3"
    put_policy(
        account,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": [key, "s3"]},
                "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
            },
        },
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Condition": {
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                "Null": {"s3:x-amz-server-side-encryption": "false"},
            },
        },
    )
    s3 = scientist.client("s3")
    put = lambda **kw: outcome(lambda: s3.put_object(Bucket=bucket, Key="data/z.csv", Body=b"1", **kw))  # noqa: E731
    assert put() == "ok", "no header: the bucket default applies"
    assert put(ServerSideEncryption="aws:kms", SSEKMSKeyId=key) == "ok"
    assert put(ServerSideEncryption="aws:kms", SSEKMSKeyId="arn:aws:kms:us-east-1:999999999999:key/x") == "AccessDenied 403"
    assert put(ServerSideEncryption="AES256") == "AccessDenied 403"


def test_a_deny_naming_one_principal_hits_only_that_principal(account, scientist, bucket):
    put_policy(
        account,
        bucket,
        {
            "Effect": "Deny",
            "Action": "s3:GetObject",
            "Principal": {"AWS": f"arn:aws:iam::{account.id}:role/scientist"},
        },
    )
    assert (
        outcome(lambda: scientist.client("s3").get_object(Bucket=bucket, Key="data/x.csv"))
        == "AccessDenied 403"
    )
    assert outcome(lambda: account.client("s3").get_object(Bucket=bucket, Key="data/x.csv")) == "ok"


def test_action_and_resource_patterns_scope_a_deny(account, scientist, bucket):
    put_policy(
        account,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:Get*",
            "Resource": f"arn:aws:s3:::{bucket}/private/*",
        },
    )
    s3 = scientist.client("s3")
    assert outcome(lambda: s3.get_object(Bucket=bucket, Key="private/y.csv")) == "AccessDenied 403"
    assert outcome(lambda: s3.get_object(Bucket=bucket, Key="data/x.csv")) == "ok"
    assert outcome(lambda: s3.put_object(Bucket=bucket, Key="private/z.csv", Body=b"x")) == "ok"


def test_delete_objects_reports_denied_keys_individually(account, scientist, bucket):
    put_policy(
        account,
        bucket,
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:DeleteObject",
            "Resource": f"arn:aws:s3:::{bucket}/private/*",
        },
    )
    result = scientist.client("s3").delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "private/y.csv"}, {"Key": "data/x.csv"}]}
    )
    assert [d["Key"] for d in result["Deleted"]] == ["data/x.csv"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("private/y.csv", "AccessDenied")]


def test_denied_calls_are_logged_with_403(account, scientist, vpc_only):
    account.clear_calls()
    outcome(lambda: scientist.client("s3").get_object(Bucket=vpc_only, Key="data/x.csv"))
    assert [(c["operation"], c["status"]) for c in account.calls("s3")] == [("GetObject", 403)]


def test_kms_describe_key_honours_conditional_denies(account, scientist):
    kms = account.client("kms")
    key = kms.create_key(
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{account.id}:root"},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "kms:*",
                        "Resource": "*",
                        "Condition": {
                            "StringNotEquals": {"aws:SourceVpce": "vpce-0allowed"},
                            "ArnNotEquals": {"aws:PrincipalArn": account.arn},
                        },
                    },
                ],
            }
        )
    )["KeyMetadata"]["KeyId"]
    assert outcome(lambda: kms.describe_key(KeyId=key)) == "ok"
    assert outcome(lambda: scientist.client("kms").describe_key(KeyId=key)) == "AccessDeniedException 400"
    assert outcome(lambda: scientist.client("kms", headers=VPCE).describe_key(KeyId=key)) == "ok"


def test_create_bucket_applies_create_time_tags(account):
    # boto3 1.44 predates create-time tags; the Rust SDK sends them in the request body.
    body = (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Tags><Tag><Key>sagekeeper.io/owner-uid</Key><Value>uid-1</Value></Tag></Tags>"
        "</CreateBucketConfiguration>"
    )
    s3 = account.client("s3")

    def with_tags(request, **_):
        request.data = body.encode()
        request.headers["Content-Length"] = str(len(body))

    s3.meta.events.register("before-sign.s3.CreateBucket", with_tags)
    s3.create_bucket(Bucket=f"tagged-at-create-{account.id}")
    tags = s3.get_bucket_tagging(Bucket=f"tagged-at-create-{account.id}")["TagSet"]
    assert tags == [{"Key": "sagekeeper.io/owner-uid", "Value": "uid-1"}]


def test_get_bucket_versioning_answers_with_the_aws_root_element(account, emulator):
    s3 = account.client("s3")
    bucket = f"versioned-{account.id}"
    s3.create_bucket(Bucket=bucket)
    raw = []
    s3.meta.events.register("after-call.s3.GetBucketVersioning", lambda http_response, **_: raw.append(http_response.text))
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert all("<VersioningConfiguration" in body for body in raw), raw
