"""Application Auto Scaling of SageMaker endpoint variants as AWS runs it (the extension in
`autoscaling.py`): scalable targets and target tracking policies as the controller will register
them, AWS's validation, the control API's scaler, and IAM evaluation of the service-linked role
AWS creates on the first registration (`authorization/table/autoscaling.py`)."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import RETRIES_OFF
from test_authorization import World, allow
from test_endpoints import make_config

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
RESOURCE = "endpoint/ep/variant/main"
ROLE = "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
LINKED_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
TRACKING = {
    "TargetValue": 70.0,
    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
    "ScaleInCooldown": 300,
    "ScaleOutCooldown": 60,
}


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def endpoint(account, name: str = "ep", instances: int = 1) -> None:
    """Endpoint `name` InService with one variant "main" of `instances` instances."""
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, f"{name}-config", instances=instances)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def variant(account, name: str = "ep") -> dict:
    return account.client("sagemaker").describe_endpoint(EndpointName=name)["ProductionVariants"][0]


def register(scaling, resource: str = RESOURCE, **extra) -> str:
    values = {"MinCapacity": 1, "MaxCapacity": 4, **extra}
    return scaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=DIMENSION, **values
    )["ScalableTargetARN"]


def targets(scaling, **filters) -> list[dict]:
    return scaling.describe_scalable_targets(ServiceNamespace="sagemaker", **filters)["ScalableTargets"]


def track(scaling, name: str = "invocations", resource: str = RESOURCE, **config) -> dict:
    return scaling.put_scaling_policy(
        PolicyName=name,
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={**TRACKING, **config},
    )


def policies(scaling, **filters) -> list[dict]:
    return scaling.describe_scaling_policies(ServiceNamespace="sagemaker", **filters)["ScalingPolicies"]


@pytest.fixture
def scaling(account):
    endpoint(account)
    return account.client("application-autoscaling")


# --- scalable targets ------------------------------------------------------------------------------


def test_a_variants_target_round_trips_with_the_service_linked_role_and_its_tags(scaling, account):
    arn = register(scaling, MinCapacity=1, MaxCapacity=4, Tags={"sagekeeper.io/owner-uid": "uid-1"})
    assert arn.startswith(f"arn:aws:application-autoscaling:us-east-1:{account.id}:scalable-target/")
    assert len(arn.rsplit("/", 1)[1]) == 36
    (found,) = targets(scaling, ResourceIds=[RESOURCE], ScalableDimension=DIMENSION)
    role = f"arn:aws:iam::{account.id}:role/aws-service-role/{LINKED_SERVICE}/{ROLE}"
    assert (found["ResourceId"], found["ScalableDimension"], found["ScalableTargetARN"]) == (RESOURCE, DIMENSION, arn)
    assert (found["MinCapacity"], found["MaxCapacity"], found["RoleARN"]) == (1, 4, role)
    assert found["SuspendedState"] == {
        "DynamicScalingInSuspended": False,
        "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }
    assert scaling.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"sagekeeper.io/owner-uid": "uid-1"}
    assert account.client("iam").get_role(RoleName=ROLE)["Role"]["Arn"] == role


def test_registering_again_updates_the_range_keeps_the_arn_and_ignores_tags(scaling):
    arn = register(scaling, MinCapacity=1, MaxCapacity=4, Tags={"a": "1"})
    assert register(scaling, MinCapacity=2, MaxCapacity=4, Tags={"b": "2"}) == arn
    assert scaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION, MaxCapacity=6
    )["ScalableTargetARN"] == arn
    (found,) = targets(scaling)
    assert (found["MinCapacity"], found["MaxCapacity"]) == (2, 6)
    assert scaling.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"a": "1"}


def test_a_minimum_above_the_maximum_is_a_validation_exception(scaling):
    code, message = error_of(lambda: register(scaling, MinCapacity=5, MaxCapacity=2))
    assert code == "ValidationException" and "greater than maximum" in message
    assert targets(scaling) == []
    register(scaling, MinCapacity=1, MaxCapacity=4)
    updating = lambda: scaling.register_scalable_target(  # noqa: E731
        ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION, MinCapacity=5
    )
    assert error_of(updating)[0] == "ValidationException"
    assert (targets(scaling)[0]["MinCapacity"], targets(scaling)[0]["MaxCapacity"]) == (1, 4)


@pytest.mark.parametrize(
    "resource, fragment",
    [
        ("endpoint/ep/variant/missing", 'variant "missing"'),
        ("endpoint/missing/variant/main", 'endpoint "missing"'),
        ("endpoint/ep/main", "Unsupported"),
    ],
    ids=["unknown-variant", "unknown-endpoint", "malformed"],
)
def test_a_variant_that_does_not_exist_is_a_validation_exception(scaling, resource, fragment):
    code, message = error_of(lambda: register(scaling, resource))
    assert code == "ValidationException" and fragment in message, message
    assert targets(scaling) == []


def test_a_new_target_needs_both_capacities(scaling):
    missing_max = lambda: scaling.register_scalable_target(  # noqa: E731
        ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION, MinCapacity=1
    )
    assert error_of(missing_max)[0] == "ValidationException"
    assert targets(scaling) == []


def test_registering_moves_an_inservice_variants_count_into_the_range(scaling, account):
    assert variant(account)["CurrentInstanceCount"] == 1
    register(scaling, MinCapacity=2, MaxCapacity=4)
    assert (variant(account)["DesiredInstanceCount"], variant(account)["CurrentInstanceCount"]) == (2, 2)
    (activity,) = scaling.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RESOURCE)["ScalingActivities"]
    assert (activity["Description"], activity["Cause"], activity["StatusCode"]) == (
        "Setting desired instance count to 2.",
        "minimum capacity was set to 2",
        "Successful",
    )


def test_describe_scalable_targets_pages(account):
    for name in ("ep-a", "ep-b", "ep-c"):
        endpoint(account, name)
    scaling = account.client("application-autoscaling")
    for name in ("ep-a", "ep-b", "ep-c"):
        register(scaling, f"endpoint/{name}/variant/main")
    first = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", MaxResults=2)
    rest = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", MaxResults=2, NextToken=first["NextToken"])
    resources = [t["ResourceId"] for t in first["ScalableTargets"] + rest["ScalableTargets"]]
    assert sorted(resources) == [f"endpoint/{n}/variant/main" for n in ("ep-a", "ep-b", "ep-c")] and "NextToken" not in rest
    assert [t["ResourceId"] for t in targets(scaling, ResourceIds=["endpoint/ep-b/variant/main"])] == ["endpoint/ep-b/variant/main"]


# --- scaling policies -------------------------------------------------------------------------------


def test_a_target_tracking_policy_round_trips_with_the_alarms_aws_creates(scaling, account):
    register(scaling)
    created = track(scaling)
    assert created["PolicyARN"].startswith(f"arn:aws:autoscaling:us-east-1:{account.id}:scalingPolicy:")
    assert created["PolicyARN"].endswith(f":resource/sagemaker/{RESOURCE}:policyName/invocations")
    (policy,) = policies(scaling, ResourceId=RESOURCE, ScalableDimension=DIMENSION, PolicyNames=["invocations"])
    assert (policy["PolicyName"], policy["PolicyType"], policy["PolicyARN"]) == ("invocations", "TargetTrackingScaling", created["PolicyARN"])
    assert policy["TargetTrackingScalingPolicyConfiguration"] == TRACKING
    names = sorted(a["AlarmName"] for a in created["Alarms"])
    assert [n.split("-Alarm")[0] for n in names] == [f"TargetTracking-{RESOURCE}"] * 2
    alarms = account.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"TargetTracking-{RESOURCE}")["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == names
    high = next(a for a in alarms if "-AlarmHigh-" in a["AlarmName"])
    assert (high["Namespace"], high["MetricName"], high["Threshold"]) == ("AWS/SageMaker", "InvocationsPerInstance", 70.0)
    assert high["Dimensions"] == [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "main"}]
    assert high["AlarmActions"] == [created["PolicyARN"]]
    assert policies(scaling, PolicyNames=["other"]) == []
    assert policies(scaling, ResourceId="endpoint/ep/variant/mai") == []


def test_updating_a_policy_keeps_its_arn(scaling):
    register(scaling)
    arn = track(scaling)["PolicyARN"]
    assert track(scaling, TargetValue=100.0, DisableScaleIn=True)["PolicyARN"] == arn
    (policy,) = policies(scaling)
    assert policy["PolicyARN"] == arn and policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 100.0
    assert [a["AlarmName"].split("-Alarm")[1][:4] for a in policy["Alarms"]] == ["High"]  # no scale-in alarm


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"TargetValue": None}, "TargetValue"),
        ({"PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}, "Unsupported metric type"),
        ({"CustomizedMetricSpecification": {"MetricName": "m", "Namespace": "n", "Statistic": "Average"}}, "Exactly one of"),
    ],
    ids=["no-target-value", "foreign-metric", "two-metrics"],
)
def test_a_bad_target_tracking_configuration_is_a_validation_exception(scaling, account, config, fragment):
    register(scaling)
    body = {k: v for k, v in {**TRACKING, **config}.items() if v is not None}
    # Sent as the Rust SDK would send it: without botocore's check of required members.
    unchecked = boto3.Session(region_name="us-east-1").client(
        "application-autoscaling",
        endpoint_url=account.emulator.url,
        config=RETRIES_OFF.merge(Config(parameter_validation=False)),
        **account.credentials,
    )
    put = lambda: unchecked.put_scaling_policy(  # noqa: E731
        PolicyName="p", ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=body,
    )  # fmt: skip
    code, message = error_of(put)
    assert code == "ValidationException" and fragment in message, message
    assert policies(scaling) == []


def test_missing_targets_and_policies_are_object_not_found(scaling):
    assert error_of(lambda: track(scaling))[0] == "ObjectNotFoundException"
    deregister = lambda: scaling.deregister_scalable_target(  # noqa: E731
        ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION
    )
    assert error_of(deregister)[0] == "ObjectNotFoundException"
    register(scaling)
    delete = lambda: scaling.delete_scaling_policy(  # noqa: E731
        PolicyName="missing", ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION
    )
    assert error_of(delete)[0] == "ObjectNotFoundException"


def test_deleting_a_policy_deletes_its_alarms(scaling, account):
    register(scaling)
    track(scaling)
    scaling.delete_scaling_policy(PolicyName="invocations", ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION)
    assert policies(scaling) == []
    assert account.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_deregistering_a_target_removes_its_policies_and_their_alarms(scaling, account):
    arn = register(scaling)
    track(scaling)
    track(scaling, name="second", TargetValue=50.0)
    assert len(policies(scaling)) == 2
    scaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION)
    assert targets(scaling) == [] and policies(scaling) == []
    assert account.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert error_of(lambda: scaling.list_tags_for_resource(ResourceARN=arn))[0] == "ResourceNotFoundException"
    register(scaling)  # a new registration starts without policies
    assert policies(scaling) == []


# --- the scaler ---------------------------------------------------------------------------------------


def scale(emulator, account, count, expect: int = 200, **extra) -> dict:
    body = {"account": account.id, "endpointName": "ep", "variantName": "main", "desiredInstanceCount": count, **extra}
    return emulator.post("/_emulator/scaling", body, expect=expect)


def test_the_scaler_sets_the_variants_count_within_the_range_and_records_the_activity(scaling, account, emulator):
    register(scaling, MinCapacity=1, MaxCapacity=4)
    assert scale(emulator, account, 3) == {
        "endpointName": "ep",
        "variantName": "main",
        "desiredInstanceCount": 3,
        "previousInstanceCount": 1,
    }
    assert (variant(account)["DesiredInstanceCount"], variant(account)["CurrentInstanceCount"]) == (3, 3)
    assert scale(emulator, account, 4)["previousInstanceCount"] == 3
    activities = scaling.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RESOURCE)["ScalingActivities"]
    assert [a["Description"] for a in activities] == ["Setting desired instance count to 4.", "Setting desired instance count to 3."]
    assert {a["ScalableDimension"] for a in activities} == {DIMENSION}
    assert activities[0]["StartTime"] >= activities[1]["StartTime"]


def test_the_scaler_refuses_outside_the_range_and_without_a_target(scaling, account, emulator):
    assert "no scalable target" in scale(emulator, account, 2, expect=400)["error"]
    register(scaling, MinCapacity=2, MaxCapacity=4)
    for count in (1, 5):
        assert "outside [2, 4]" in scale(emulator, account, count, expect=400)["error"]
    scale(emulator, account, "3", expect=400)
    assert variant(account)["CurrentInstanceCount"] == 2
    assert scale(emulator, account, 3, region="eu-west-1", expect=400)["error"].startswith("no scalable target")


def test_the_python_function_reads_a_registered_target():
    """scalable_target, which the SageMaker update logic uses (a variant with a target keeps its
    instance type)."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    from sagekeeper_emulator import autoscaling

    account, region = "210987654322", "us-east-1"
    assert autoscaling.scalable_target(account, region, RESOURCE) is None
    applicationautoscaling_backends[account][region].register_scalable_target("sagemaker", RESOURCE, DIMENSION, 1, 3, None, None)
    found = autoscaling.scalable_target(account, region, RESOURCE)
    assert (found["MinCapacity"], found["MaxCapacity"]) == (1, 3)


