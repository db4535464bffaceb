"""SageMaker Studio: domains, NFS security groups, user profiles, apps, spaces."""

import re

import pytest
from botocore.exceptions import ClientError

from conftest import wait_for


def make_domain(account, name="studio"):
    """A VpcOnly domain in a new VPC; returns (sagemaker client, domain id, vpc id)."""
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/19")["Subnet"]["SubnetId"]
    sagemaker = account.client("sagemaker")
    arn = sagemaker.create_domain(
        DomainName=name,
        AuthMode="IAM",
        DefaultUserSettings={
            "ExecutionRole": f"arn:aws:iam::{account.id}:role/exec",
            "JupyterServerAppSettings": {"DefaultResourceSpec": {"InstanceType": "system"}},
        },
        SubnetIds=[subnet],
        VpcId=vpc,
        AppNetworkAccessType="VpcOnly",
        Tags=[{"Key": "team", "Value": "fraud"}],
    )["DomainArn"]
    return sagemaker, arn.rsplit("/", 1)[1], vpc


def error_code(call) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"]


def test_domain_ids_are_random_not_derived_from_the_name(account):
    _, first, _ = make_domain(account, "alpha")
    _, second, _ = make_domain(account, "beta")
    assert re.fullmatch(r"d-[a-z0-9]{12}", first) and re.fullmatch(r"d-[a-z0-9]{12}", second)
    assert first != "d-alpha" and first != second


def test_second_domain_with_the_same_name_is_resource_in_use(account):
    make_domain(account, "twice")
    with pytest.raises(ClientError) as raised:
        make_domain(account, "twice")
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    assert len(account.client("sagemaker").list_domains()["Domains"]) == 1


def test_domain_is_in_service_at_once_by_default(account):
    sagemaker, domain_id, _ = make_domain(account)
    assert sagemaker.describe_domain(DomainId=domain_id)["Status"] == "InService"


def test_domain_is_pending_for_the_configured_seconds(account):
    account.configure(domainPendingSeconds=1)
    sagemaker, domain_id, _ = make_domain(account)
    assert sagemaker.describe_domain(DomainId=domain_id)["Status"] == "Pending"
    assert sagemaker.list_domains()["Domains"][0]["Status"] == "Pending"
    status = wait_for(lambda: sagemaker.describe_domain(DomainId=domain_id)["Status"], "InService")
    assert status == "InService"


def _nfs_groups(account, vpc, domain_id) -> dict:
    groups = account.client("ec2").describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])[
        "SecurityGroups"
    ]
    return {g["GroupName"]: g for g in groups if domain_id in g["GroupName"]}


def test_create_domain_makes_two_nfs_security_groups_that_reference_each_other(account):
    sagemaker, domain_id, vpc = make_domain(account)
    domain_arn = sagemaker.describe_domain(DomainId=domain_id)["DomainArn"]
    groups = _nfs_groups(account, vpc, domain_id)
    inbound = groups[f"security-group-for-inbound-nfs-{domain_id}"]
    outbound = groups[f"security-group-for-outbound-nfs-{domain_id}"]
    for group in (inbound, outbound):
        assert {"Key": "ManagedByAmazonSageMakerResource", "Value": domain_arn} in group["Tags"]
    nfs_rule = {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049}
    assert [
        ({k: r[k] for k in nfs_rule}, [p["GroupId"] for p in r["UserIdGroupPairs"]])
        for r in inbound["IpPermissions"]
    ] == [(nfs_rule, [outbound["GroupId"]])]
    assert [
        ({k: r[k] for k in nfs_rule}, [p["GroupId"] for p in r["UserIdGroupPairs"]])
        for r in outbound["IpPermissionsEgress"]
    ] == [(nfs_rule, [inbound["GroupId"]])]


def test_nfs_security_groups_can_only_be_deleted_after_revoking_their_rules(account):
    _, domain_id, vpc = make_domain(account)
    ec2 = account.client("ec2")
    groups = _nfs_groups(account, vpc, domain_id).values()
    inbound, outbound = sorted(groups, key=lambda g: g["GroupName"])
    assert error_code(lambda: ec2.delete_security_group(GroupId=inbound["GroupId"])) == "DependencyViolation"
    assert error_code(lambda: ec2.delete_security_group(GroupId=outbound["GroupId"])) == "DependencyViolation"

    ec2.revoke_security_group_ingress(GroupId=inbound["GroupId"], IpPermissions=inbound["IpPermissions"])
    ec2.revoke_security_group_egress(
        GroupId=outbound["GroupId"], IpPermissions=outbound["IpPermissionsEgress"]
    )
    ec2.delete_security_group(GroupId=inbound["GroupId"])
    ec2.delete_security_group(GroupId=outbound["GroupId"])
    assert _nfs_groups(account, vpc, domain_id) == {}


