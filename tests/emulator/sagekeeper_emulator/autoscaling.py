"""Application Auto Scaling of SageMaker endpoint variants as AWS runs it, where moto falls short.

A variant's scalable target is ServiceNamespace `sagemaker`, ResourceId
`endpoint/<endpoint>/variant/<variant>`, ScalableDimension `sagemaker:variant:DesiredInstanceCount`.
moto stores targets and policies (`applicationautoscaling_backends`); this module answers in its
place where moto differs from AWS:

- RegisterScalableTarget of a SageMaker variant that does not exist (endpoint or variant) is a
  ValidationException; moto registers anything (it checks only ECS services). A new target needs
  MinCapacity and MaxCapacity, and MinCapacity may not exceed MaxCapacity (on an update, with
  the values it keeps) - ValidationException; moto takes a missing or inverted range. Tags apply
  to a new target (an update ignores them; moto has no tags at all). Registering an InService
  variant moves its instance count into [MinCapacity, MaxCapacity], as the API reference says,
  with a scaling activity.
- SageMaker targets use the service-linked role: the first registration in an account creates
  AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint (path
  /aws-service-role/sagemaker.application-autoscaling.amazonaws.com/), which needs the caller's
  iam:CreateServiceLinkedRole (see the operation table); DescribeScalableTargets shows it as
  RoleARN. moto shows whatever RoleARN the request had, or none.
- A target's ARN is `arn:aws:application-autoscaling:<region>:<account>:scalable-target/<id>`
  with a 36-character id derived from the account, region, namespace, resource and dimension (so
  IAM evaluation can name a target before it is registered; AWS's ids are random).
- DeregisterScalableTarget deletes the target's scaling policies (and their alarms) and scheduled
  actions, as AWS does (moto keeps the policies), and an unknown target is
  ObjectNotFoundException (moto: ValidationException); so is DeleteScalingPolicy of an unknown
  policy. PutScalingPolicy on an unregistered target is ObjectNotFoundException (moto accepts it).
- PutScalingPolicy checks a target tracking configuration (TargetValue; exactly one of a
  predefined and a customized metric; for a SageMaker variant a SageMakerVariant* metric type)
  and keeps a policy's ARN and CreationTime when it is updated (moto makes a new ARN). A target
  tracking policy of a variant creates the two alarms AWS creates,
  `TargetTracking-<resource>-AlarmHigh-<uuid>` and `...-AlarmLow-<uuid>` (not with
  DisableScaleIn), on AWS/SageMaker InvocationsPerInstance per EndpointName and VariantName,
  deleted with the policy. They are never evaluated: instance counts change only through the
  control API's scaler (POST /_emulator/scaling, `scale`).
- DescribeScalableTargets and DescribeScalingPolicies filter exactly (moto matches a ResourceId
  as a substring of the one asked for, and ignores PolicyNames) and page by MaxResults (1 to 50,
  default 50; 1 to 10, default 10) and NextToken (moto's second page of targets is wrong).
- TagResource, UntagResource, ListTagsForResource (moto: not implemented) on a target's ARN; an
  unknown ARN is ResourceNotFoundException, more than 50 tags TooManyTagsException, an `aws:` key
  ValidationException.
- DescribeScalingActivities (moto: not implemented) lists what this module did to a variant's
  instance count, newest first.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
import uuid

from moto.applicationautoscaling.exceptions import AWSValidationException
from moto.applicationautoscaling.models import (
    ApplicationAutoscalingBackend,
    FakeApplicationAutoscalingPolicy,
    FakeScalableTarget,
    applicationautoscaling_backends,
)
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse, _build_policy, _build_target
from moto.core.exceptions import JsonRESTError
from moto.iam.models import iam_backends
from moto.sagemaker.models import sagemaker_backends

from . import cloudwatch
from .sagemaker import core as sagemaker_core

LOCK = threading.RLock()
SAGEMAKER = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SERVICE_LINKED_ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
LINKED_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
_VARIANT = re.compile(r"endpoint/([^/]+)/variant/([^/]+)")
# Predefined metrics of a variant: CloudWatch metric name and statistic of their alarms.
_METRICS = {
    "SageMakerVariantInvocationsPerInstance": ("InvocationsPerInstance", "Sum"),
    "SageMakerVariantConcurrentRequestsPerModelHighResolution": ("ConcurrentRequestsPerModel", "Maximum"),
    "SageMakerVariantProvisionedConcurrencyUtilization": ("ServerlessProvisionedConcurrencyUtilization", "Average"),
}

_activities: dict[tuple[str, str], list[dict]] = {}


class ObjectNotFoundException(JsonRESTError):
    def __init__(self, message: str):
        super().__init__("ObjectNotFoundException", message)


class ResourceNotFoundException(JsonRESTError):
    def __init__(self, message: str):
        super().__init__("ResourceNotFoundException", message)


class TooManyTagsException(JsonRESTError):
    def __init__(self, message: str):
        super().__init__("TooManyTagsException", message)


class InvalidNextTokenException(JsonRESTError):
    def __init__(self, message: str):
        super().__init__("InvalidNextTokenException", message)


# --- what other modules use ---------------------------------------------------------


def target_arn(account: str, region: str, namespace: str, resource_id: str, dimension: str) -> str:
    """The ARN a scalable target has (or will have once registered)."""
    digest = hashlib.sha256(f"{account}|{region}|{namespace}|{resource_id}|{dimension}".encode()).hexdigest()[:36]
    return f"arn:aws:application-autoscaling:{region}:{account}:scalable-target/{digest}"


def service_linked_role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/aws-service-role/{LINKED_SERVICE}/{SERVICE_LINKED_ROLE}"


def has_service_linked_role(account: str) -> bool:
    """Whether the account has SageMaker's Application Auto Scaling service-linked role."""
    return SERVICE_LINKED_ROLE in {r.name for r in list(iam_backends[account]["aws"].get_roles())}


