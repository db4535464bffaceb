"""SageMaker hosting of registered models: model package access across accounts, what Describe*
returns, KMS and instance storage, listings, tags and not-found errors."""

import json
import time
from datetime import datetime, timezone

import pytest
from botocore.exceptions import ClientError

from conftest import trust_policy

SPEC = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"}],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}
VPC = {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
CAPTURE = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 20,
    "DestinationS3Uri": "s3://capture/ep",
    "KmsKeyId": "arn:aws:kms:us-east-1:111111111111:key/capture",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
}


def error_of(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    error, metadata = raised.value.response["Error"], raised.value.response["ResponseMetadata"]
    return error["Code"], error["Message"], metadata["HTTPStatusCode"]


def arn(account, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{account.id}:{kind}/{name}"


def register(account, group: str = "churn") -> str:
    """A model package group in the account with one version; returns the version's ARN."""
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    return sagemaker.create_model_package(ModelPackageGroupName=group, InferenceSpecification=SPEC)[
        "ModelPackageArn"
    ]


def share(account, *statements: dict, group: str = "churn") -> None:
    account.client("sagemaker").put_model_package_group_policy(
        ModelPackageGroupName=group,
        ResourcePolicy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
    )


def allow(principal: str, action="sagemaker:CreateModel", resource: str = "*", effect: str = "Allow") -> dict:
    return {"Effect": effect, "Principal": {"AWS": principal}, "Action": action, "Resource": resource}


def create_model(caller, package: str, name: str = "model-v1", **extra) -> dict:
    return caller.client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{caller.id}:role/exec",
        PrimaryContainer={"ModelPackageName": package},
        VpcConfig=VPC,
        **extra,
    )


def no_policy_allows(caller, package: str) -> str:
    return (
        f"User: {caller.arn} is not authorized to perform: sagemaker:CreateModel on resource: {package} "
        "because no resource-based policy allows the sagemaker:CreateModel action"
    )


# --- model packages of another account -------------------------------------------


@pytest.mark.parametrize(
    "principal, action, resource",
    [
        ("root", "sagemaker:CreateModel", "package"),
        ("id", "sagemaker:*", "group/*"),
        ("*", "sagemaker:Create*", "*"),
    ],
)
def test_another_accounts_package_is_used_when_its_group_policy_allows_the_caller(
    account, other_account, principal, action, resource
):
    dev, target = account, other_account
    package = register(dev)
    principal = {"root": f"arn:aws:iam::{target.id}:root", "id": target.id, "*": "*"}[principal]
    resource = {"package": package, "group/*": arn(dev, "model-package", "churn/*"), "*": "*"}[resource]
    share(dev, allow(principal, action, resource))

    created = create_model(target, package)
    assert created["ModelArn"] == arn(target, "model", "model-v1")


def test_another_accounts_package_without_a_group_policy_is_access_denied(account, other_account):
    package = register(account)
    assert error_of(lambda: create_model(other_account, package)) == (
        "AccessDeniedException",
        no_policy_allows(other_account, package),
        400,
    )
    assert other_account.client("sagemaker").list_models()["Models"] == []


@pytest.mark.parametrize(
    "statement",
    [
        "another account",
        "another action",
        "another group",
        "deny",
    ],
)
def test_a_group_policy_that_does_not_allow_the_caller_is_access_denied(account, other_account, statement):
    dev, target = account, other_account
    package = register(dev)
    root = f"arn:aws:iam::{target.id}:root"
    share(
        dev,
        {
            "another account": allow("arn:aws:iam::999999999999:root"),
            "another action": allow(root, ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"]),
            "another group": allow(root, resource=arn(dev, "model-package", "fraud/*")),
            "deny": allow(root, effect="Deny"),
        }[statement],
    )
    code, message, status = error_of(lambda: create_model(target, package))
    assert (code, status) == ("AccessDeniedException", 400)
    if statement == "deny":
        assert message.endswith("with an explicit deny in a resource-based policy")
    else:
        assert message == no_policy_allows(target, package)


def test_an_explicit_deny_wins_over_an_allow(account, other_account):
    package = register(account)
    root = f"arn:aws:iam::{other_account.id}:root"
    share(account, allow(root, "sagemaker:*"), allow(root, "sagemaker:CreateModel", effect="Deny"))
    code, message, _ = error_of(lambda: create_model(other_account, package))
    assert code == "AccessDeniedException"
    assert message == (
        f"User: {other_account.arn} is not authorized to perform: sagemaker:CreateModel on resource: "
        f"{package} with an explicit deny in a resource-based policy"
    )


def test_the_denied_caller_is_named_as_its_assumed_role_session(account, other_account):
    package = register(account)
    role = f"arn:aws:iam::{other_account.id}:role/deployer"
    other_account.client("iam").create_role(
        RoleName="deployer", AssumeRolePolicyDocument=trust_policy(other_account.id)
    )
    deployer = other_account.assume(role, session_name="sagekeeper")
    code, message, _ = error_of(lambda: create_model(deployer, package))
    assert code == "AccessDeniedException"
    session = f"arn:aws:sts::{other_account.id}:assumed-role/deployer/sagekeeper"
    assert message.startswith(f"User: {session} is not authorized")

    # A policy naming the role (not the account) allows its sessions.
    share(account, allow(role))
    create_model(deployer, package)


def test_another_accounts_package_that_does_not_exist_is_a_validation_error(account, other_account):
    register(account)
    share(account, allow("*"))
    missing = arn(account, "model-package", "churn/7")
    assert error_of(lambda: create_model(other_account, missing)) == (
        "ValidationException",
        f"ModelPackage {missing} does not exist.",
        400,
    )


def test_a_package_in_another_region_is_looked_up_there(account, other_account):
    package = register(account).replace("us-east-1", "eu-west-1")
    share(account, allow("*"))
    code, message, _ = error_of(lambda: create_model(other_account, package))
    assert (code, message) == ("ValidationException", f"ModelPackage {package} does not exist.")


def test_every_container_is_checked(account, other_account):
    package = register(account)
    create = lambda: other_account.client("sagemaker").create_model(  # noqa: E731
        ModelName="pipeline",
        ExecutionRoleArn=f"arn:aws:iam::{other_account.id}:role/exec",
        Containers=[SPEC["Containers"][0], {"ModelPackageName": package}],
    )
    assert error_of(create)[0] == "AccessDeniedException"
    share(account, allow(other_account.id))
    create()


# --- model packages of the caller's account ------------------------------------------


def test_own_package_needs_no_policy(account):
    package = register(account)
    create_model(account, package)
    model = account.client("sagemaker").describe_model(ModelName="model-v1")
    assert model["PrimaryContainer"] == {"ModelPackageName": package}


def test_own_package_that_does_not_exist_is_a_validation_error(account):
    register(account)
    for name in (arn(account, "model-package", "churn/2"), "no-such-package"):
        assert error_of(lambda: create_model(account, name)) == (
            "ValidationException",
            f"ModelPackage {name} does not exist.",
            400,
        )


def test_own_unversioned_package_by_name(account):
    sagemaker = account.client("sagemaker")
    sagemaker.create_model_package(ModelPackageName="standalone", InferenceSpecification=SPEC)
    create_model(account, "standalone")


def test_own_package_denied_by_its_group_policy_is_access_denied(account):
    package = register(account)
    share(account, allow(account.id, effect="Deny"))
    assert error_of(lambda: create_model(account, package))[0] == "AccessDeniedException"


# --- what Describe* returns ------------------------------------------------------------


def test_describe_model_returns_what_was_created(account, other_account):
    package = register(account)
    share(account, allow(other_account.id))
    create_model(other_account, package, EnableNetworkIsolation=True, Tags=[{"Key": "owner", "Value": "x"}])
    model = other_account.client("sagemaker").describe_model(ModelName="model-v1")
    assert model["PrimaryContainer"] == {"ModelPackageName": package}
    assert model["ExecutionRoleArn"] == f"arn:aws:iam::{other_account.id}:role/exec"
    assert model["VpcConfig"] == VPC
    assert model["EnableNetworkIsolation"] is True
    assert "Containers" not in model


def test_network_isolation_is_off_unless_asked_for(account):
    create_model(account, register(account))
    assert account.client("sagemaker").describe_model(ModelName="model-v1")["EnableNetworkIsolation"] is False


def make_config(sagemaker, account, name: str = "cfg-v1", **extra) -> None:
    sagemaker.create_model(
        ModelName=f"model-{name}",
        ExecutionRoleArn=f"arn:aws:iam::{account.id}:role/exec",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"model-{name}",
                "InstanceType": extra.pop("instance_type", "ml.m5.large"),
                "InitialInstanceCount": 2,
                "InitialVariantWeight": 1.0,
            }
        ],
        **extra,
    )