def test_domain_reports_efs_file_system_boundary_group_and_url(account):
    sagemaker, domain_id, vpc = make_domain(account)
    domain = sagemaker.describe_domain(DomainId=domain_id)
    inbound = _nfs_groups(account, vpc, domain_id)[f"security-group-for-inbound-nfs-{domain_id}"]
    assert re.fullmatch(r"fs-[0-9a-f]{17}", domain["HomeEfsFileSystemId"])
    assert domain["SecurityGroupIdForDomainBoundary"] == inbound["GroupId"]
    assert domain["Url"] == f"https://{domain_id}.studio.us-east-1.sagemaker.aws"


def test_create_domain_in_an_unknown_vpc_is_a_validation_error(account):
    code = error_code(
        lambda: account.client("sagemaker").create_domain(
            DomainName="x", AuthMode="IAM", DefaultUserSettings={}, SubnetIds=["subnet-1"], VpcId="vpc-0000"
        )
    )
    assert code == "ValidationException"


def test_unknown_domain_is_resource_not_found(account):
    sagemaker = account.client("sagemaker")
    assert error_code(lambda: sagemaker.describe_domain(DomainId="d-000000000000")) == "ResourceNotFound"
    assert error_code(lambda: sagemaker.delete_domain(DomainId="d-000000000000")) == "ResourceNotFound"
    assert error_code(lambda: sagemaker.update_domain(DomainId="d-000000000000")) == "ResourceNotFound"


def test_update_domain_merges_settings(account):
    sagemaker, domain_id, _ = make_domain(account)
    sagemaker.update_domain(
        DomainId=domain_id,
        DefaultUserSettings={"SecurityGroups": ["sg-1"]},
        DomainSettingsForUpdate={"SecurityGroupIds": ["sg-2"]},
    )
    domain = sagemaker.describe_domain(DomainId=domain_id)
    assert domain["DefaultUserSettings"] == {
        "ExecutionRole": f"arn:aws:iam::{account.id}:role/exec",
        "SecurityGroups": ["sg-1"],
        "JupyterServerAppSettings": {"DefaultResourceSpec": {"InstanceType": "system"}},
    }
    assert domain["DomainSettings"]["SecurityGroupIds"] == ["sg-2"]