def target(account: str, region: str, namespace: str, resource_id: str, dimension: str) -> FakeScalableTarget | None:
    """moto's registered target, or None."""
    try:
        found = _backend(account, region).targets.get(dimension, {}).get(resource_id)
    except KeyError:  # a region moto does not know
        return None
    return found if found is not None and found.service_namespace == namespace else None


def target_of_arn(account: str, region: str, arn: str) -> FakeScalableTarget | None:
    """The registered target with ARN `arn` in the account and region, or None."""
    try:
        targets = _backend(account, region).targets
    except KeyError:
        return None
    return next((t for by_id in list(targets.values()) for t in list(by_id.values()) if t.arn == arn), None)


def tags_of(found: FakeScalableTarget | None) -> dict[str, str]:
    return dict(getattr(found, "tags", None) or {}) if found is not None else {}


def scalable_target(account: str, region: str, resource_id: str) -> dict | None:
    """The registered SageMaker variant target `endpoint/<endpoint>/variant/<variant>`:
    {"MinCapacity", "MaxCapacity", "ScalableTargetARN"}, or None when none is registered."""
    found = target(account, region, SAGEMAKER, resource_id, DIMENSION)
    if found is None:
        return None
    return {"MinCapacity": found.min_capacity, "MaxCapacity": found.max_capacity, "ScalableTargetARN": found.arn}


def scale(account: str, region: str, endpoint_name: str, variant_name: str, count) -> dict:
    """Play the scaler: set a variant's desired and current instance count to `count`, within
    its target's [MinCapacity, MaxCapacity], and record the scaling activity. ValueError: no
    target, or outside the range; LookupError: no such endpoint or variant."""
    if not isinstance(count, int) or isinstance(count, bool):
        raise ValueError("desiredInstanceCount must be an integer")
    resource = f"endpoint/{endpoint_name}/variant/{variant_name}"
    with sagemaker_core.LOCK, LOCK:
        found = scalable_target(account, region, resource)
        if found is None:
            raise ValueError(f"no scalable target is registered for {resource}")
        low, high = found["MinCapacity"], found["MaxCapacity"]
        if not low <= count <= high:
            raise ValueError(f"desiredInstanceCount {count} is outside [{low}, {high}], the capacity range of {resource}")
        variant = _variant(account, region, endpoint_name, variant_name)
        if variant is None:
            raise LookupError(f"endpoint {endpoint_name} has no variant {variant_name}")
        previous = variant.get("CurrentInstanceCount")
        _set_count(account, region, resource, variant, count, "a scaling request through the emulator's control API")
    return {
        "endpointName": endpoint_name,
        "variantName": variant_name,
        "desiredInstanceCount": count,
        "previousInstanceCount": previous,
    }


