"""IAM evaluation through the server: modes, the admin exemption, refusals in each protocol's
format, the call log, and the authorizations AWS makes behind one call (iam:PassRole,
ec2:CreateTags, sagemaker:AddTags, kms:CreateGrant, KMS via S3)."""

from __future__ import annotations

import json

import pytest
import requests
from botocore.exceptions import ClientError
from conftest import Account, Emulator, _account_ids, start_emulator, stop_emulator, trust_policy

ANY = "*"


def document(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource=ANY, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


class World:
    """An account under enforced evaluation: its admin, and roles to act as."""

    def __init__(self, emulator: Emulator, mode: str = "enforce"):
        self.emulator = emulator
        self.id = str(next(_account_ids))
        created = emulator.post("/_emulator/credentials", {"account": self.id, "admin": True})
        credentials = {"aws_access_key_id": created["accessKeyId"], "aws_secret_access_key": created["secretAccessKey"]}
        self.admin = Account(emulator, self.id, credentials, created["arn"])
        emulator.post("/_emulator/iam", {"mode": mode, "accounts": [self.id]})

    def role(self, name: str, *statements, boundary: str | None = None, trust: str | None = None) -> str:
        iam = self.admin.client("iam")
        extra = {"PermissionsBoundary": boundary} if boundary else {}
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust or trust_policy(self.admin.arn), **extra)["Role"]["Arn"]
        if statements:
            iam.put_role_policy(RoleName=name, PolicyName="main", PolicyDocument=document(*statements))
        return arn

    def session(self, name: str, *statements, boundary: str | None = None) -> Account:
        return self.admin.assume(self.role(name, *statements, boundary=boundary))

    def managed_policy(self, name: str, *statements) -> str:
        return self.admin.client("iam").create_policy(PolicyName=name, PolicyDocument=document(*statements))["Policy"]["Arn"]


@pytest.fixture
def world(emulator) -> World:
    return World(emulator)


EC2_PREFIX = "You are not authorized to perform this operation. "
EC2_ENCODED = " Encoded authorization failure message: "


def refused(call, code: str) -> str:
    """The refusal's message; EC2's, as AWS wraps it (a fixed sentence before, an encoded
    authorization failure message after), is checked for the wrapper and unwrapped."""
    with pytest.raises(ClientError) as error:
        call()
    assert error.value.response["Error"]["Code"] == code, error.value.response
    message = error.value.response["Error"]["Message"]
    if code == "UnauthorizedOperation":
        assert message.startswith(EC2_PREFIX) and EC2_ENCODED in message, message
        message, encoded = message.removeprefix(EC2_PREFIX).split(EC2_ENCODED)
        assert len(encoded) > 20 and " " not in encoded, encoded
    return message


# --- modes and identities ---------------------------------------------------------


def test_evaluation_is_off_unless_asked(emulator):
    account = emulator.new_account()
    role = account.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument=trust_policy(account.arn))
    session = account.assume(role["Role"]["Arn"])
    assert session.client("sagemaker").list_models()["Models"] == []
    assert session.calls("sagemaker")[-1]["decision"] == "NotEvaluated"


@pytest.mark.parametrize(
    "service, call, code",
    [
        ("sagemaker", lambda c: c.list_models(), "AccessDeniedException"),
        ("kms", lambda c: c.list_keys(), "AccessDeniedException"),
        ("iam", lambda c: c.list_roles(), "AccessDenied"),
        ("ec2", lambda c: c.describe_vpcs(), "UnauthorizedOperation"),
        ("s3", lambda c: c.list_buckets(), "AccessDenied"),
    ],
)
def test_what_no_policy_allows_is_refused_in_the_service_format(world, service, call, code):
    session = world.session("nothing")
    message = refused(lambda: call(session.client(service)), code)
    assert message.startswith(f"User: {session.arn} is not authorized to perform: ")
    assert message.endswith("because no identity-based policy allows the " + message.split("perform: ")[1].split(" ")[0] + " action")


def test_the_admin_identity_is_exempt_and_a_plain_user_of_the_account_is_not(world, emulator):
    assert world.admin.client("sagemaker").list_models()["Models"] == []
    assert world.admin.calls("sagemaker")[-1]["decision"] == "Exempt"
    plain = emulator.new_account(world.id)
    refused(lambda: plain.client("sagemaker").list_models(), "AccessDeniedException")


