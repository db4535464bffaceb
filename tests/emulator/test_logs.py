"""CloudWatch Logs as AWS answers it where moto falls short (the extension in `logs.py`), and
its IAM evaluation (the table in `authorization/table/logs.py`); a key given to a group, which
AWS checks against the key's policy."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import RETRIES_OFF
from test_authorization import World, allow, document, refused

GROUP = "/sagekeeper/flow-logs/vpc-1"


def error_code(call) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"]


def describe(logs, name: str = GROUP) -> dict:
    return logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]


def test_associate_kms_key_sets_and_disassociate_clears_the_groups_key(account):
    logs = account.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    key = f"arn:aws:kms:us-east-1:{account.id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    logs.associate_kms_key(logGroupName=GROUP, kmsKeyId=key)
    assert describe(logs)["kmsKeyId"] == key
    other = key.replace("1234abcd", "5678abcd")
    logs.associate_kms_key(logGroupName=GROUP, kmsKeyId=other)
    assert describe(logs)["kmsKeyId"] == other
    logs.disassociate_kms_key(logGroupName=GROUP)
    assert "kmsKeyId" not in describe(logs)


def test_associate_and_disassociate_on_an_unknown_group_are_not_found(account):
    logs = account.client("logs")
    key = f"arn:aws:kms:us-east-1:{account.id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert error_code(lambda: logs.associate_kms_key(logGroupName="missing", kmsKeyId=key)) == "ResourceNotFoundException"
    assert error_code(lambda: logs.disassociate_kms_key(logGroupName="missing")) == "ResourceNotFoundException"


def test_retention_outside_cloudwatchs_values_is_refused(account):
    logs = account.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    for days in (0, 13, 15, 4000):
        assert error_code(lambda: logs.put_retention_policy(logGroupName=GROUP, retentionInDays=days)) == "InvalidParameterException"
    assert "retentionInDays" not in describe(logs)
    logs.put_retention_policy(logGroupName=GROUP, retentionInDays=14)
    assert describe(logs)["retentionInDays"] == 14


def test_tags_of_an_unknown_group_are_not_found(account):
    logs = account.client("logs")
    missing = f"arn:aws:logs:us-east-1:{account.id}:log-group:missing"
    assert error_code(lambda: logs.tag_resource(resourceArn=missing, tags={"a": "b"})) == "ResourceNotFoundException"
    assert error_code(lambda: logs.untag_resource(resourceArn=missing, tagKeys=["a"])) == "ResourceNotFoundException"
    assert error_code(lambda: logs.list_tags_for_resource(resourceArn=missing)) == "ResourceNotFoundException"
    # A group of the same name in another account is not this ARN's group either.
    logs.create_log_group(logGroupName="missing")
    other = missing.replace(account.id, "999999999999")
    assert error_code(lambda: logs.list_tags_for_resource(resourceArn=other)) == "ResourceNotFoundException"


def test_tags_of_an_existing_group_are_kept(account):
    logs = account.client("logs")
    logs.create_log_group(logGroupName=GROUP, tags={"owner": "sagekeeper"})
    arn = describe(logs)["logGroupArn"]
    logs.tag_resource(resourceArn=arn, tags={"env": "dev"})
    logs.untag_resource(resourceArn=arn, tagKeys=["owner"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev"}


def test_logs_calls_are_refused_without_a_policy_and_allowed_with_one_under_enforce(emulator):
    world = World(emulator)
    arn = f"arn:aws:logs:us-east-1:{world.id}:log-group:{GROUP}"
    stream = f"{arn}:log-stream:s1"
    nobody = world.session("nobody", allow("sts:GetCallerIdentity")).client("logs")
    message = refused(lambda: nobody.create_log_group(logGroupName=GROUP), "AccessDeniedException")
    assert f"logs:CreateLogGroup on resource: {arn} because no identity-based policy allows" in message
    assert "because no identity-based policy allows" in refused(lambda: nobody.describe_log_groups(), "AccessDeniedException")

    owner = world.session(
        "owner",
        allow(["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:AssociateKmsKey", "logs:TagResource",
               "logs:ListTagsForResource", "logs:DeleteLogGroup"], arn,
              Condition={"StringEqualsIfExists": {"aws:RequestTag/owner": "sagekeeper"}}),
        allow(["logs:CreateLogStream", "logs:PutLogEvents"], stream),
        allow("logs:DescribeLogGroups"),
    ).client("logs")
    # aws:RequestTag is evaluated on CreateLogGroup and TagResource.
    refused(lambda: owner.create_log_group(logGroupName=GROUP, tags={"owner": "someone"}), "AccessDeniedException")
    owner.create_log_group(logGroupName=GROUP, tags={"owner": "sagekeeper"})
    owner.put_retention_policy(logGroupName=GROUP, retentionInDays=14)
    owner.associate_kms_key(logGroupName=GROUP, kmsKeyId=logs_key(world))
    refused(lambda: owner.tag_resource(resourceArn=arn, tags={"owner": "someone"}), "AccessDeniedException")
    owner.tag_resource(resourceArn=arn, tags={"owner": "sagekeeper"})
    assert owner.list_tags_for_resource(resourceArn=arn)["tags"] == {"owner": "sagekeeper"}
    owner.create_log_stream(logGroupName=GROUP, logStreamName="s1")
    owner.put_log_events(logGroupName=GROUP, logStreamName="s1", logEvents=[{"timestamp": 1, "message": "m"}])
    message = refused(lambda: owner.create_log_stream(logGroupName=GROUP, logStreamName="s2"), "AccessDeniedException")
    assert f"logs:CreateLogStream on resource: {arn}:log-stream:s2" in message
    refused(lambda: owner.disassociate_kms_key(logGroupName=GROUP), "AccessDeniedException")
    assert describe(owner)["retentionInDays"] == 14

    # aws:ResourceTag is the group's tags.
    tagged = world.session(
        "tagged", allow("logs:DeleteLogGroup", "*", Condition={"StringEquals": {"aws:ResourceTag/owner": "sagekeeper"}})
    ).client("logs")
    world.admin.client("logs").create_log_group(logGroupName="untagged")
    refused(lambda: tagged.delete_log_group(logGroupName="untagged"), "AccessDeniedException")
    tagged.delete_log_group(logGroupName=GROUP)


# --- a key given to a group ---------------------------------------------------------------


@pytest.fixture
def world(emulator) -> World:
    return World(emulator)


def key_policy(account: str, *logs_statement_changes, region: str = "us-east-1", group: str = GROUP, **condition) -> str:
    """The account's root, and the region's logs service for `group` (with `condition` instead of
    the group's ARN; each change maps the logs statement to another, or to None to drop it)."""
    root = {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}
    logs = {
        "Sid": "logs",
        "Effect": "Allow",
        "Principal": {"Service": f"logs.{region}.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
        "Resource": "*",
        "Condition": condition or {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account}:log-group:{group}"}},
    }
    for change in logs_statement_changes:
        logs = change(logs)
    return document(root, *([logs] if logs else []))


def logs_key(world: World, policy: str | None = None, region: str = "us-east-1") -> str:
    kms = boto3.client("kms", region_name=region, endpoint_url=world.emulator.url, config=RETRIES_OFF, **world.admin.credentials)
    return kms.create_key(Policy=policy or key_policy(world.id))["KeyMetadata"]["Arn"]


def key_refusal(call, account: str, group: str = GROUP) -> None:
    message = refused(call, "AccessDeniedException")
    assert message == (
        "The specified KMS key does not exist or is not allowed to be used with Arn "
        f"'arn:aws:logs:us-east-1:{account}:log-group:{group}'"
    )


@pytest.mark.parametrize(
    "policy",
    [
        lambda a: key_policy(a, lambda s: None),
        lambda a: key_policy(a, group="/another/group"),
        lambda a: key_policy(a, lambda s: {**s, "Principal": {"Service": "logs.eu-west-1.amazonaws.com"}}),
        lambda a: key_policy(a, lambda s: {**s, "Action": ["kms:Decrypt*", "kms:Describe*"]}),
        lambda a: key_policy(a, StringEquals={"aws:SourceAccount": "999999999999"}),
        lambda a: document(
            *json.loads(key_policy(a))["Statement"],
            {"Effect": "Deny", "Principal": "*", "Action": "kms:GenerateDataKey*", "Resource": "*"},
        ),
    ],
    ids=["no-logs-statement", "another-groups-arn", "another-regions-service", "no-encrypt", "unmet-condition", "deny"],
)
def test_a_key_whose_policy_does_not_admit_the_logs_service_for_the_group_is_refused(world, policy):
    key = logs_key(world, policy(world.id))
    logs = world.admin.client("logs")
    # AWS's own check: the account-admin identity is refused as any caller is.
    key_refusal(lambda: logs.create_log_group(logGroupName=GROUP, kmsKeyId=key), world.id)
    logs.create_log_group(logGroupName=GROUP)
    key_refusal(lambda: logs.associate_kms_key(logGroupName=GROUP, kmsKeyId=key), world.id)
    assert "kmsKeyId" not in describe(logs)


def test_a_key_admitting_the_logs_service_for_the_group_is_taken(world):
    logs = world.admin.client("logs")
    key = logs_key(world)
    logs.create_log_group(logGroupName=GROUP, kmsKeyId=key)
    assert describe(logs)["kmsKeyId"] == key
    # ArnLike over the account's groups, and `*` as principal with the same condition, do too.
    like = logs_key(world, key_policy(world.id, ArnLike={"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{world.id}:*"}))
    logs.associate_kms_key(logGroupName=GROUP, kmsKeyId=like)
    anyone = logs_key(world, key_policy(world.id, lambda s: {**s, "Principal": "*"}))
    logs.associate_kms_key(logGroupName=GROUP, kmsKeyId=anyone)
    assert describe(logs)["kmsKeyId"] == anyone


def test_a_missing_disabled_or_other_regions_key_is_refused(world):
    logs = world.admin.client("logs")
    key_refusal(lambda: logs.create_log_group(logGroupName=GROUP, kmsKeyId=f"arn:aws:kms:us-east-1:{world.id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"), world.id)
    disabled = logs_key(world)
    world.admin.client("kms").disable_key(KeyId=disabled.rsplit("/", 1)[-1])  # moto's DisableKey takes no ARN
    key_refusal(lambda: logs.create_log_group(logGroupName=GROUP, kmsKeyId=disabled), world.id)
    elsewhere = logs_key(world, region="eu-west-1")
    key_refusal(lambda: logs.create_log_group(logGroupName=GROUP, kmsKeyId=elsewhere), world.id)


def test_the_key_check_applies_under_audit_too_and_not_with_evaluation_off(emulator, account):
    audited = World(emulator, mode="audit")
    key_refusal(lambda: audited.admin.client("logs").create_log_group(logGroupName=GROUP, kmsKeyId=logs_key(audited, key_policy(audited.id, lambda s: None))), audited.id)
    key = f"arn:aws:kms:us-east-1:{account.id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    account.client("logs").create_log_group(logGroupName=GROUP, kmsKeyId=key)
    assert describe(account.client("logs"))["kmsKeyId"] == key