def test_describe_endpoint_config_returns_key_variants_and_data_capture(account):
    sagemaker = account.client("sagemaker")
    key = f"arn:aws:kms:us-east-1:{account.id}:key/volume"
    make_config(sagemaker, account, KmsKeyId=key, DataCaptureConfig=CAPTURE)
    config = sagemaker.describe_endpoint_config(EndpointConfigName="cfg-v1")
    assert config["KmsKeyId"] == key
    assert config["DataCaptureConfig"] == CAPTURE
    assert config["ProductionVariants"] == [
        {
            "VariantName": "AllTraffic",
            "ModelName": "model-cfg-v1",
            "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 2,
            "InitialVariantWeight": 1.0,
        }
    ]


def test_a_config_without_capture_or_key_describes_neither(account):
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account)
    config = sagemaker.describe_endpoint_config(EndpointConfigName="cfg-v1")
    assert "DataCaptureConfig" not in config and "KmsKeyId" not in config
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="cfg-v1")
    assert "DataCaptureConfig" not in sagemaker.describe_endpoint(EndpointName="ep")


def test_describe_endpoint_summarizes_the_serving_configs_data_capture(account):
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, DataCaptureConfig=CAPTURE)
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="cfg-v1")
    endpoint = sagemaker.describe_endpoint(EndpointName="ep")
    assert endpoint["EndpointConfigName"] == "cfg-v1"
    assert endpoint["DataCaptureConfig"] == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 20,
        "DestinationS3Uri": "s3://capture/ep",
        "KmsKeyId": CAPTURE["KmsKeyId"],
    }

    make_config(sagemaker, account, "cfg-v2", DataCaptureConfig={**CAPTURE, "EnableCapture": False})
    sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="cfg-v2")
    capture = sagemaker.describe_endpoint(EndpointName="ep")["DataCaptureConfig"]
    assert (capture["EnableCapture"], capture["CaptureStatus"]) == (False, "Stopped")