def test_keys_the_emulator_did_not_issue_are_refused(tmp_path):
    """moto attributes an unknown key to its default account: with evaluation on for every
    account (the server flag), such a request is refused whatever it asks."""
    process = start_emulator(tmp_path, "--iam-evaluation", "enforce")
    try:
        emulator = Emulator(process.url)
        assert emulator.get("/_emulator/iam")["mode"] == "enforce"
        stranger = Account(emulator, "123456789012", {"aws_access_key_id": "AKIAUNKNOWN000000000", "aws_secret_access_key": "x"}, "")
        refused(lambda: stranger.client("sts").get_caller_identity(), "InvalidClientTokenId")
        refused(lambda: stranger.client("sagemaker").list_models(), "UnrecognizedClientException")
        refused(lambda: stranger.client("ec2").describe_vpcs(), "AuthFailure")
        refused(lambda: stranger.client("s3").list_buckets(), "InvalidAccessKeyId")
    finally:
        stop_emulator(process)


def test_the_account_header_is_refused_under_evaluation(world):
    response = requests.post(
        world.emulator.url + "/",
        headers={"x-moto-account-id": world.id, "X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/x-amz-json-1.1"},
        data="{}",
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"


def test_an_operation_missing_from_the_table_is_refused_naming_it(world):
    session = world.session("everything", allow("*"))
    message = refused(lambda: session.client("sagemaker").list_notebook_instances(), "AccessDeniedException")
    assert "sagemaker:ListNotebookInstances" in message and "no entry for this operation" in message


def test_get_caller_identity_needs_no_permission(world):
    session = world.session("denied", {"Effect": "Deny", "Action": "*", "Resource": "*"})
    assert session.client("sts").get_caller_identity()["Arn"] == session.arn


def test_the_call_log_names_the_decision_and_the_statement(world):
    session = world.session("reader", {"Sid": "ListModels", **allow("sagemaker:ListModels")})
    session.client("sagemaker").list_models()
    refused(lambda: session.client("sagemaker").list_endpoints(), "AccessDeniedException")
    allowed, denied = session.calls("sagemaker")[-2:]
    assert allowed["decision"] == "Allow" and allowed["decidedBy"] == "role reader inline policy main: ListModels"
    assert denied["decision"] == "Deny" and denied["action"] == "sagemaker:ListEndpoints"
    assert denied["message"].endswith("because no identity-based policy allows the sagemaker:ListEndpoints action")


def test_audit_mode_records_what_would_be_refused_and_refuses_nothing(emulator):
    world = World(emulator, mode="audit")
    session = world.session("nothing")
    assert session.client("sagemaker").list_models()["Models"] == []
    assert session.calls("sagemaker")[-1]["decision"] == "WouldDeny"


def test_modes_are_validated(emulator):
    response = requests.post(emulator.url + "/_emulator/iam", data=json.dumps({"mode": "sometimes"}))
    assert response.status_code == 400


# --- identity policies, boundaries, resource policies --------------------------------------


def test_an_explicit_deny_wins(world):
    session = world.session(
        "mixed", allow("sagemaker:*"), {"Sid": "NoModels", "Effect": "Deny", "Action": "sagemaker:ListModels", "Resource": "*"}
    )
    message = refused(lambda: session.client("sagemaker").list_models(), "AccessDeniedException")
    assert message.endswith("with an explicit deny in an identity-based policy")
    assert session.calls("sagemaker")[-1]["decidedBy"] == "role mixed inline policy main: NoModels"


def test_a_permissions_boundary_limits_the_role(world):
    boundary = world.managed_policy("only-sagemaker", allow("sagemaker:*"))
    session = world.session("bounded", allow("*"), boundary=boundary)
    assert session.client("sagemaker").list_models()["Models"] == []
    message = refused(lambda: session.client("ec2").describe_vpcs(), "UnauthorizedOperation")
    assert message.endswith("because no permissions boundary allows the ec2:DescribeVpcs action")


def test_attached_managed_policies_count(world):
    arn = world.managed_policy("list-models", allow("sagemaker:ListModels"))
    world.role("attached")
    world.admin.client("iam").attach_role_policy(RoleName="attached", PolicyArn=arn)
    session = world.admin.assume(f"arn:aws:iam::{world.id}:role/attached")
    assert session.client("sagemaker").list_models()["Models"] == []


def test_resource_tag_conditions(world):
    ec2 = world.admin.client("ec2")
    ours = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "owner", "Value": "us"}]}])
    theirs = ec2.create_vpc(CidrBlock="10.1.0.0/16")
    session = world.session(
        "ours-only", allow("ec2:DeleteVpc", Condition={"StringEquals": {"aws:ResourceTag/owner": "us"}})
    )
    refused(lambda: session.client("ec2").delete_vpc(VpcId=theirs["Vpc"]["VpcId"]), "UnauthorizedOperation")
    session.client("ec2").delete_vpc(VpcId=ours["Vpc"]["VpcId"])


