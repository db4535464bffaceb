"""CloudWatch Logs as AWS answers it where moto falls short (the extension in `logs.py`), and
its IAM evaluation (the table in `authorization/table/logs.py`)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from test_authorization import World, allow, refused

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
    owner.associate_kms_key(logGroupName=GROUP, kmsKeyId=f"arn:aws:kms:us-east-1:{world.id}:key/k")
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