def reset() -> None:
    """Forget the scaling activities (moto's reset forgets targets and policies)."""
    with LOCK:
        _activities.clear()


# --- SageMaker variants -------------------------------------------------------------------


def _backend(account: str, region: str) -> ApplicationAutoscalingBackend:
    return applicationautoscaling_backends[account][region]


def _variant(account: str, region: str, endpoint_name: str, variant_name: str) -> dict | None:
    """The variant entry of moto's endpoint (its status settled to now), or None. Call with
    the SageMaker lock held."""
    sagemaker_core.timeline.settle((account, region))
    endpoint = sagemaker_backends[account][region].endpoints.get(endpoint_name)
    if endpoint is None:
        return None
    return next((v for v in endpoint.production_variants if v.get("VariantName") == variant_name), None)


def _check_variant(account: str, region: str, resource_id: str) -> dict:
    match = _VARIANT.fullmatch(resource_id or "")
    if match is None:
        raise AWSValidationException(f"Unsupported resource ID {resource_id}: a SageMaker variant is endpoint/<endpoint>/variant/<variant>.")
    endpoint_name, variant_name = match.groups()
    variant = _variant(account, region, endpoint_name, variant_name)
    if sagemaker_backends[account][region].endpoints.get(endpoint_name) is None:
        raise AWSValidationException(f'Could not find endpoint "{endpoint_name}" for resource ID {resource_id}.')
    if variant is None:
        raise AWSValidationException(f'Could not find variant "{variant_name}" of endpoint "{endpoint_name}".')
    return variant


def _set_count(account: str, region: str, resource: str, variant: dict, count: int, cause: str) -> None:
    variant["DesiredInstanceCount"] = variant["CurrentInstanceCount"] = count
    now = time.time()
    _activities.setdefault((account, region), []).append(
        {
            "ActivityId": str(uuid.uuid4()),
            "ServiceNamespace": SAGEMAKER,
            "ResourceId": resource,
            "ScalableDimension": DIMENSION,
            "Description": f"Setting desired instance count to {count}.",
            "Cause": cause,
            "StartTime": now,
            "EndTime": now,
            "StatusCode": "Successful",
            "StatusMessage": f"Successfully set desired instance count to {count}. Change successfully fulfilled by sagemaker.",
        }
    )


def _clamp(account: str, region: str, resource: str, low: int, high: int) -> None:
    """Move an InService variant's instance count into [low, high] (RegisterScalableTarget)."""
    endpoint_name, variant_name = _VARIANT.fullmatch(resource).groups()
    endpoint = sagemaker_backends[account][region].endpoints.get(endpoint_name)
    variant = _variant(account, region, endpoint_name, variant_name)
    if endpoint is None or variant is None or endpoint.endpoint_status != "InService":
        return
    current = variant.get("DesiredInstanceCount")
    if current is None or low <= current <= high:
        return
    count, bound = (low, "minimum") if current < low else (high, "maximum")
    _set_count(account, region, resource, variant, count, f"{bound} capacity was set to {count}")


def _ensure_service_linked_role(account: str) -> None:
    if has_service_linked_role(account):
        return
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": [LINKED_SERVICE]}, "Action": "sts:AssumeRole"}],
    }
    iam_backends[account]["aws"].create_role(
        SERVICE_LINKED_ROLE,
        json.dumps(trust),
        f"/aws-service-role/{LINKED_SERVICE}/",
        permissions_boundary=None,
        description="Allows Application Auto Scaling to scale SageMaker endpoint variants.",
        tags=[],
        max_session_duration="3600",
        linked_service=LINKED_SERVICE,
    )


# --- validation and paging --------------------------------------------------------------


def _validate_tags(tags: dict, current: dict | None = None) -> None:
    if not isinstance(tags, dict):
        raise AWSValidationException("Tags must be a map of tag keys to values.")
    if any(str(k).lower().startswith("aws:") for k in tags):
        raise AWSValidationException("Tag keys starting with 'aws:' are reserved for AWS use.")
    if len({**(current or {}), **tags}) > 50:
        raise TooManyTagsException("A scalable target can have at most 50 tags.")