def test_a_scaled_variant_may_not_change_its_instance_type_in_an_update(scaling, account):
    """SageMaker's side of a registered target (sagemaker/rollouts.py reads scalable_target)."""
    sagemaker = account.client("sagemaker")
    sagemaker.create_endpoint_config(
        EndpointConfigName="bigger",
        ProductionVariants=[{"VariantName": "main", "ModelName": "model-ep-config", "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}],
    )
    register(scaling)
    code, message = error_of(lambda: sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="bigger"))
    assert code == "ValidationException" and RESOURCE in message
    scaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION)
    sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="bigger")


# --- tags ----------------------------------------------------------------------------------------------


def test_tags_of_a_target_round_trip_and_are_checked(scaling, account):
    arn = register(scaling)
    scaling.tag_resource(ResourceARN=arn, Tags={"team": "ml", "owner": "uid-1"})
    scaling.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert scaling.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"owner": "uid-1"}
    missing = arn[:-4] + "0000"
    assert error_of(lambda: scaling.list_tags_for_resource(ResourceARN=missing))[0] == "ResourceNotFoundException"
    assert error_of(lambda: scaling.tag_resource(ResourceARN=missing, Tags={"a": "b"}))[0] == "ResourceNotFoundException"
    assert error_of(lambda: scaling.tag_resource(ResourceARN=arn, Tags={"aws:x": "b"}))[0] == "ValidationException"
    many = {f"k{i}": "v" for i in range(50)}
    assert error_of(lambda: scaling.tag_resource(ResourceARN=arn, Tags=many))[0] == "TooManyTagsException"


