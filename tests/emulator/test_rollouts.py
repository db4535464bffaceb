"""UpdateEndpoint with a DeploymentConfig: traffic shifted in steps with baking periods, rollback
when an alarm of the AutoRollbackConfiguration fires, validation as the API reference and the
developer guide state it."""

import pytest
from botocore.exceptions import ClientError

from conftest import Account, wait_for


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def make_config(sagemaker, account, name: str, instances: int, instance_type: str = "ml.m5.large", variant: str = "main"):
    sagemaker.create_model(
        ModelName=f"model-{name}",
        ExecutionRoleArn=f"arn:aws:iam::{account.id}:role/exec",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": variant, "ModelName": f"model-{name}", "InstanceType": instance_type, "InitialInstanceCount": instances}
        ],
    )


@pytest.fixture
def hosting(account):
    """Endpoint "ep" InService on v1 (4 instances); configs v2 (4 instances) and v3 (another
    variant name); alarm "errors" (OK); updates provision for 0.5 s."""
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1", 4)
    make_config(sagemaker, account, "v2", 4)
    make_config(sagemaker, account, "v3", 4, variant="other")
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="v1")
    account.client("cloudwatch").put_metric_alarm(
        AlarmName="errors", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "main"}],
    )
    account.configure(endpointUpdatingSeconds=0.5)
    return sagemaker


def guardrails(kind: str = "CANARY", wait: int = 1, termination: int = 1, **routing) -> dict:
    routing = {"Type": kind, "WaitIntervalInSeconds": wait, **routing}
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": termination,
            "MaximumExecutionTimeoutInSeconds": 600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]},
    }


def deployments(emulator, account) -> list[dict]:
    return emulator.get(f"/_emulator/endpoint-deployments?account={account.id}&endpointName=ep")["deployments"]


def endpoint(sagemaker) -> dict:
    return sagemaker.describe_endpoint(EndpointName="ep")


def test_a_canary_shifts_its_share_bakes_then_shifts_the_rest_and_waits_before_terminating(hosting, account, emulator):
    config = guardrails(CanarySize={"Type": "CAPACITY_PERCENT", "Value": 25})
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    assert endpoint(hosting)["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"] == "Creating"
    baking = wait_for(lambda: endpoint(hosting)["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"], "Baking")
    assert baking == "Baking"
    variant = endpoint(hosting)["PendingDeploymentSummary"]["ProductionVariants"][0]
    assert (variant["CurrentWeight"], variant["DesiredWeight"]) == (0.25, 1.0), "one of four instances: a quarter"
    assert endpoint(hosting)["EndpointConfigName"] == "v1", "the old config serves while baking"

    assert wait_for(lambda: endpoint(hosting)["EndpointStatus"], "InService", timeout=10) == "InService"
    described = endpoint(hosting)
    assert described["EndpointConfigName"] == "v2" and "FailureReason" not in described
    assert described["LastDeploymentConfig"] == config
    [record] = deployments(emulator, account)
    assert record["outcome"] == "Succeeded" and record["strategy"] == "CANARY"
    assert [(s["trafficPercent"], s["status"]) for s in record["steps"]] == [(25, "Baking"), (100, "Baking"), (100, "Deleting")]


def test_linear_steps_shift_the_configured_share_each(hosting, account, emulator):
    config = guardrails("LINEAR", wait=0, termination=0, LinearStepSize={"Type": "INSTANCE_COUNT", "Value": 2})
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    assert wait_for(lambda: endpoint(hosting)["EndpointConfigName"], "v2", timeout=10) == "v2"
    [record] = deployments(emulator, account)
    assert [s["trafficPercent"] for s in record["steps"] if s["status"] == "Baking"] == [50, 100]


def test_an_alarm_in_alarm_while_baking_rolls_the_update_back_and_its_history_names_it(hosting, account, emulator):
    config = guardrails(wait=2, CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    wait_for(lambda: endpoint(hosting)["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"], "Baking")
    cloudwatch = account.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="5XX above 5")
    assert wait_for(lambda: endpoint(hosting)["EndpointStatus"], "RollingBack", timeout=5) == "RollingBack"
    assert wait_for(lambda: endpoint(hosting)["EndpointStatus"], "InService", timeout=5) == "InService"
    described = endpoint(hosting)
    assert described["EndpointConfigName"] == "v1", "the old config serves again"
    assert "AutoRollbackConfiguration" in described["FailureReason"] and "errors" not in described["FailureReason"]
    [record] = deployments(emulator, account)
    assert (record["outcome"], record["alarmsInAlarm"]) == ("RolledBack", ["errors"])
    assert [s["trafficPercent"] for s in record["steps"]] == [25, 0], "rolled back during the canary's bake"
    history = cloudwatch.describe_alarm_history(AlarmName="errors", HistoryItemType="StateUpdate")
    assert history["AlarmHistoryItems"], "the alarm's history says it fired"


