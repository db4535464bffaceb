"""SageMaker hosting: models, endpoint configs, and endpoints that take time, update
blue/green and can fail.

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

Models and configs, where moto differs from AWS:
- moto accepts any ModelPackageName in a container. Here the package must
  exist (in its own account and region, for an ARN), and a package of another
  account is used only when its group's resource policy (the registry's
  PutModelPackageGroupPolicy) allows the caller sagemaker:CreateModel on it.
  An explicit Deny refuses it in any account (AccessDeniedException).
- moto accepts any container Image. Here, under IAM evaluation of the
  caller's account, an ECR image is checked as SageMaker checks it: the
  model's execution role must be allowed ecr:BatchGetImage on the image's
  repository (a ValidationException naming the pull permissions otherwise).
  Repository policies are not modelled: another account's repository counts
  as shared, as SageMaker's own registries are.
- moto drops EnableNetworkIsolation (always False) and describes an empty
  Containers list and empty DataCaptureConfig; DescribeEndpoint's
  DataCaptureConfig lacks CaptureStatus and CurrentSamplingPercentage.
- moto checks instance types against an old list (no ml.g5, ml.m6i, ...); here
  against the SDK's ProductionVariantInstanceType enum. AWS refuses a KmsKeyId
  with an instance type that has local NVMe storage; moto accepts it.
- ListModels ignores NameContains, the filters, sorting and paging in moto;
  ListEndpoints and ListEndpointConfigs list oldest first by default. Here all
  three filter, sort (newest first by default, as AWS) and page alike.
- moto's not-found messages quote names with ' (and DeleteModel names no ARN);
  AWS's read 'Could not find model "<arn>".'.
"""

from __future__ import annotations

import functools
import itertools
import re
from datetime import datetime, timezone

import botocore.session
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import SagemakerClientError, ValidationError
from moto.sagemaker.models import FakeEndpointConfig, SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.utils import arn_formatter

from ..authorization import evaluator, modes, resources
from ..authorization.evaluation import Check, Principal, decide
from ..identity import current
from ..policies import evaluate, parse, request_keys
from . import rollouts
from .core import LOCK, Call, listing, operation, table, timeline

_IN_PROGRESS = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_failure_ids = itertools.count(1)
_ECR_IMAGE = re.compile(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)(?:[:@].*)?")
_PACKAGE_ARN = re.compile(r"arn:aws[a-z-]*:sagemaker:([a-z0-9-]+):(\d{12}):model-package/.+", re.IGNORECASE)
# Instance families with local NVMe instance storage, whose volumes a hardware module encrypts:
# every family with a "d" (c5d, m5d, r5d, c6gd, m6gd, r6gd, r7gd, g4dn, p4d, p4de, dl1), and these.
_NVME_FAMILIES = {"g5", "g6", "g6e", "p5", "p5e", "p5en", "p6-b200", "p6-b300", "trn1", "trn1n", "trn2"}


class AccessDeniedException(SagemakerClientError):
    code = "AccessDeniedException"


def _refuse_existing(call: Call, names: dict, name_param: str, kind: str, label: str) -> None:
    name = call.param(name_param)
    if name in names:
        raise ValidationError(f'Cannot create already existing {label} "{call.arn(kind, name)}".')


# --- models ------------------------------------------------------------------


def _model_package(call: Call, name: str):
    """The package a container names: an ARN (of any account) or a name in the caller's account."""
    account, region = call.scope
    match = _PACKAGE_ARN.fullmatch(name)
    owner, owner_region = (match.group(2), match.group(1).lower()) if match else (account, region)
    arn = name.lower() if match else arn_formatter("model-package", name.lower(), account, region)
    try:
        package = sagemaker_backends[owner][owner_region].model_packages.get(arn)
    except KeyError:  # a region moto does not know
        package = None
    if package is None:
        raise ValidationError(f"ModelPackage {name} does not exist.")
    return package, owner, owner_region