def _page(items: list, response: ApplicationAutoScalingResponse, default: int, maximum: int) -> tuple[list, str | None]:
    size = response._get_param("MaxResults")
    if size is None:
        size = default
    if not isinstance(size, int) or not 1 <= size <= maximum:
        raise AWSValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value between 1 and {maximum}"
        )
    token = response._get_param("NextToken")
    try:
        start = int(token) if token is not None else 0
    except ValueError:
        raise InvalidNextTokenException("Invalid token") from None
    if start < 0 or start > len(items):
        raise InvalidNextTokenException("Invalid token")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _compact(value: dict) -> dict:
    return {k: v for k, v in value.items() if v is not None}


def _validate_target_tracking(config: dict | None, namespace: str) -> dict:
    if not isinstance(config, dict):
        raise AWSValidationException("TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy.")
    if not isinstance(config.get("TargetValue"), (int, float)) or isinstance(config.get("TargetValue"), bool):
        raise AWSValidationException("TargetTrackingScalingPolicyConfiguration.TargetValue is required.")
    predefined, customized = config.get("PredefinedMetricSpecification"), config.get("CustomizedMetricSpecification")
    if (predefined is None) == (customized is None):
        raise AWSValidationException("Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification must be specified.")
    if predefined is not None:
        kind = predefined.get("PredefinedMetricType")
        if namespace == SAGEMAKER and not str(kind).startswith("SageMakerVariant"):
            raise AWSValidationException(f"Unsupported metric type {kind} for a SageMaker endpoint variant.")
    for cooldown in ("ScaleInCooldown", "ScaleOutCooldown"):
        if config.get(cooldown) is not None and config[cooldown] < 0:
            raise AWSValidationException(f"{cooldown} must be at least 0.")
    return config


def _target_tracking_alarms(account: str, region: str, policy, config: dict) -> list:
    """The alarms AWS creates for a variant's target tracking policy."""
    endpoint_name, variant_name = _VARIANT.fullmatch(policy.resource_id).groups()
    predefined = config.get("PredefinedMetricSpecification")
    if predefined is not None:
        metric_name, statistic = _METRICS.get(predefined.get("PredefinedMetricType"), ("InvocationsPerInstance", "Sum"))
        metric = {
            "Namespace": "AWS/SageMaker",
            "MetricName": metric_name,
            "Statistic": statistic,
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant_name}],
        }
    else:
        customized = config["CustomizedMetricSpecification"]
        if not customized.get("MetricName"):
            return []  # a metric-math customized metric: AWS's alarm for it is not emulated
        metric = {
            "Namespace": customized.get("Namespace"),
            "MetricName": customized["MetricName"],
            "Statistic": customized.get("Statistic") or "Average",
            "Dimensions": customized.get("Dimensions") or [],
        }
        if customized.get("Unit"):
            metric["Unit"] = customized["Unit"]
    target_value = float(config["TargetValue"])
    shapes = [("AlarmHigh", "GreaterThanThreshold", target_value, 3)]
    if not config.get("DisableScaleIn"):
        shapes.append(("AlarmLow", "LessThanThreshold", target_value * 0.9, 15))
    alarms = []
    for suffix, comparison, threshold, periods in shapes:
        request = {
            "AlarmName": f"TargetTracking-{policy.resource_id}-{suffix}-{uuid.uuid4()}",
            "AlarmDescription": f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy.policy_arn}.",
            "AlarmActions": [policy.policy_arn],
            "Period": 60,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            **metric,
        }
        alarms.append(cloudwatch.put_alarm(account, region, request))
    return alarms


def _drop_policy(account: str, region: str, key: str) -> None:
    policy = _backend(account, region).policies.pop(key, None)
    if policy is not None:
        cloudwatch.delete_alarms(account, region, [a.name for a in policy.alarms])


# --- moto handlers --------------------------------------------------------------------


def _scope(response: ApplicationAutoScalingResponse) -> tuple[str, str]:
    return response.current_account, response.region


def _key(response: ApplicationAutoScalingResponse) -> tuple[str, str, str]:
    return (response._get_param("ServiceNamespace"), response._get_param("ResourceId"), response._get_param("ScalableDimension"))


def _locked(handler):
    """Run a handler under the SageMaker lock (endpoints are read and changed) and ours."""

    @functools.wraps(handler)
    def method(self: ApplicationAutoScalingResponse) -> str:
        with sagemaker_core.LOCK, LOCK:
            return handler(self)

    return method


