"""EC2: groups another group references cannot be deleted; interface endpoints take time; slow calls."""

import time

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


def test_interface_endpoints_are_pending_for_the_configured_time_and_gateways_never(account):
    account.configure(vpcEndpointPendingSeconds=1.5)
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    interface = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName="com.amazonaws.us-east-1.sts", VpcEndpointType="Interface"
    )["VpcEndpoint"]
    gateway = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway"
    )["VpcEndpoint"]
    assert (interface["State"], gateway["State"]) == ("pending", "available")

    def state() -> str:
        found = ec2.describe_vpc_endpoints(VpcEndpointIds=[interface["VpcEndpointId"]])["VpcEndpoints"]
        return found[0]["State"]

    assert state() == "pending"
    time.sleep(1.6)
    assert state() == "available"


def test_calls_wait_the_configured_latency(account):
    ec2 = account.client("ec2")
    ec2.describe_vpcs()
    started = time.monotonic()
    ec2.describe_vpcs()
    fast = time.monotonic() - started
    account.configure(callLatencySeconds=0.4)
    started = time.monotonic()
    ec2.describe_vpcs()
    assert time.monotonic() - started >= 0.4 > fast