# --- KMS keys and instance storage -----------------------------------------------------


NVME = ["ml.m5d.large", "ml.c5d.xlarge", "ml.r5d.large", "ml.g4dn.xlarge", "ml.g5.2xlarge", "ml.p4d.24xlarge"]


@pytest.mark.parametrize("instance_type", NVME)
def test_kms_key_with_local_instance_storage_is_refused(account, instance_type):
    sagemaker = account.client("sagemaker")
    create = lambda: make_config(  # noqa: E731
        sagemaker, account, instance_type=instance_type, KmsKeyId="alias/volume"
    )
    assert error_of(create) == (
        "ValidationException",
        f"The instance type {instance_type} does not support KMS encryption of the storage volume: "
        "it has local instance storage, which is encrypted by a hardware module on the instance. "
        "Please remove the KmsKeyId from the endpoint configuration.",
        400,
    )
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


@pytest.mark.parametrize("instance_type", ["ml.g5.2xlarge", "ml.m6i.large", "ml.inf2.xlarge"])
def test_instance_types_moto_does_not_know_are_accepted(account, instance_type):
    make_config(account.client("sagemaker"), account, instance_type=instance_type)


@pytest.mark.parametrize("instance_type", ["ml.m5.large", "ml.c5.xlarge", "ml.inf2.xlarge", "ml.m6i.large"])
def test_kms_key_with_ebs_storage_is_accepted(account, instance_type):
    make_config(account.client("sagemaker"), account, instance_type=instance_type, KmsKeyId="alias/volume")


def test_an_unknown_instance_type_is_refused(account):
    sagemaker = account.client("sagemaker")
    code, message, _ = error_of(lambda: make_config(sagemaker, account, instance_type="ml.m99.large"))
    assert code == "ValidationException" and "Value 'ml.m99.large' at 'instanceType'" in message


# --- listings ----------------------------------------------------------------------------