def _authorize_package(call: Call, name: str, action: str = "sagemaker:CreateModel"):
    """AWS's resource-policy check of an action on a model package: another account's package
    needs an Allow in its group's policy; a Deny refuses it in any account. Returns the package."""
    package, owner, region = _model_package(call, name)
    group = package.model_package_group_name
    policy = parse(table("group-policy", owner, region).get(group) or "") if group else None
    context = current()
    verdict = evaluate(policy, action, package.arn, context.caller, request_keys(context)) if policy else None
    refusal = f"User: {context.caller.arn} is not authorized to perform: {action} on resource: {package.arn}"
    if verdict == "Deny":
        raise AccessDeniedException(f"{refusal} with an explicit deny in a resource-based policy")
    if owner != call.scope[0] and verdict != "Allow":
        raise AccessDeniedException(f"{refusal} because no resource-based policy allows the {action} action")
    return package


@operation
def describe_model_package(call: Call):
    """Another account's package by ARN, as its group's policy allows (moto looks only in the
    caller's account)."""
    name = call.param("ModelPackageName") or ""
    if not _PACKAGE_ARN.fullmatch(name):
        return call.original()
    return _authorize_package(call, name, "sagemaker:DescribeModelPackage").gen_response_object()


def role_may(role, action: str, resource: str, resource_type: str) -> bool:
    """Whether SageMaker, acting as execution role `role`, may do `action` on `resource` (the
    role's identity policies within its boundary)."""
    role_account, (region, owner) = role.arn.split(":")[4], resource.split(":")[3:5]
    session = f"arn:aws:sts::{role_account}:assumed-role/{role.name}/SageMaker"
    principal = Principal(role_account, session, role.arn)
    keys = {
        "aws:principalarn": [role.arn],
        "aws:principalaccount": [role_account],
        "aws:principaltype": ["AssumedRole"],
        "aws:resourceaccount": [owner],
        "aws:requestedregion": [region],
        "aws:viaawsservice": ["true"],
        "aws:calledvia": ["sagemaker.amazonaws.com"],
    }
    check = Check(action, resource, keys, resource_type=resource_type, resource_account=role_account)
    identity, boundary = resources.identity_policies(role_account, role.arn)
    return decide(evaluator, principal, check, identity, boundary).allowed


def _check_image_pull(call: Call, image: str, role_arn: str) -> None:
    """SageMaker pulls a model's image as its execution role: under evaluation, the role must be
    allowed to (its identity policies within its boundary)."""
    match = _ECR_IMAGE.fullmatch(image or "")
    role = resources.role_from_arn(role_arn or "")
    if match is None or role is None or modes.of(call.scope[0]) == "off":
        return
    registry, region, repository = match.groups()
    resource = f"arn:aws:ecr:{region}:{registry}:repository/{repository}"
    if not role_may(role, "ecr:BatchGetImage", resource, "repository"):
        raise ValidationError(
            f"Access denied for repository: {repository} in registry ID: {registry}. Please check if your ECR "
            f"repository and image exist and role {role.arn} has proper pull permissions for SageMaker: "
            "ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer"
        )


@operation
def create_model(call: Call):
    containers = [call.param("PrimaryContainer") or {}, *(call.param("Containers") or [])]
    for container in containers:
        if container.get("ModelPackageName"):
            _authorize_package(call, container["ModelPackageName"])
        if container.get("Image"):
            _check_image_pull(call, container["Image"], call.param("ExecutionRoleArn"))
    _refuse_existing(call, call.backend._models, "ModelName", "model", "model")
    result = call.original()
    model = call.backend._models[call.param("ModelName")]
    model.enable_network_isolation = bool(call.param("EnableNetworkIsolation"))
    model.inference_execution_config = call.param("InferenceExecutionConfig")
    return result


@operation
def describe_model(call: Call) -> dict:
    model = call.backend.describe_model(call.param("ModelName"))
    description = {
        "ModelName": model.model_name,
        "ModelArn": model.arn,
        "CreationTime": model.creation_time,
        "ExecutionRoleArn": model.execution_role_arn,
        "PrimaryContainer": model.primary_container,
        "Containers": model.containers,
        "InferenceExecutionConfig": getattr(model, "inference_execution_config", None),
        "VpcConfig": model.vpc_config,
        "EnableNetworkIsolation": model.enable_network_isolation,
    }
    return {key: value for key, value in description.items() if value not in (None, {}, [])}


# --- endpoint configs ----------------------------------------------------------


def _has_instance_storage(instance_type: str) -> bool:
    family = instance_type.split(".")[1] if instance_type.count(".") == 2 else ""
    return "d" in family or family in _NVME_FAMILIES