# --- IAM ------------------------------------------------------------------------------------------------


def test_the_first_registration_needs_create_service_linked_role_under_enforce(emulator):
    world = World(emulator)
    endpoint(world.admin)
    register_only = allow(["application-autoscaling:RegisterScalableTarget", *SCALES_ENDPOINTS])
    scaling = world.session("register-only", register_only).client("application-autoscaling")
    code, message = error_of(lambda: register(scaling))
    assert code == "AccessDeniedException" and "iam:CreateServiceLinkedRole" in message and f"role/aws-service-role/{LINKED_SERVICE}/{ROLE}" in message
    iam = world.admin.client("iam")
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]] == []

    other_service = allow("iam:CreateServiceLinkedRole", Condition={"StringEquals": {"iam:AWSServiceName": "ecs.application-autoscaling.amazonaws.com"}})
    wrong = world.session("other-service", register_only, other_service).client("application-autoscaling")
    assert error_of(lambda: register(wrong))[0] == "AccessDeniedException"

    linked = allow("iam:CreateServiceLinkedRole", Condition={"StringEquals": {"iam:AWSServiceName": LINKED_SERVICE}})
    register(world.session("may-link", register_only, linked).client("application-autoscaling"))
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]] == [ROLE]
    # Once the role exists, registering needs no IAM permission for it.
    register(scaling, MinCapacity=1, MaxCapacity=3)
    assert world.admin.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]["MaxCapacity"] == 3