@_locked
def register_scalable_target(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    account, region = _scope(self)
    namespace, resource_id, dimension = _key(self)
    minimum, maximum = self._get_int_param("MinCapacity"), self._get_int_param("MaxCapacity")
    tags = self._get_param("Tags") or {}
    if namespace == SAGEMAKER:
        _check_variant(account, region, resource_id)
    existing = target(account, region, namespace, resource_id, dimension)
    if existing is None and (minimum is None or maximum is None):
        raise AWSValidationException("MinCapacity and MaxCapacity are required to register a new scalable target.")
    low = minimum if minimum is not None else existing.min_capacity
    high = maximum if maximum is not None else existing.max_capacity
    if low < 0 or high < 0:
        raise AWSValidationException("MinCapacity and MaxCapacity must be at least 0.")
    if low > high:
        raise AWSValidationException(f"Minimum capacity ({low}) cannot be greater than maximum capacity ({high}).")
    if existing is None:
        _validate_tags(tags)
    role = self._get_param("RoleARN")
    if namespace == SAGEMAKER:
        _ensure_service_linked_role(account)
        role = service_linked_role_arn(account)
    found = self.applicationautoscaling_backend.register_scalable_target(
        namespace, resource_id, dimension, min_capacity=minimum, max_capacity=maximum,
        role_arn=role, suspended_state=self._get_param("SuspendedState"),
    )  # fmt: skip
    if existing is None:
        found.arn = target_arn(account, region, namespace, resource_id, dimension)
        found.tags = dict(tags)
        found.role_arn = role
    if namespace == SAGEMAKER and dimension == DIMENSION:
        _clamp(account, region, resource_id, low, high)
    return json.dumps({"ScalableTargetARN": found.arn})


def describe_scalable_targets(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    namespace, dimension = self._get_param("ServiceNamespace"), self._get_param("ScalableDimension")
    resource_ids = self._get_param("ResourceIds") or []
    with LOCK:
        found = self.applicationautoscaling_backend.describe_scalable_targets(namespace, resource_ids, dimension)
        page, token = _page(found, self, 50, 50)
        targets = []
        for item in page:
            described = _compact(_build_target(item))
            described.setdefault(
                "SuspendedState",
                {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False, "ScheduledScalingSuspended": False},
            )
            targets.append(described)
    return json.dumps(_compact({"ScalableTargets": targets, "NextToken": token}))


@_locked
def deregister_scalable_target(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    account, region = _scope(self)
    namespace, resource_id, dimension = _key(self)
    if target(account, region, namespace, resource_id, dimension) is None:
        raise ObjectNotFoundException(
            f"No scalable target found for service namespace: {namespace}, resource ID: {resource_id}, scalable dimension: {dimension}"
        )
    backend = self.applicationautoscaling_backend
    for key, policy in list(backend.policies.items()):
        if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (namespace, resource_id, dimension):
            _drop_policy(account, region, key)
    backend.scheduled_actions = [
        a for a in backend.scheduled_actions if (a.service_namespace, a.resource_id, a.scalable_dimension) != (namespace, resource_id, dimension)
    ]
    del backend.targets[dimension][resource_id]
    return json.dumps({})


@_locked
def put_scaling_policy(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    account, region = _scope(self)
    namespace, resource_id, dimension = _key(self)
    name = self._get_param("PolicyName")
    if target(account, region, namespace, resource_id, dimension) is None:
        raise ObjectNotFoundException(
            f"No scalable target registered for service namespace: {namespace}, resource ID: {resource_id}, scalable dimension: {dimension}"
        )
    backend = self.applicationautoscaling_backend
    key = FakeApplicationAutoscalingPolicy.formulate_key(namespace, resource_id, dimension, name)
    existing = backend.policies.get(key)
    kind = self._get_param("PolicyType") or (existing.policy_type if existing else None)
    if kind is None:
        raise AWSValidationException("PolicyType is required to create a scaling policy.")
    body = self._get_param("StepScalingPolicyConfiguration" if kind == "StepScaling" else "TargetTrackingScalingPolicyConfiguration")
    if body is None and existing is not None and existing.policy_type == kind:
        body = existing._policy_body
    if kind == "TargetTrackingScaling":
        _validate_target_tracking(body, namespace)
    elif kind == "StepScaling" and not isinstance(body, dict):
        raise AWSValidationException("StepScalingPolicyConfiguration is required for a StepScaling policy.")
    if existing is not None:
        _drop_policy(account, region, key)
    policy = backend.put_scaling_policy(name, namespace, resource_id, dimension, body, kind)
    if existing is not None:
        policy.policy_arn, policy.creation_time = existing.policy_arn, existing.creation_time
    if kind == "TargetTrackingScaling" and namespace == SAGEMAKER and _VARIANT.fullmatch(resource_id or ""):
        policy.alarms = _target_tracking_alarms(account, region, policy, body)
    return json.dumps({"PolicyARN": policy.policy_arn, "Alarms": [{"AlarmName": a.name, "AlarmARN": a.alarm_arn} for a in policy.alarms]})


def describe_scaling_policies(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    namespace, resource_id, dimension = _key(self)
    names = self._get_param("PolicyNames") or []
    with LOCK:
        found = [
            p
            for p in self.applicationautoscaling_backend.policies.values()
            if p.service_namespace == namespace
            and (resource_id is None or p.resource_id == resource_id)
            and (dimension is None or p.scalable_dimension == dimension)
            and (not names or p.policy_name in names)
        ]
        found.sort(key=lambda p: p.creation_time)
        page, token = _page(found, self, 10, 10)
        policies = [_compact(_build_policy(p)) for p in page]
    return json.dumps(_compact({"ScalingPolicies": policies, "NextToken": token}))


@_locked
def delete_scaling_policy(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    namespace, resource_id, dimension = _key(self)
    name = self._get_param("PolicyName")
    key = FakeApplicationAutoscalingPolicy.formulate_key(namespace, resource_id, dimension, name)
    if key not in self.applicationautoscaling_backend.policies:
        raise ObjectNotFoundException(
            f"No scaling policy found for service namespace: {namespace}, resource ID: {resource_id}, "
            f"scalable dimension: {dimension}, policy name: {name}"
        )
    _drop_policy(*_scope(self), key)
    return json.dumps({})


def describe_scaling_activities(self: ApplicationAutoScalingResponse) -> str:
    self._validate_params()
    namespace, resource_id, dimension = _key(self)
    with LOCK:
        found = [
            a
            for a in reversed(_activities.get(_scope(self), []))
            if a["ServiceNamespace"] == namespace
            and (resource_id is None or a["ResourceId"] == resource_id)
            and (dimension is None or a["ScalableDimension"] == dimension)
        ]
        page, token = _page(found, self, 50, 50)
    return json.dumps(_compact({"ScalingActivities": page, "NextToken": token}))


def _target_of_request(response: ApplicationAutoScalingResponse) -> FakeScalableTarget:
    arn = response._get_param("ResourceARN") or ""
    found = target_of_arn(*_scope(response), arn)
    if found is None:
        raise ResourceNotFoundException(f"No scalable target found for ARN {arn}")
    return found


def tag_resource(self: ApplicationAutoScalingResponse) -> str:
    with LOCK:
        found = _target_of_request(self)
        tags = self._get_param("Tags") or {}
        _validate_tags(tags, tags_of(found))
        found.tags = {**tags_of(found), **tags}
    return json.dumps({})


def untag_resource(self: ApplicationAutoScalingResponse) -> str:
    with LOCK:
        found = _target_of_request(self)
        keys = set(self._get_param("TagKeys") or [])
        found.tags = {k: v for k, v in tags_of(found).items() if k not in keys}
    return json.dumps({})


def list_tags_for_resource(self: ApplicationAutoScalingResponse) -> str:
    with LOCK:
        return json.dumps({"Tags": tags_of(_target_of_request(self))})


def install() -> None:
    """Patch moto's Application Auto Scaling handlers and add the missing ones."""
    for handler in (
        register_scalable_target,
        describe_scalable_targets,
        deregister_scalable_target,
        put_scaling_policy,
        describe_scaling_policies,
        delete_scaling_policy,
        describe_scaling_activities,
        tag_resource,
        untag_resource,
        list_tags_for_resource,
    ):
        setattr(ApplicationAutoScalingResponse, handler.__name__, handler)