@operation
def create_endpoint_config(call: Call):
    if call.param("KmsKeyId"):
        for variant in call.param("ProductionVariants") or []:
            instance_type = variant.get("InstanceType") or ""
            if _has_instance_storage(instance_type):
                raise ValidationError(
                    f"The instance type {instance_type} does not support KMS encryption of the storage "
                    "volume: it has local instance storage, which is encrypted by a hardware module on the "
                    "instance. Please remove the KmsKeyId from the endpoint configuration."
                )
    _refuse_existing(
        call, call.backend.endpoint_configs, "EndpointConfigName", "endpoint-config", "endpoint configuration"
    )
    return call.original()


@operation
def describe_endpoint_config(call: Call) -> dict:
    description = call.backend.describe_endpoint_config(call.param("EndpointConfigName"))
    # moto's object also carries its tags and a one-tuple "Arn"; AWS omits empty settings.
    return {k: v for k, v in description.items() if k not in ("Arn", "Tags") and v not in ({}, [])}


@functools.cache
def _instance_types() -> tuple[str, ...]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for("ProductionVariantInstanceType").enum)


def _validate_instance_type(self: FakeEndpointConfig, instance_type: str) -> None:
    if instance_type not in _instance_types():
        raise ValidationError(
            f"1 validation error detected: Value '{instance_type}' at 'instanceType' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(_instance_types())}]"
        )


def _validate_production_variants(self: SageMakerModelBackend, production_variants: list[dict]) -> None:
    for variant in production_variants:
        if variant["ModelName"] not in self._models:
            arn = arn_formatter("model", variant["ModelName"], self.account_id, self.region_name)
            raise ValidationError(f'Could not find model "{arn}".')


# --- listings ------------------------------------------------------------------


