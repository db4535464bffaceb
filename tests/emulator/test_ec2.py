"""EC2 security groups referenced by another group's rule cannot be deleted, as in AWS."""

import pytest
from botocore.exceptions import ClientError


def test_group_referenced_by_another_group_is_a_dependency_violation(account):
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    source = ec2.create_security_group(GroupName="source", Description="d", VpcId=vpc)["GroupId"]
    target = ec2.create_security_group(GroupName="target", Description="d", VpcId=vpc)["GroupId"]
    permission = {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "UserIdGroupPairs": [{"GroupId": source}],
    }
    ec2.authorize_security_group_ingress(GroupId=target, IpPermissions=[permission])

    with pytest.raises(ClientError) as raised:
        ec2.delete_security_group(GroupId=source)
    assert raised.value.response["Error"]["Code"] == "DependencyViolation"

    ec2.revoke_security_group_ingress(GroupId=target, IpPermissions=[permission])
    ec2.delete_security_group(GroupId=source)


def test_a_self_referencing_group_can_be_deleted(account):
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="workloads", Description="d", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group, IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group}]}]
    )
    ec2.delete_security_group(GroupId=group)