def test_user_profile_lifecycle(account):
    sagemaker, domain_id, _ = make_domain(account)
    arn = sagemaker.create_user_profile(
        DomainId=domain_id, UserProfileName="alice", UserSettings={"ExecutionRole": "arn:aws:iam::1:role/a"}
    )["UserProfileArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:{account.id}:user-profile/{domain_id}/alice"
    sagemaker.update_user_profile(
        DomainId=domain_id, UserProfileName="alice", UserSettings={"SecurityGroups": ["sg-1"]}
    )
    profile = sagemaker.describe_user_profile(DomainId=domain_id, UserProfileName="alice")
    assert (profile["Status"], profile["UserProfileArn"]) == ("InService", arn)
    assert profile["UserSettings"] == {"ExecutionRole": "arn:aws:iam::1:role/a", "SecurityGroups": ["sg-1"]}

    sagemaker.delete_user_profile(DomainId=domain_id, UserProfileName="alice")
    assert (
        error_code(lambda: sagemaker.describe_user_profile(DomainId=domain_id, UserProfileName="alice"))
        == "ResourceNotFound"
    )


def test_duplicate_user_profile_is_resource_in_use(account):
    sagemaker, domain_id, _ = make_domain(account)
    sagemaker.create_user_profile(DomainId=domain_id, UserProfileName="bob")
    assert (
        error_code(lambda: sagemaker.create_user_profile(DomainId=domain_id, UserProfileName="bob"))
        == "ResourceInUse"
    )


def test_list_user_profiles_filters_by_domain(account):
    sagemaker, first, _ = make_domain(account, "one")
    _, second, _ = make_domain(account, "two")
    for domain_id, name in ((first, "a"), (first, "b"), (second, "c")):
        sagemaker.create_user_profile(DomainId=domain_id, UserProfileName=name)
    listed = sagemaker.list_user_profiles(DomainIdEquals=first)["UserProfiles"]
    assert sorted(p["UserProfileName"] for p in listed) == ["a", "b"]
    assert len(sagemaker.list_user_profiles()["UserProfiles"]) == 3


def test_apps_lifecycle_and_deleted_apps_stay_listed_as_deleted(account):
    sagemaker, domain_id, _ = make_domain(account)
    sagemaker.create_user_profile(DomainId=domain_id, UserProfileName="alice")
    app = dict(DomainId=domain_id, UserProfileName="alice", AppType="JupyterServer", AppName="default")
    arn = sagemaker.create_app(**app)["AppArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:{account.id}:app/{domain_id}/alice/jupyterserver/default"
    assert sagemaker.describe_app(**app)["Status"] == "InService"
    assert error_code(lambda: sagemaker.create_app(**app)) == "ResourceInUse"

    sagemaker.delete_app(**app)
    assert sagemaker.describe_app(**app)["Status"] == "Deleted"
    listed = sagemaker.list_apps(DomainIdEquals=domain_id, UserProfileNameEquals="alice")["Apps"]
    assert [(a["AppName"], a["Status"]) for a in listed] == [("default", "Deleted")]
    assert error_code(lambda: sagemaker.describe_app(**{**app, "AppName": "other"})) == "ResourceNotFound"


def test_spaces_lifecycle(account):
    sagemaker, domain_id, _ = make_domain(account)
    arn = sagemaker.create_space(DomainId=domain_id, SpaceName="shared")["SpaceArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:{account.id}:space/{domain_id}/shared"
    assert sagemaker.describe_space(DomainId=domain_id, SpaceName="shared")["Status"] == "InService"
    assert [s["SpaceName"] for s in sagemaker.list_spaces(DomainIdEquals=domain_id)["Spaces"]] == ["shared"]
    sagemaker.delete_space(DomainId=domain_id, SpaceName="shared")
    assert (
        error_code(lambda: sagemaker.describe_space(DomainId=domain_id, SpaceName="shared"))
        == "ResourceNotFound"
    )


def test_user_profile_delete_is_refused_while_apps_or_owned_spaces_remain(account):
    sagemaker, domain_id, _ = make_domain(account)
    sagemaker.create_user_profile(DomainId=domain_id, UserProfileName="alice")
    app = dict(DomainId=domain_id, UserProfileName="alice", AppType="JupyterServer", AppName="default")
    sagemaker.create_app(**app)
    sagemaker.create_space(
        DomainId=domain_id,
        SpaceName="mine",
        OwnershipSettings={"OwnerUserProfileName": "alice"},
        SpaceSharingSettings={"SharingType": "Private"},
    )
    delete = lambda: sagemaker.delete_user_profile(DomainId=domain_id, UserProfileName="alice")  # noqa: E731
    assert error_code(delete) == "ResourceInUse"
    sagemaker.delete_app(**app)
    assert error_code(delete) == "ResourceInUse"
    sagemaker.delete_space(DomainId=domain_id, SpaceName="mine")
    delete()


def test_space_delete_is_refused_while_its_apps_remain(account):
    sagemaker, domain_id, _ = make_domain(account)
    sagemaker.create_space(DomainId=domain_id, SpaceName="shared")
    app = dict(DomainId=domain_id, SpaceName="shared", AppType="JupyterLab", AppName="default")
    sagemaker.create_app(**app)
    assert (
        error_code(lambda: sagemaker.delete_space(DomainId=domain_id, SpaceName="shared")) == "ResourceInUse"
    )
    sagemaker.delete_app(**app)
    sagemaker.delete_space(DomainId=domain_id, SpaceName="shared")


def test_domain_delete_is_refused_while_user_profiles_or_spaces_remain(account):
    sagemaker, domain_id, _ = make_domain(account)
    sagemaker.create_user_profile(DomainId=domain_id, UserProfileName="alice")
    sagemaker.create_space(DomainId=domain_id, SpaceName="shared")
    delete = lambda: sagemaker.delete_domain(
        DomainId=domain_id, RetentionPolicy={"HomeEfsFileSystem": "Retain"}
    )  # noqa: E731
    assert error_code(delete) == "ResourceInUse"
    sagemaker.delete_user_profile(DomainId=domain_id, UserProfileName="alice")
    assert error_code(delete) == "ResourceInUse"
    sagemaker.delete_space(DomainId=domain_id, SpaceName="shared")
    delete()
    assert error_code(lambda: sagemaker.describe_domain(DomainId=domain_id)) == "ResourceNotFound"


def test_tags_on_domain_user_profile_app_and_space(account):
    sagemaker, domain_id, _ = make_domain(account)
    tags = [{"Key": "owner", "Value": "team"}]
    arns = [
        sagemaker.describe_domain(DomainId=domain_id)["DomainArn"],
        sagemaker.create_user_profile(DomainId=domain_id, UserProfileName="alice", Tags=tags)[
            "UserProfileArn"
        ],
        sagemaker.create_app(
            DomainId=domain_id, UserProfileName="alice", AppType="JupyterServer", AppName="default", Tags=tags
        )["AppArn"],
        sagemaker.create_space(DomainId=domain_id, SpaceName="shared", Tags=tags)["SpaceArn"],
    ]
    assert sagemaker.list_tags(ResourceArn=arns[0])["Tags"] == [{"Key": "team", "Value": "fraud"}]
    for arn in arns[1:]:
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == tags
        sagemaker.add_tags(
            ResourceArn=arn, Tags=[{"Key": "owner", "Value": "new"}, {"Key": "x", "Value": "1"}]
        )
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [
            {"Key": "owner", "Value": "new"},
            {"Key": "x", "Value": "1"},
        ]
        sagemaker.delete_tags(ResourceArn=arn, TagKeys=["owner"])
        assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "x", "Value": "1"}]