def _naive_utc(value) -> datetime | None:
    """A request timestamp (datetime or epoch seconds) as moto keeps times: naive UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(float(value), tz=timezone.utc)
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _listed(call: Call, items: list[dict], key: str, name_field: str) -> dict:
    """NameContains, the time filters and StatusEquals; then sorting and paging like AWS."""
    contains = call.param("NameContains")
    if contains:
        items = [item for item in items if contains in item[name_field]]
    for param, field, before in (
        ("CreationTimeBefore", "CreationTime", True),
        ("CreationTimeAfter", "CreationTime", False),
        ("LastModifiedTimeBefore", "LastModifiedTime", True),
        ("LastModifiedTimeAfter", "LastModifiedTime", False),
    ):
        bound = _naive_utc(call.param(param))
        if bound is not None:
            items = [i for i in items if field in i and (i[field] < bound if before else i[field] > bound)]
    if call.param("StatusEquals"):
        items = [item for item in items if item.get("EndpointStatus") == call.param("StatusEquals")]
    return listing(call, items, key, {"Name": name_field, "Status": "EndpointStatus"})


@operation
def list_models(call: Call) -> dict:
    models = [
        {"ModelName": m.model_name, "ModelArn": m.arn, "CreationTime": m.creation_time}
        for m in call.backend._models.values()
    ]
    return _listed(call, models, "Models", "ModelName")


@operation
def list_endpoint_configs(call: Call) -> dict:
    configs = [config.summary() for config in call.backend.endpoint_configs.values()]
    return _listed(call, configs, "EndpointConfigs", "EndpointConfigName")


@operation
def list_endpoints(call: Call) -> dict:
    endpoints = [endpoint.summary() for endpoint in call.backend.endpoints.values()]
    return _listed(call, endpoints, "Endpoints", "EndpointName")


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


def _capture_summary(config: dict | None) -> dict | None:
    """DescribeEndpoint's DataCaptureConfigSummary of a config's DataCaptureConfig."""
    if not config:
        return None
    enabled = config.get("EnableCapture", True)
    summary = {
        "EnableCapture": enabled,
        "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": config.get("InitialSamplingPercentage"),
        "DestinationS3Uri": config.get("DestinationS3Uri"),
        "KmsKeyId": config.get("KmsKeyId"),
    }
    return {key: value for key, value in summary.items() if value is not None}


@operation
def describe_endpoint(call: Call) -> dict:
    description = call.backend.describe_endpoint(call.param("EndpointName"))
    capture = _capture_summary(description.pop("DataCaptureConfig", None))
    if capture:
        description["DataCaptureConfig"] = capture
    description.pop("Tags", None)
    return description


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


def _check_alarm_access(call: Call, config: dict, alarms: list[str]) -> None:
    """SageMaker watches the rollback alarms as the models' execution roles (the developer
    guide: the execution role needs cloudwatch:DescribeAlarms on them): under evaluation, each
    role must be allowed to. AWS does not document its refusal; this one is a
    ValidationException naming the role and the alarm."""
    if modes.of(call.scope[0]) == "off":
        return
    for variant in config["ProductionVariants"]:
        model = call.backend._models.get(variant.get("ModelName"))
        role = resources.role_from_arn(getattr(model, "execution_role_arn", None) or "")
        for alarm in alarms:
            resource = f"arn:aws:cloudwatch:{call.scope[1]}:{call.scope[0]}:alarm:{alarm}"
            if role is not None and not role_may(role, "cloudwatch:DescribeAlarms", resource, "alarm"):
                raise ValidationError(
                    f"The execution role {role.arn} of model {variant.get('ModelName')} is not authorized to "
                    f"perform cloudwatch:DescribeAlarms on {resource}, which the AutoRollbackConfiguration names."
                )


@operation
def update_endpoint(call: Call) -> dict:
    endpoint = _endpoint(call)
    if endpoint.endpoint_status in _IN_PROGRESS:
        raise ValidationError(f'Cannot update in-progress endpoint "{endpoint.arn}".')
    config = call.backend.describe_endpoint_config(call.param("EndpointConfigName"))
    try:
        current = call.backend.describe_endpoint_config(endpoint.endpoint_config_name)
    except ValidationError:  # deleted while in use, as AWS allows
        current = None
    deployment = call.param("DeploymentConfig")
    guarded = rollouts.plan(current, config, deployment)
    rollouts.check_scaled_instance_types(call, endpoint, current, config)
    if guarded:
        _check_alarm_access(call, config, guarded.alarms)
    reason = _take_failure(call, endpoint.endpoint_name, "update", config["EndpointConfigName"])
    endpoint.endpoint_status = "Updating"
    endpoint.pending_deployment_summary = _pending_summary(config, utcnow())
    # AWS keeps the DeploymentConfig of an update only as LastDeploymentConfig; the next update
    # without one (and without RetainDeploymentConfig) is all at once again.
    if deployment:
        endpoint.last_deployment_config = deployment

    def finish(due) -> None:
        if not reason:
            endpoint.endpoint_config_name = config["EndpointConfigName"]
            endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
            endpoint.data_capture_config = config.get("DataCaptureConfig")
        # A failed update is rolled back: the old config keeps serving, the reason stays visible.
        endpoint.endpoint_status, endpoint.failure_reason = "InService", reason
        endpoint.pending_deployment_summary, endpoint.last_modified_time = None, due

    if guarded and not reason:
        rollouts.begin(call, endpoint, config, guarded, finish)
    else:
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


# --- moto patches ----------------------------------------------------------------


def _must_exist(kind: str, label: str, attribute: str):
    """Wrap a backend method of one name so an unknown name is AWS's ValidationException."""

    def wrap(original):
        @functools.wraps(original)
        def method(self: SageMakerModelBackend, name: str, *args, **kwargs):
            if name not in getattr(self, attribute):
                arn = arn_formatter(kind, name, self.account_id, self.region_name)
                raise ValidationError(f'Could not find {label} "{arn}".')
            return original(self, name, *args, **kwargs)

        return method

    return wrap


def install() -> None:
    """Patch moto's not-found errors, instance-type check and production-variant check."""
    for method, kind, label, attribute in (
        ("describe_model", "model", "model", "_models"),
        ("delete_model", "model", "model", "_models"),
        ("describe_endpoint_config", "endpoint-config", "endpoint configuration", "endpoint_configs"),
        ("delete_endpoint_config", "endpoint-config", "endpoint configuration", "endpoint_configs"),
        ("describe_endpoint", "endpoint", "endpoint", "endpoints"),
        ("delete_endpoint", "endpoint", "endpoint", "endpoints"),
    ):
        original = getattr(SageMakerModelBackend, method)
        setattr(SageMakerModelBackend, method, _must_exist(kind, label, attribute)(original))
    SageMakerModelBackend.validate_production_variants = _validate_production_variants
    FakeEndpointConfig.validate_instance_type = _validate_instance_type
