"""SageMaker hosting: name conflicts, Creating/Updating/Deleting windows, failures and rollback."""

import pytest
from botocore.exceptions import ClientError

from conftest import wait_for


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def arn(account, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:us-east-1:{account.id}:{kind}/{name}"


def make_config(sagemaker, account, name: str, instances: int = 1) -> None:
    model = f"model-{name}"
    sagemaker.create_model(
        ModelName=model,
        ExecutionRoleArn=f"arn:aws:iam::{account.id}:role/exec",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": model,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": instances,
            }
        ],
    )


def status(sagemaker, name: str = "ep") -> str:
    return sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]


@pytest.fixture
def hosting(account):
    """A SageMaker client with configs v1 and v2 and endpoint "ep" InService on v1."""
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1")
    make_config(sagemaker, account, "v2", instances=2)
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="v1")
    return sagemaker


def test_second_model_with_the_same_name_is_refused(account):
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1")
    assert error_of(lambda: make_config(sagemaker, account, "v1")) == (
        "ValidationException",
        f'Cannot create already existing model "{arn(account, "model", "model-v1")}".',
    )


def test_second_endpoint_config_with_the_same_name_is_refused(account):
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1")
    create = lambda: sagemaker.create_endpoint_config(  # noqa: E731
        EndpointConfigName="v1",
        ProductionVariants=[
            {
                "VariantName": "x",
                "ModelName": "model-v1",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 3,
            }
        ],
    )
    assert error_of(create) == (
        "ValidationException",
        f'Cannot create already existing endpoint configuration "{arn(account, "endpoint-config", "v1")}".',
    )
    assert (
        sagemaker.describe_endpoint_config(EndpointConfigName="v1")["ProductionVariants"][0]["VariantName"]
        == "main"
    )


def test_second_endpoint_with_the_same_name_is_refused(hosting, account):
    assert error_of(lambda: hosting.create_endpoint(EndpointName="ep", EndpointConfigName="v2")) == (
        "ValidationException",
        f'Cannot create already existing endpoint "{arn(account, "endpoint", "ep")}".',
    )
    assert hosting.describe_endpoint(EndpointName="ep")["EndpointConfigName"] == "v1"


def test_endpoint_is_in_service_at_once_by_default(hosting):
    assert status(hosting) == "InService"


def test_endpoint_is_creating_for_the_configured_seconds(account):
    account.configure(endpointCreatingSeconds=1)
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1")
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="v1")
    assert status(sagemaker) == "Creating"
    assert sagemaker.list_endpoints()["Endpoints"][0]["EndpointStatus"] == "Creating"
    assert wait_for(lambda: status(sagemaker), "InService") == "InService"


def test_requested_create_failure_ends_failed_with_the_reason(account, emulator):
    emulator.post(
        "/_emulator/endpoint-failures",
        {"account": account.id, "endpointName": "ep", "kind": "create", "reason": "image not found"},
    )
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1")
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="v1")
    endpoint = sagemaker.describe_endpoint(EndpointName="ep")
    assert (endpoint["EndpointStatus"], endpoint["FailureReason"]) == ("Failed", "image not found")


def test_update_is_updating_with_pending_deployment_then_serves_the_new_config(hosting, account):
    account.configure(endpointUpdatingSeconds=1)
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2")
    endpoint = hosting.describe_endpoint(EndpointName="ep")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("Updating", "v1")
    pending = endpoint["PendingDeploymentSummary"]
    assert pending["EndpointConfigName"] == "v2"
    assert pending["ProductionVariants"][0]["DesiredInstanceCount"] == 2

    assert wait_for(lambda: status(hosting), "InService") == "InService"
    endpoint = hosting.describe_endpoint(EndpointName="ep")
    assert endpoint["EndpointConfigName"] == "v2"
    assert endpoint["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert "PendingDeploymentSummary" not in endpoint and "FailureReason" not in endpoint


def test_update_with_default_settings_switches_config_at_once(hosting):
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2")
    endpoint = hosting.describe_endpoint(EndpointName="ep")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", "v2")


def test_update_of_an_in_progress_endpoint_is_refused(hosting, account):
    account.configure(endpointUpdatingSeconds=30)
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2")
    assert error_of(lambda: hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v1")) == (
        "ValidationException",
        f'Cannot update in-progress endpoint "{arn(account, "endpoint", "ep")}".',
    )


def test_update_to_an_unknown_config_is_refused(hosting):
    code, message = error_of(lambda: hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v9"))
    assert code == "ValidationException" and "endpoint configuration" in message
    assert status(hosting) == "InService"


def test_update_of_an_unknown_endpoint_is_refused(account):
    code, message = error_of(
        lambda: account.client("sagemaker").update_endpoint(EndpointName="none", EndpointConfigName="v1")
    )
    assert code == "ValidationException" and "Could not find endpoint" in message


def test_failed_update_rolls_back_to_the_old_config_with_the_reason(hosting, account, emulator):
    account.configure(endpointUpdatingSeconds=1)
    emulator.post(
        "/_emulator/endpoint-failures",
        {
            "account": account.id,
            "endpointName": "ep",
            "endpointConfigName": "v2",
            "kind": "update",
            "reason": "alarm fired",
        },
    )
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2")
    assert status(hosting) == "Updating"
    assert wait_for(lambda: status(hosting), "InService") == "InService"
    endpoint = hosting.describe_endpoint(EndpointName="ep")
    assert (endpoint["EndpointConfigName"], endpoint["FailureReason"]) == ("v1", "alarm fired")
    assert "PendingDeploymentSummary" not in endpoint

    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2")  # the failure was used up
    assert wait_for(lambda: hosting.describe_endpoint(EndpointName="ep")["EndpointConfigName"], "v2") == "v2"


def test_failure_for_another_config_leaves_this_update_alone(hosting, account, emulator):
    emulator.post(
        "/_emulator/endpoint-failures",
        {"account": account.id, "endpointName": "ep", "endpointConfigName": "v3", "reason": "x"},
    )
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2")
    endpoint = hosting.describe_endpoint(EndpointName="ep")
    assert (endpoint["EndpointConfigName"], endpoint.get("FailureReason")) == ("v2", None)


def test_endpoint_failures_are_cleared_per_account(account, emulator):
    emulator.post(
        "/_emulator/endpoint-failures", {"account": account.id, "endpointName": "ep", "reason": "x"}
    )
    assert emulator.delete(f"/_emulator/endpoint-failures?account={account.id}") == {"removed": 1}


def test_delete_goes_through_deleting_for_the_configured_seconds(hosting, account):
    account.configure(endpointDeletingSeconds=1)
    hosting.delete_endpoint(EndpointName="ep")
    assert status(hosting) == "Deleting"
    assert wait_for(lambda: len(hosting.list_endpoints()["Endpoints"]), 0) == 0
    assert error_of(lambda: status(hosting))[0] == "ValidationException"


def test_delete_is_immediate_by_default(hosting):
    hosting.delete_endpoint(EndpointName="ep")
    assert hosting.list_endpoints()["Endpoints"] == []