def test_registering_a_version_checks_the_groups_own_tags_and_the_versions_request_tags(world):
    sm = world.admin.client("sagemaker")
    tag = [{"Key": "team", "Value": "a"}]
    sm.create_model_package_group(ModelPackageGroupName="ours", Tags=tag)
    sm.create_model_package_group(ModelPackageGroupName="theirs")
    container = {"InferenceSpecification": {"Containers": [{"Image": "img"}], "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}}
    session = world.session(
        "registrar",
        allow("sagemaker:CreateModelPackage", f"arn:aws:sagemaker:us-east-1:{world.id}:model-package-group/*",
              Condition={"StringEquals": {"aws:ResourceTag/team": "a"}}),
        allow(["sagemaker:CreateModelPackage", "sagemaker:AddTags"], f"arn:aws:sagemaker:us-east-1:{world.id}:model-package/*/*",
              Condition={"StringEquals": {"aws:RequestTag/team": "a"}}),
    ).client("sagemaker")
    session.create_model_package(ModelPackageGroupName="ours", Tags=tag, **container)
    refused(lambda: session.create_model_package(ModelPackageGroupName="theirs", Tags=tag, **container), "AccessDeniedException")
    refused(lambda: session.create_model_package(ModelPackageGroupName="ours", **container), "AccessDeniedException")


def test_a_bucket_policy_naming_the_role_grants_within_the_account(world):
    world.admin.client("s3").create_bucket(Bucket=f"granted-{world.id}")
    arn = world.role("granted")
    policy = document(allow("s3:ListBucket", f"arn:aws:s3:::granted-{world.id}", Principal={"AWS": arn}))
    world.admin.client("s3").put_bucket_policy(Bucket=f"granted-{world.id}", Policy=policy)
    session = world.admin.assume(arn)
    assert session.client("s3").list_objects_v2(Bucket=f"granted-{world.id}")["KeyCount"] == 0
    refused(lambda: session.client("s3").get_bucket_policy(Bucket=f"granted-{world.id}"), "AccessDenied")


def test_a_kms_key_policy_is_required_even_within_the_account(world):
    kms = world.admin.client("kms")
    closed = kms.create_key(Policy=document(allow("kms:*", Principal={"AWS": world.admin.arn})))["KeyMetadata"]["Arn"]
    delegated = kms.create_key()["KeyMetadata"]["Arn"]  # the default policy delegates to IAM
    session = world.session("key-user", allow("kms:DescribeKey"))
    message = refused(lambda: session.client("kms").describe_key(KeyId=closed), "AccessDeniedException")
    assert message.endswith("because no resource-based policy allows the kms:DescribeKey action")
    assert session.client("kms").describe_key(KeyId=delegated)["KeyMetadata"]["Arn"] == delegated


def test_cross_account_assume_role_needs_the_identity_policy_and_the_trust(emulator):
    home, target = World(emulator), World(emulator)
    role = target.role("deployer", trust=trust_policy(f"arn:aws:iam::{home.id}:root"))
    without = home.session("controller-without")
    refused(lambda: without.assume(role), "AccessDenied")
    with_policy = home.session("controller", allow("sts:AssumeRole", role))
    assert with_policy.assume(role).arn.startswith(f"arn:aws:sts::{target.id}:assumed-role/deployer/")
    untrusted = target.role("untrusting", trust=trust_policy(f"arn:aws:iam::{target.id}:root"))
    broad = home.session("controller-broad", allow("sts:AssumeRole"))
    refused(lambda: broad.assume(untrusted), "AccessDenied")


def test_a_cross_account_model_package_needs_the_group_policy_and_the_callers_policy(emulator):
    dev, prod = World(emulator), World(emulator)
    sm = dev.admin.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="churn")
    package = sm.create_model_package(
        ModelPackageGroupName="churn",
        InferenceSpecification={
            "Containers": [{"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    reader = prod.session("reader", allow("sagemaker:DescribeModelPackage"))
    message = refused(lambda: reader.client("sagemaker").describe_model_package(ModelPackageName=package), "AccessDeniedException")
    assert message.endswith("because no resource-based policy allows the sagemaker:DescribeModelPackage action")
    group_policy = document(
        allow(
            "sagemaker:DescribeModelPackage",
            f"arn:aws:sagemaker:us-east-1:{dev.id}:model-package/churn/*",
            Principal={"AWS": f"arn:aws:iam::{prod.id}:root"},
        )
    )
    sm.put_model_package_group_policy(ModelPackageGroupName="churn", ResourcePolicy=group_policy)
    assert reader.client("sagemaker").describe_model_package(ModelPackageName=package)["ModelPackageArn"] == package
    stranger = prod.session("stranger")
    refused(lambda: stranger.client("sagemaker").describe_model_package(ModelPackageName=package), "AccessDeniedException")


# --- authorizations behind one call ------------------------------------------------------


def test_passing_a_role_needs_iam_pass_role_to_sagemaker(world):
    execution = world.role("execution", trust=document({"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}))
    definition = json.dumps({"Version": "2020-12-01", "Steps": []})
    create = allow("sagemaker:CreatePipeline")
    without = world.session("no-pass", create)
    message = refused(
        lambda: without.client("sagemaker").create_pipeline(PipelineName="p1", PipelineDefinition=definition, RoleArn=execution),
        "AccessDeniedException",
    )
    assert f"iam:PassRole on resource: {execution}" in message
    wrong_service = world.session("pass-to-ec2", create, allow("iam:PassRole", execution, Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}))
    refused(
        lambda: wrong_service.client("sagemaker").create_pipeline(PipelineName="p2", PipelineDefinition=definition, RoleArn=execution),
        "AccessDeniedException",
    )
    passing = world.session("pass", create, allow("iam:PassRole", execution, Condition={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
    passing.client("sagemaker").create_pipeline(PipelineName="p3", PipelineDefinition=definition, RoleArn=execution)


def test_creating_with_tags_needs_the_tagging_permission(world):
    tags = [{"Key": "team", "Value": "fraud"}]
    untagging = world.session("no-tags", allow("sagemaker:CreateModelPackageGroup"))
    message = refused(
        lambda: untagging.client("sagemaker").create_model_package_group(ModelPackageGroupName="g1", Tags=tags), "AccessDeniedException"
    )
    assert "sagemaker:AddTags" in message
    untagging.client("sagemaker").create_model_package_group(ModelPackageGroupName="g2")
    tagging = world.session("tags", allow(["sagemaker:CreateModelPackageGroup", "sagemaker:AddTags"], Condition={"StringEquals": {"aws:RequestTag/team": "fraud"}}))
    tagging.client("sagemaker").create_model_package_group(ModelPackageGroupName="g3", Tags=tags)


def test_an_ec2_create_with_tags_needs_create_tags_for_that_create_action(world):
    spec = [{"ResourceType": "vpc", "Tags": [{"Key": "owner", "Value": "us"}]}]
    create = allow("ec2:CreateVpc")
    no_tags = world.session("vpc-no-tags", create)
    message = refused(lambda: no_tags.client("ec2").create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec), "UnauthorizedOperation")
    assert "ec2:CreateTags" in message
    other_action = world.session("vpc-tags-subnet", create, allow("ec2:CreateTags", Condition={"StringEquals": {"ec2:CreateAction": "CreateSubnet"}}))
    refused(lambda: other_action.client("ec2").create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec), "UnauthorizedOperation")
    on_create = world.session("vpc-tags", create, allow("ec2:CreateTags", Condition={"StringEquals": {"ec2:CreateAction": "CreateVpc"}}))
    on_create.client("ec2").create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=spec)


def test_a_key_given_to_sagemaker_needs_a_grant_for_an_aws_resource(world):
    key = world.admin.client("kms").create_key()["KeyMetadata"]["Arn"]
    config = {
        "EndpointConfigName": "cfg",
        "ProductionVariants": [{"VariantName": "a", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        "KmsKeyId": key,
    }
    create = allow("sagemaker:CreateEndpointConfig")
    without = world.session("no-grant", create, allow("kms:DescribeKey", key))
    assert "kms:CreateGrant" in refused(lambda: without.client("sagemaker").create_endpoint_config(**config), "AccessDeniedException")
    granting = world.session(
        "grant", create, allow("kms:DescribeKey", key), allow("kms:CreateGrant", key, Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}})
    )
    # The grant is only for AWS resources: the same role cannot make one directly.
    refused(lambda: granting.client("kms").create_grant(KeyId=key, GranteePrincipal=granting.arn, Operations=["Decrypt"]), "AccessDeniedException")
    with pytest.raises(ClientError) as error:  # authorized; moto then finds no model "m"
        granting.client("sagemaker").create_endpoint_config(**config)
    assert error.value.response["Error"]["Code"] != "AccessDeniedException"


def test_sse_kms_objects_need_the_key_via_s3(world):
    kms, s3 = world.admin.client("kms"), world.admin.client("s3")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    bucket = f"encrypted-{world.id}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]},
    )
    objects = allow(["s3:PutObject", "s3:GetObject"], f"arn:aws:s3:::{bucket}/*")
    without = world.session("no-key", objects)
    assert "kms:GenerateDataKey" in refused(lambda: without.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x"), "AccessDenied")
    via_s3 = {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}
    direct = world.session("key-direct", objects, allow(["kms:GenerateDataKey", "kms:Decrypt"], key, Condition={"Bool": {"aws:ViaAWSService": "false"}}))
    refused(lambda: direct.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x"), "AccessDenied")
    writer = world.session("key-via-s3", objects, allow(["kms:GenerateDataKey", "kms:Decrypt"], key, Condition=via_s3))
    writer.client("s3").put_object(Bucket=bucket, Key="k", Body=b"x")
    assert writer.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    reader = world.session("no-decrypt", objects, allow("kms:GenerateDataKey", key, Condition=via_s3))
    assert "kms:Decrypt" in refused(lambda: reader.client("s3").get_object(Bucket=bucket, Key="k"), "AccessDenied")


def test_creating_a_role_can_be_conditioned_on_its_boundary(world):
    boundary = world.managed_policy("boundary", allow("sagemaker:*"))
    roles = f"arn:aws:iam::{world.id}:role/sk-*"
    session = world.session(
        "role-maker",
        allow("iam:CreateRole", roles, Condition={"StringEquals": {"iam:PermissionsBoundary": boundary}}),
        # TagRole sets no iam:PermissionsBoundary: a boundary condition on it would refuse every tag.
        allow("iam:TagRole", roles),
    )
    iam = session.client("iam")
    trust = trust_policy(world.admin.arn)
    refused(lambda: iam.create_role(RoleName="sk-free", AssumeRolePolicyDocument=trust), "AccessDenied")
    other = world.managed_policy("other", allow("*"))
    refused(lambda: iam.create_role(RoleName="sk-other", AssumeRolePolicyDocument=trust, PermissionsBoundary=other), "AccessDenied")
    iam.create_role(RoleName="sk-bounded", AssumeRolePolicyDocument=trust, PermissionsBoundary=boundary, Tags=[{"Key": "a", "Value": "b"}])


def test_the_admin_identity_is_exempt_from_key_and_bucket_policy_denies_too(world):
    deny_all = document({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"})
    kms = world.admin.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=deny_all, BypassPolicyLockoutSafetyCheck=True)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyId"] == key
    s3 = world.admin.client("s3")
    bucket = f"denied-{world.id}"
    s3.create_bucket(Bucket=bucket)
    deny_objects = document({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3.put_bucket_policy(Bucket=bucket, Policy=deny_objects)
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    # Anyone else is refused by the same policies.
    role = world.session("reader", allow("kms:DescribeKey"), allow("s3:GetObject"))
    refused(lambda: role.client("kms").describe_key(KeyId=key), "AccessDeniedException")
    refused(lambda: role.client("s3").get_object(Bucket=bucket, Key="x"), "AccessDenied")


def test_a_key_aws_never_sets_on_an_action_is_absent_and_an_undeclared_listed_one_unknown(world):
    # sagemaker:VpcSubnets is not a key of ListModels: a deny of other subnets does not apply,
    # as in AWS, rather than counting as a key the emulator cannot judge.
    session = world.session(
        "scientist",
        allow("sagemaker:ListModels"),
        {"Effect": "Deny", "Action": "sagemaker:*", "Resource": "*",
         "Condition": {"ForAnyValue:StringNotEquals": {"sagemaker:VpcSubnets": ["subnet-ours"]}}},
    )
    assert session.client("sagemaker").list_models()["Models"] == []
    assert "unknown" not in session.calls("sagemaker")[-1]


def test_a_request_through_a_vpc_endpoint_needs_the_endpoints_policy_too(emulator):
    home, other = World(emulator), World(emulator)
    ec2 = home.admin.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    only_home = {"StringEquals": {"aws:PrincipalAccount": [home.id], "aws:ResourceAccount": [home.id]}}
    policy = document(
        allow("*", Principal="*", Condition=only_home),
        {"Effect": "Deny", "Principal": "*", "Action": "sagemaker:DeleteDomain", "Resource": "*"},
    )
    vpce = ec2.create_vpc_endpoint(
        VpcId=vpc, ServiceName="com.amazonaws.us-east-1.sagemaker.api", VpcEndpointType="Interface",
        PolicyDocument=policy,
    )["VpcEndpoint"]["VpcEndpointId"]
    through = {"x-emulator-source-vpce": vpce}
    bucket = f"elsewhere-{other.id}"
    other.admin.client("s3").create_bucket(Bucket=bucket)
    reader = home.role("reader", allow(["sagemaker:ListDomains", "sagemaker:DeleteDomain", "s3:ListBucket"]))
    grant = allow("s3:ListBucket", f"arn:aws:s3:::{bucket}", Principal={"AWS": reader})
    other.admin.client("s3").put_bucket_policy(Bucket=bucket, Policy=document(grant))
    insider = home.admin.assume(reader)
    assert insider.client("sagemaker", headers=through).list_domains()["Domains"] == []

    # Credentials of another account are refused at the endpoint, though their own policy allows.
    outsider = other.session("outsider", allow("sagemaker:ListDomains"))
    assert outsider.client("sagemaker").list_domains()["Domains"] == []
    message = refused(lambda: outsider.client("sagemaker", headers=through).list_domains(), "AccessDeniedException")
    assert message.endswith("because no VPC endpoint policy allows the sagemaker:ListDomains action"), message

    # The account's own credentials cannot reach another account's resource through it.
    assert insider.client("s3").list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    message = refused(lambda: insider.client("s3", headers=through).list_objects_v2(Bucket=bucket), "AccessDenied")
    assert "because no VPC endpoint policy allows the s3:ListBucket action" in message, message

    # An explicit deny in the endpoint's policy wins over the identity's allow.
    denied = lambda: insider.client("sagemaker", headers=through).delete_domain(DomainId="d-none")
    assert refused(denied, "AccessDeniedException").endswith("with an explicit deny in a VPC endpoint policy")


def test_a_models_image_must_be_one_its_execution_role_may_pull(world):
    ours = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    foreign = "999999999999.dkr.ecr.us-east-1.amazonaws.com/miner@sha256:" + "0" * 64
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    role = world.role("model-role", allow("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:683313688378:repository/*"), trust=trust)
    creator = world.session("creator", allow("sagemaker:CreateModel"), allow("iam:PassRole", role))
    sm = creator.client("sagemaker")
    sm.create_model(ModelName="ours", ExecutionRoleArn=role, PrimaryContainer={"Image": ours})
    message = refused(
        lambda: sm.create_model(ModelName="theirs", ExecutionRoleArn=role, PrimaryContainer={"Image": foreign}),
        "ValidationException",
    )
    assert message.startswith("Access denied for repository: miner in registry ID: 999999999999."), message
    assert f"role {role} has proper pull permissions" in message, message


def test_tagging_what_a_principal_creates_is_told_from_tagging_what_exists(world):
    sm = world.admin.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="theirs")
    owned = {"Null": {"aws:RequestTag/owner": "false", "sagemaker:TaggingAction": "false"}}
    creator = world.session(
        "creator",
        allow("sagemaker:CreateModelPackageGroup", Condition={"Null": {"aws:RequestTag/owner": "false"}}),
        allow("sagemaker:AddTags", Condition=owned),
    )
    mine = creator.client("sagemaker")
    mine.create_model_package_group(ModelPackageGroupName="mine", Tags=[{"Key": "owner", "Value": "me"}])
    theirs = sm.describe_model_package_group(ModelPackageGroupName="theirs")["ModelPackageGroupArn"]
    claim = lambda: mine.add_tags(ResourceArn=theirs, Tags=[{"Key": "owner", "Value": "me"}])
    assert "because no identity-based policy allows the sagemaker:AddTags action" in refused(claim, "AccessDeniedException")