def test_registering_with_tags_needs_tag_resource_and_the_target_tags_scope_later_calls(emulator):
    world = World(emulator)
    endpoint(world.admin)
    register(world.admin.client("application-autoscaling"), "endpoint/ep/variant/main", MinCapacity=1, MaxCapacity=2)  # the role now exists
    world.admin.client("application-autoscaling").deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION
    )
    owner = {"StringEquals": {"aws:ResourceTag/owner": "uid-1"}}
    statements = [
        allow("application-autoscaling:RegisterScalableTarget", Condition={"StringEquals": {"aws:RequestTag/owner": "uid-1"}}),
        allow(["application-autoscaling:PutScalingPolicy", "application-autoscaling:DeregisterScalableTarget"], Condition=owner),
        allow([*SCALES_ENDPOINTS, *TRACKING_ALARMS]),
    ]
    scaling = world.session("tagged", *statements).client("application-autoscaling")
    code, message = error_of(lambda: register(scaling, Tags={"owner": "uid-1"}))
    assert code == "AccessDeniedException" and "application-autoscaling:TagResource" in message
    tagging = allow("application-autoscaling:TagResource", Condition={"StringEquals": {"aws:RequestTag/owner": "uid-1"}})
    scaling = world.session("tagged-and-tagging", *statements, tagging).client("application-autoscaling")
    register(scaling, Tags={"owner": "uid-1"})
    track(scaling)
    scaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE, ScalableDimension=DIMENSION)
    register(world.admin.client("application-autoscaling"), Tags={"owner": "uid-2"})
    assert error_of(lambda: track(scaling))[0] == "AccessDeniedException"