def test_an_alarm_during_the_termination_wait_still_rolls_back(hosting, account, emulator):
    config = guardrails("ALL_AT_ONCE", wait=0, termination=2)
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    status = lambda: endpoint(hosting)["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"]
    assert wait_for(status, "Deleting") == "Deleting"
    account.client("cloudwatch").set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="x")
    assert wait_for(lambda: endpoint(hosting)["EndpointStatus"], "InService", timeout=6) == "InService"
    assert endpoint(hosting)["EndpointConfigName"] == "v1"
    assert deployments(emulator, account)[0]["outcome"] == "RolledBack"


def test_an_alarm_not_named_changes_nothing(hosting, account, emulator):
    cloudwatch = account.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="unrelated", Namespace="AWS/SageMaker", MetricName="ModelLatency", ExtendedStatistic="p99",
        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName="unrelated", StateValue="ALARM", StateReason="x")
    config = guardrails(wait=0, termination=0, CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    assert wait_for(lambda: endpoint(hosting)["EndpointConfigName"], "v2", timeout=5) == "v2"


def test_without_a_deployment_config_the_next_update_is_all_at_once_again(hosting, account, emulator):
    config = guardrails(wait=0, termination=0, CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    assert wait_for(lambda: endpoint(hosting)["EndpointConfigName"], "v2", timeout=5) == "v2"
    hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v1")
    assert wait_for(lambda: endpoint(hosting)["EndpointConfigName"], "v1", timeout=5) == "v1"
    assert len(deployments(emulator, account)) == 1, "only the guarded update is a rollout"


def test_inf1_falls_back_to_all_at_once(account, emulator):
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "i1", 2, "ml.inf1.xlarge")
    make_config(sagemaker, account, "i2", 2, "ml.inf1.xlarge")
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="i1")
    config = guardrails(wait=0, termination=0, CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="i2", DeploymentConfig=config)
    assert wait_for(lambda: endpoint(sagemaker)["EndpointConfigName"], "i2", timeout=5) == "i2"
    [record] = deployments(emulator, account)
    assert record["strategy"] == "ALL_AT_ONCE"
    assert [s["trafficPercent"] for s in record["steps"] if s["status"] == "Baking"] == [100]


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"WaitIntervalInSeconds": 3601}, "WaitIntervalInSeconds must be between 0 and 3600"),
        ({"CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 75}}, "CanarySize must be at most 50%"),
        ({"CanarySize": None}, "CanarySize is required"),
        ({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 75}}, "LinearStepSize must be 10% to 50%"),
        ({"Type": "LINEAR"}, "LinearStepSize is required"),
    ],
)
def test_traffic_routing_outside_what_aws_allows_is_refused(hosting, change, expected):
    config = guardrails(CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    routing.update(change)
    routing = {k: v for k, v in routing.items() if v is not None}
    config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] = routing
    code, message = error_of(lambda: hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config))
    assert code == "ValidationException" and expected in message, message
    assert endpoint(hosting)["EndpointStatus"] == "InService", "nothing started"


def test_a_timeout_not_above_the_waits_and_another_variant_name_are_refused(hosting):
    config = guardrails(wait=500, termination=200, CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    code, message = error_of(lambda: hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config))
    assert code == "ValidationException" and "MaximumExecutionTimeoutInSeconds must be larger" in message
    config = guardrails(CanarySize={"Type": "INSTANCE_COUNT", "Value": 1})
    code, message = error_of(lambda: hosting.update_endpoint(EndpointName="ep", EndpointConfigName="v3", DeploymentConfig=config))
    assert code == "ValidationException" and "same variant names" in message


def test_under_evaluation_the_models_role_must_be_allowed_to_describe_the_rollback_alarms(emulator):
    """The developer guide: the execution role needs cloudwatch:DescribeAlarms on the alarms."""
    plain = emulator.new_account()
    created = emulator.post("/_emulator/credentials", {"account": plain.id, "admin": True})
    keys = {"aws_access_key_id": created["accessKeyId"], "aws_secret_access_key": created["secretAccessKey"]}
    account = Account(emulator, plain.id, keys, created["arn"])  # exempt from evaluation, as a test's setup
    iam = account.client("iam")
    trust = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
    iam.create_role(RoleName="exec", AssumeRolePolicyDocument=trust)
    sagemaker = account.client("sagemaker")
    make_config(sagemaker, account, "v1", 2)
    make_config(sagemaker, account, "v2", 2)
    sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="v1")
    account.client("cloudwatch").put_metric_alarm(
        AlarmName="errors", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
    )
    emulator.post("/_emulator/iam", {"mode": "enforce", "accounts": [account.id]})
    config = guardrails("ALL_AT_ONCE", wait=0, termination=0)
    code, message = error_of(lambda: sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config))
    assert code == "ValidationException" and "cloudwatch:DescribeAlarms" in message and ":alarm:errors" in message
    policy = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": "arn:aws:cloudwatch:us-east-1:%s:alarm:errors"}]}' % account.id
    iam.put_role_policy(RoleName="exec", PolicyName="alarms", PolicyDocument=policy)
    sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="v2", DeploymentConfig=config)
    assert wait_for(lambda: endpoint(sagemaker)["EndpointConfigName"], "v2", timeout=5) == "v2"