def test_listings_filter_by_name_and_list_newest_first(account):
    sagemaker = account.client("sagemaker")
    for name in ("churn-v1", "fraud-v1", "churn-v2"):
        make_config(sagemaker, account, name)
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
        time.sleep(0.01)

    models = sagemaker.list_models(NameContains="churn")["Models"]
    assert [m["ModelName"] for m in models] == ["model-churn-v2", "model-churn-v1"]
    assert models[0]["ModelArn"] == arn(account, "model", "model-churn-v2")
    configs = sagemaker.list_endpoint_configs(NameContains="churn")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["churn-v2", "churn-v1"]
    endpoints = sagemaker.list_endpoints(NameContains="churn")["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == ["churn-v2", "churn-v1"]
    assert len(sagemaker.list_endpoints(StatusEquals="InService")["Endpoints"]) == 3
    assert sagemaker.list_endpoints(StatusEquals="Failed")["Endpoints"] == []
    assert sagemaker.list_models(NameContains="nothing")["Models"] == []


def test_listings_sort_and_page(account):
    sagemaker = account.client("sagemaker")
    for name in ("b", "c", "a"):
        make_config(sagemaker, account, name)

    first = sagemaker.list_models(SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [m["ModelName"] for m in first["Models"]] == ["model-a", "model-b"]
    rest = sagemaker.list_models(
        SortBy="Name", SortOrder="Ascending", MaxResults=2, NextToken=first["NextToken"]
    )
    assert [m["ModelName"] for m in rest["Models"]] == ["model-c"] and "NextToken" not in rest
    configs = sagemaker.list_endpoint_configs(SortBy="Name", SortOrder="Descending")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["c", "b", "a"]


def test_listings_filter_by_creation_time(account):
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "old")
    time.sleep(0.05)
    between = datetime.now(timezone.utc)
    time.sleep(0.05)
    make_config(sagemaker, account, "new")
    models = sagemaker.list_models(CreationTimeAfter=between)["Models"]
    assert [m["ModelName"] for m in models] == ["model-new"]
    configs = sagemaker.list_endpoint_configs(CreationTimeBefore=between)["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in configs] == ["old"]


# --- tags ----------------------------------------------------------------------------------


def test_tags_on_models_configs_and_endpoints(account):
    sagemaker = account.client("sagemaker")
    owner = [{"Key": "owner", "Value": "uid-1"}]
    make_config(sagemaker, account, Tags=owner)
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="cfg-v1", Tags=owner)
    sagemaker.add_tags(ResourceArn=arn(account, "model", "model-cfg-v1"), Tags=owner)
    for kind, name in (("model", "model-cfg-v1"), ("endpoint-config", "cfg-v1"), ("endpoint", "ep")):
        resource = arn(account, kind, name)
        sagemaker.add_tags(ResourceArn=resource, Tags=[{"Key": "updating-to", "Value": "v2"}])
        sagemaker.add_tags(ResourceArn=resource, Tags=[{"Key": "updating-to", "Value": "v3"}])
        assert sagemaker.list_tags(ResourceArn=resource)["Tags"] == [
            {"Key": "owner", "Value": "uid-1"},
            {"Key": "updating-to", "Value": "v3"},
        ]


# --- not found -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation, parameter, kind, label",
    [
        ("describe_model", "ModelName", "model", "model"),
        ("delete_model", "ModelName", "model", "model"),
        ("describe_endpoint_config", "EndpointConfigName", "endpoint-config", "endpoint configuration"),
        ("delete_endpoint_config", "EndpointConfigName", "endpoint-config", "endpoint configuration"),
        ("describe_endpoint", "EndpointName", "endpoint", "endpoint"),
        ("delete_endpoint", "EndpointName", "endpoint", "endpoint"),
    ],
)
def test_unknown_names_are_validation_errors_naming_the_arn(account, operation, parameter, kind, label):
    call = getattr(account.client("sagemaker"), operation)
    assert error_of(lambda: call(**{parameter: "nope"})) == (
        "ValidationException",
        f'Could not find {label} "{arn(account, kind, "nope")}".',
        400,
    )


def test_config_of_an_unknown_model_and_endpoint_of_an_unknown_config_are_refused(account):
    sagemaker = account.client("sagemaker")
    create_config = lambda: sagemaker.create_endpoint_config(  # noqa: E731
        EndpointConfigName="cfg",
        ProductionVariants=[
            {
                "VariantName": "v",
                "ModelName": "nope",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    assert error_of(create_config)[:2] == (
        "ValidationException",
        f'Could not find model "{arn(account, "model", "nope")}".',
    )
    assert error_of(lambda: sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="nope"))[:2] == (
        "ValidationException",
        f'Could not find endpoint configuration "{arn(account, "endpoint-config", "nope")}".',
    )