# What registering a variant and tracking a target make Application Auto Scaling check of the caller.
SCALES_ENDPOINTS = ["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"]
TRACKING_ALARMS = ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]


def test_the_caller_must_be_allowed_what_scaling_does_to_the_endpoint_and_its_alarms(emulator):
    world = World(emulator)
    endpoint(world.admin)
    register(world.admin.client("application-autoscaling"), "endpoint/ep/variant/main", MinCapacity=1, MaxCapacity=2)  # the role now exists
    scaling_only = allow("application-autoscaling:*")
    code, message = error_of(lambda: register(world.session("scaling-only", scaling_only).client("application-autoscaling")))
    assert code == "AccessDeniedException" and "sagemaker:DescribeEndpoint" in message and ":endpoint/ep" in message
    other_endpoint = allow(SCALES_ENDPOINTS, f"arn:aws:sagemaker:us-east-1:{world.id}:endpoint/other")
    wrong = world.session("other-endpoint", scaling_only, other_endpoint).client("application-autoscaling")
    assert error_of(lambda: register(wrong))[0] == "AccessDeniedException"
    scales = world.session("scales", scaling_only, allow(SCALES_ENDPOINTS)).client("application-autoscaling")
    register(scales)
    code, message = error_of(lambda: track(scales))
    alarms = f"arn:aws:cloudwatch:us-east-1:{world.id}:alarm:TargetTracking-{RESOURCE}-*"
    assert code == "AccessDeniedException" and "cloudwatch:PutMetricAlarm" in message and alarms in message
    narrow = allow(TRACKING_ALARMS, f"arn:aws:cloudwatch:us-east-1:{world.id}:alarm:TargetTracking-endpoint/*")
    track(world.session("tracks", scaling_only, allow(SCALES_ENDPOINTS), narrow).client("application-autoscaling"))


def test_the_describe_operations_take_no_resource(emulator):
    world = World(emulator)
    endpoint(world.admin)
    register(world.admin.client("application-autoscaling"))
    arn = f"arn:aws:application-autoscaling:us-east-1:{world.id}:scalable-target/*"
    scoped = world.session("scoped", allow("application-autoscaling:DescribeScalableTargets", arn))
    assert error_of(lambda: targets(scoped.client("application-autoscaling")))[0] == "AccessDeniedException"
    anywhere = world.session("anywhere", allow("application-autoscaling:Describe*"))
    assert len(targets(anywhere.client("application-autoscaling"))) == 1
