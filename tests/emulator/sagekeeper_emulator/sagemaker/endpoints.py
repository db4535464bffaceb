"""SageMaker hosting: endpoints that take time, update blue/green and can fail.

moto's endpoints are InService at once and forever, there is no UpdateEndpoint,
and a second CreateModel, CreateEndpointConfig or CreateEndpoint with a used
name silently replaces the first. Here, as in AWS: a duplicate name is a
ValidationException; CreateEndpoint goes Creating -> InService (or Failed with
a FailureReason when the test asked for a failure); UpdateEndpoint goes
Updating, with PendingDeploymentSummary naming the new config, then InService
on the new config, or, when the test asked for a failed update, back to
InService on the old config with FailureReason set (auto-rollback);
UpdateEndpoint of an in-progress endpoint is refused; DeleteEndpoint goes
through Deleting. Durations come from the account's config.
"""

from __future__ import annotations

import itertools

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError

from .core import LOCK, Call, operation, table, timeline

_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_failure_ids = itertools.count(1)


def _refuse_existing(call: Call, names: dict, name_param: str, kind: str, label: str) -> None:
    name = call.param(name_param)
    if name in names:
        raise ValidationError(f'Cannot create already existing {label} "{call.arn(kind, name)}".')


@operation
def create_model(call: Call):
    _refuse_existing(call, call.backend._models, "ModelName", "model", "model")
    return call.original()


@operation
def create_endpoint_config(call: Call):
    _refuse_existing(
        call, call.backend.endpoint_configs, "EndpointConfigName", "endpoint-config", "endpoint configuration"
    )
    return call.original()


# --- failures requested by tests ---------------------------------------------


def register_failure(
    account: str, endpoint_name: str, kind: str, reason: str, config_name: str | None
) -> str:
    """Make the next create (or update, to config_name if given) of the endpoint fail."""
    if kind not in ("create", "update"):
        raise ValueError("kind must be 'create' or 'update'")
    with LOCK:
        failure_id = f"endpoint-failure-{next(_failure_ids)}"
        table("endpoint-failure", account)[failure_id] = (endpoint_name, kind, reason, config_name)
        return failure_id


def clear_failures(account: str) -> int:
    """Forget the failures registered for an account."""
    with LOCK:
        failures = table("endpoint-failure", account)
        count = len(failures)
        failures.clear()
        return count


def _take_failure(call: Call, endpoint_name: str, kind: str, config_name: str | None) -> str | None:
    failures = table("endpoint-failure", call.scope[0])
    for failure_id, (name, wanted_kind, reason, wanted_config) in failures.items():
        if (name, wanted_kind) == (endpoint_name, kind) and wanted_config in (None, config_name):
            del failures[failure_id]
            return reason
    return None


# --- endpoints ---------------------------------------------------------------


def _endpoint(call: Call):
    name = call.param("EndpointName")
    call.backend.describe_endpoint(name)  # moto's "Could not find endpoint" error
    return call.backend.endpoints[name]


@operation
def create_endpoint(call: Call):
    name = call.param("EndpointName")
    _refuse_existing(call, call.backend.endpoints, "EndpointName", "endpoint", "endpoint")
    result = call.original()
    endpoint = call.backend.endpoints[name]
    endpoint.endpoint_status = "Creating"
    reason = _take_failure(call, name, "create", None)

    def finish(due) -> None:
        endpoint.endpoint_status = "Failed" if reason else "InService"
        endpoint.failure_reason, endpoint.last_modified_time = reason, due

    timeline.schedule(call.scope, endpoint.arn, call.config.endpointCreatingSeconds, finish)
    return result


def _pending_summary(config: dict, started) -> dict:
    variants = [
        {
            key: value
            for key, value in {
                "VariantName": variant["VariantName"],
                "DesiredInstanceCount": variant.get("InitialInstanceCount"),
                "DesiredWeight": variant.get("InitialVariantWeight"),
                "InstanceType": variant.get("InstanceType"),
                "VariantStatus": [{"Status": "Creating", "StartTime": started}],
            }.items()
            if value is not None
        }
        for variant in config["ProductionVariants"]
    ]
    return {
        "EndpointConfigName": config["EndpointConfigName"],
        "ProductionVariants": variants,
        "StartTime": started,
    }


@operation
def update_endpoint(call: Call) -> dict:
    endpoint = _endpoint(call)
    if endpoint.endpoint_status in _IN_PROGRESS:
        raise ValidationError(f'Cannot update in-progress endpoint "{endpoint.arn}".')
    config = call.backend.describe_endpoint_config(call.param("EndpointConfigName"))
    reason = _take_failure(call, endpoint.endpoint_name, "update", config["EndpointConfigName"])
    endpoint.endpoint_status = "Updating"
    endpoint.pending_deployment_summary = _pending_summary(config, utcnow())
    if call.param("DeploymentConfig"):
        endpoint.last_deployment_config = call.param("DeploymentConfig")

    def finish(due) -> None:
        if not reason:
            endpoint.endpoint_config_name = config["EndpointConfigName"]
            endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
            endpoint.data_capture_config = config.get("DataCaptureConfig")
        # A failed update is rolled back: the old config keeps serving, the reason stays visible.
        endpoint.endpoint_status, endpoint.failure_reason = "InService", reason
        endpoint.pending_deployment_summary, endpoint.last_modified_time = None, due

    timeline.schedule(call.scope, endpoint.arn, call.config.endpointUpdatingSeconds, finish)
    return {"EndpointArn": endpoint.arn}


@operation
def delete_endpoint(call: Call) -> None:
    endpoint, endpoints = _endpoint(call), call.backend.endpoints
    if endpoint.endpoint_status == "Deleting":
        return
    endpoint.endpoint_status, endpoint.pending_deployment_summary = "Deleting", None

    def finish(_due) -> None:
        if endpoints.get(endpoint.endpoint_name) is endpoint:
            del endpoints[endpoint.endpoint_name]

    timeline.schedule(call.scope, endpoint.arn, call.config.endpointDeletingSeconds, finish)
