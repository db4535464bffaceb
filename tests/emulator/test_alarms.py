"""CloudWatch alarms as AWS keeps them (the extension in `cloudwatch.py`), spoken in the Smithy
RPC v2 CBOR protocol the Rust SDK uses (`rpcv2.py`) as well as boto3's JSON, the control API's
state changes and their history, and IAM evaluation of alarms (`authorization/table/cloudwatch.py`).

The round trips are what the controller will send: a p99 ModelLatency alarm and an
Invocation5XXErrors Sum alarm of an endpoint variant, tagged with its owner.
"""

from __future__ import annotations

import json

import boto3
import botocore.serialize
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from conftest import RETRIES_OFF
from test_authorization import World, allow

from sagekeeper_emulator import rpcv2

OWNER = "sagekeeper.io/owner-uid"
DIMENSIONS = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def cbor_client(account):
    """A cloudwatch client that speaks Smithy RPC v2 CBOR (botocore's own serializer and parser
    for it), as the Rust SDK does; boto3 would pick the JSON protocol."""
    client = boto3.Session(region_name="us-east-1").client(
        "cloudwatch", endpoint_url=account.emulator.url, config=RETRIES_OFF, **account.credentials
    )
    client.meta.service_model.__dict__["resolved_protocol"] = "smithy-rpc-v2-cbor"
    client._serializer = botocore.serialize.create_serializer("smithy-rpc-v2-cbor", include_validation=True)
    return client


@pytest.fixture(params=["json", "cbor"])
def cloudwatch(request, account):
    return account.client("cloudwatch") if request.param == "json" else cbor_client(account)


def latency_alarm(cloudwatch, name: str = "ep-latency", **extra) -> None:
    cloudwatch.put_metric_alarm(
        **{
            "AlarmName": name,
            "AlarmDescription": "p99 model latency of ep",
            "Namespace": "AWS/SageMaker",
            "MetricName": "ModelLatency",
            "ExtendedStatistic": "p99",
            "Dimensions": DIMENSIONS,
            "Period": 60,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "Threshold": 250000,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            **extra,
        }
    )


def errors_alarm(cloudwatch, name: str = "ep-5xx", **extra) -> None:
    cloudwatch.put_metric_alarm(
        **{
            "AlarmName": name,
            "Namespace": "AWS/SageMaker",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Dimensions": DIMENSIONS,
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 5,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            **extra,
        }
    )


def described(cloudwatch, name: str) -> dict:
    alarms = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert len(alarms) == 1, alarms
    return alarms[0]


def history(cloudwatch, name: str, **filters) -> list[dict]:
    return cloudwatch.describe_alarm_history(AlarmName=name, **filters)["AlarmHistoryItems"]


# --- the wire protocol -------------------------------------------------------------------------


def test_cloudwatchs_sdks_prefer_rpc_v2_cbor_which_the_rust_sdk_speaks():
    """The service model lists CBOR first; every SDK that implements it (the Rust SDK's
    generated CloudWatch client serializes with aws_smithy_cbor) sends CBOR, not JSON or query."""
    model = boto3.Session().client("cloudwatch", region_name="us-east-1").meta.service_model
    assert model.metadata["protocols"][0] == "smithy-rpc-v2-cbor"
    assert model.metadata["targetPrefix"] == "GraniteServiceVersion20100801"


def raw_cbor(account, operation: str, body: bytes) -> requests.Response:
    """A signed RPC v2 CBOR request as smithy-rs builds it."""
    url = f"{account.emulator.url}/service/GraniteServiceVersion20100801/operation/{operation}"
    headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor"}
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    keys = account.credentials
    SigV4Auth(Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"]), "monitoring", "us-east-1").add_auth(request)
    return requests.post(url, data=body, headers=dict(request.headers.items()))


def indefinite_map(entries: dict) -> bytes:
    """A CBOR map of indefinite length, as smithy-rs's encoder writes a structure."""
    inner = rpcv2.encode(entries)[1:]  # drop the definite-length head of a small map
    return b"\xbf" + inner + b"\xff"


def test_a_cbor_request_as_smithy_rs_writes_it_gets_cbor_with_tagged_timestamps_and_doubles(account):
    errors_alarm(account.client("cloudwatch"))
    response = raw_cbor(account, "DescribeAlarms", indefinite_map({"AlarmNames": ["ep-5xx"]}))
    assert response.status_code == 200, response.content
    assert response.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert response.headers["Content-Type"] == "application/cbor"
    alarm = rpcv2.decode(response.content)["MetricAlarms"][0]
    assert alarm["AlarmName"] == "ep-5xx"
    # smithy-rs decodes a double only from a CBOR float and a timestamp only as tag 1 over one.
    assert type(alarm["Threshold"]) is float and alarm["Threshold"] == 5.0
    assert isinstance(alarm["StateUpdatedTimestamp"], rpcv2.Timestamp)
    assert type(alarm["Period"]) is int and type(alarm["ActionsEnabled"]) is bool
    # An operation without output answers an empty body.
    deleted = raw_cbor(account, "DeleteAlarms", indefinite_map({"AlarmNames": ["ep-5xx"]}))
    assert (deleted.status_code, deleted.content) == (200, b"")
    assert account.operations("monitoring") == ["PutMetricAlarm", "DescribeAlarms", "DeleteAlarms"]


def test_a_cbor_error_carries_its_type_and_the_query_error_code(account):
    response = raw_cbor(account, "DescribeAlarms", indefinite_map({"MaxRecords": 0}))
    assert response.status_code == 400
    assert response.headers["x-amzn-query-error"] == "ValidationError;Sender"
    error = rpcv2.decode(response.content)
    assert error["__type"].startswith("com.amazonaws.cloudwatch#") and "maxRecords" in error["message"]


def test_a_body_that_is_not_cbor_is_a_serialization_exception(account):
    response = raw_cbor(account, "DescribeAlarms", b"\xbf\x61")  # a map cut off inside its first key
    assert response.status_code == 400
    assert rpcv2.decode(response.content)["__type"].endswith("#SerializationException")


def test_a_gzip_body_is_inflated_and_a_fault_answers_in_cbor(account, emulator):
    import gzip

    errors_alarm(account.client("cloudwatch"))
    url = f"{emulator.url}/service/GraniteServiceVersion20100801/operation/DescribeAlarms"
    compressed = gzip.compress(indefinite_map({"AlarmNames": ["ep-5xx"]}))
    headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Content-Encoding": "gzip"}
    request = AWSRequest(method="POST", url=url, data=compressed, headers=headers)
    keys = account.credentials
    SigV4Auth(Credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"]), "monitoring", "us-east-1").add_auth(request)
    response = requests.post(url, data=compressed, headers=dict(request.headers.items()))
    assert [a["AlarmName"] for a in rpcv2.decode(response.content)["MetricAlarms"]] == ["ep-5xx"]
    emulator.post("/_emulator/faults", {"operation": "DescribeAlarms", "account": account.id, "code": "Throttling", "count": 1})
    assert error_of(lambda: cbor_client(account).describe_alarms())[0] == "Throttling"
    assert [c["status"] for c in account.calls("monitoring")][-2:] == [200, 400]


def test_the_codec_reads_indefinite_strings_half_floats_and_negative_numbers():
    data = bytes.fromhex("bf" "616b" "7f6261626163ff" "6168" "f93e00" "616e" "3863" "6174" "c1fb41d0000000000000" "ff")
    assert rpcv2.decode(data) == {"k": "abc", "h": 1.5, "n": -100, "t": 1073741824.0}
    assert rpcv2.to_json(rpcv2.decode(data))["t"] == 1073741824.0
    with pytest.raises(rpcv2.CborError):
        rpcv2.decode(b"\xa1\x61")


# --- round trips ---------------------------------------------------------------------------------


def test_a_p99_latency_alarm_round_trips_without_a_statistic(cloudwatch, account):
    latency_alarm(cloudwatch, Tags=[{"Key": OWNER, "Value": "uid-1"}])
    alarm = described(cloudwatch, "ep-latency")
    assert alarm["ExtendedStatistic"] == "p99" and "Statistic" not in alarm
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]) == ("AWS/SageMaker", "ModelLatency", DIMENSIONS)
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (60, 3, 2)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (250000.0, "GreaterThanThreshold")
    assert (alarm["TreatMissingData"], alarm["AlarmDescription"]) == ("notBreaching", "p99 model latency of ep")
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:{account.id}:alarm:ep-latency"
    # As the API reference says, a new alarm is INSUFFICIENT_DATA until evaluated.
    assert (alarm["StateValue"], alarm["StateReason"]) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
    assert alarm["StateTransitionedTimestamp"] == alarm["StateUpdatedTimestamp"]
    assert cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"] == [{"Key": OWNER, "Value": "uid-1"}]


def test_a_5xx_alarm_round_trips_with_its_sum_statistic(cloudwatch):
    errors_alarm(cloudwatch, AlarmActions=["arn:aws:sns:us-east-1:123456789012:alerts"])
    alarm = described(cloudwatch, "ep-5xx")
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Dimensions"]) == ("Invocation5XXErrors", "Sum", DIMENSIONS)
    assert "ExtendedStatistic" not in alarm
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (5.0, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:alerts"] and alarm["ActionsEnabled"] is True


def test_a_metric_math_alarm_keeps_its_queries_as_given(cloudwatch):
    def stat(name: str) -> dict:
        metric = {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": DIMENSIONS}
        return {"Metric": metric, "Period": 60, "Stat": "Sum"}

    metrics = [
        {"Id": "rate", "Expression": "100 * errors / invocations", "Label": "5XX rate", "ReturnData": True},
        {"Id": "errors", "MetricStat": stat("Invocation5XXErrors"), "ReturnData": False, "AccountId": "123456789012"},
        {"Id": "invocations", "MetricStat": stat("Invocations"), "ReturnData": False},
    ]
    cloudwatch.put_metric_alarm(
        AlarmName="ep-5xx-rate", Metrics=metrics, EvaluationPeriods=2, Threshold=1.5, ComparisonOperator="GreaterThanThreshold"
    )
    alarm = described(cloudwatch, "ep-5xx-rate")
    assert alarm["Metrics"] == metrics
    assert "MetricName" not in alarm and "Statistic" not in alarm


def test_an_update_keeps_the_state_history_and_tags_and_ignores_its_tags(cloudwatch, account, emulator):
    errors_alarm(cloudwatch, Tags=[{"Key": OWNER, "Value": "uid-1"}])
    emulator.post("/_emulator/alarms", {"account": account.id, "alarmName": "ep-5xx", "state": "ALARM", "reason": "5XX"})
    errors_alarm(cloudwatch, Threshold=10, Tags=[{"Key": OWNER, "Value": "uid-2"}])
    alarm = described(cloudwatch, "ep-5xx")
    assert (alarm["Threshold"], alarm["StateValue"], alarm["StateReason"]) == (10.0, "ALARM", "5XX")
    assert cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"] == [{"Key": OWNER, "Value": "uid-1"}]
    summaries = [item["HistorySummary"] for item in history(cloudwatch, "ep-5xx", ScanBy="TimestampAscending")]
    assert summaries == ['Alarm "ep-5xx" created', "Alarm updated from INSUFFICIENT_DATA to ALARM", 'Alarm "ep-5xx" updated']


# --- validation -----------------------------------------------------------------------------------


BASE = {"AlarmName": "a", "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 1.0}
METRIC = {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Period": 60}
QUERY = {"Id": "m", "MetricStat": {"Metric": {"Namespace": "n", "MetricName": "m"}, "Period": 60, "Stat": "Sum"}}


@pytest.mark.parametrize(
    "request_, fragment",
    [
        ({**BASE, **METRIC, "Statistic": "Sum", "ExtendedStatistic": "p99"}, "Exactly one of Statistic and ExtendedStatistic"),
        ({**BASE, **METRIC}, "Exactly one of Statistic and ExtendedStatistic"),
        ({**{k: v for k, v in BASE.items() if k != "Threshold"}, **METRIC, "Statistic": "Sum"}, "Threshold"),
        ({**BASE, **METRIC, "ExtendedStatistic": "p101"}, "ExtendedStatistic"),
        ({**BASE, **METRIC, "Statistic": "Sum", "Period": 45}, "Period"),
        ({**BASE, **METRIC, "Statistic": "Sum", "DatapointsToAlarm": 2}, "DatapointsToAlarm"),
        ({**BASE, "Metrics": [QUERY], "Statistic": "Sum"}, "Statistic should not be set if list of Metrics is set"),
        ({**BASE, "Metrics": [QUERY, {**QUERY, "Id": "n"}]}, "Exactly one element of the metrics list should return data"),
        ({**BASE}, "Either MetricName or Metrics"),
        ({**BASE, **METRIC, "Statistic": "Sum", "TreatMissingData": "sometimes"}, "TreatMissingData"),
    ],
    ids=["both-statistics", "no-statistic", "no-threshold", "bad-percentile", "bad-period", "datapoints", "statistic-with-metrics", "two-returning", "no-metric", "missing-data"],
)
def test_what_aws_refuses_is_a_validation_error_and_creates_nothing(account, request_, fragment):
    cloudwatch = account.client("cloudwatch")
    code, message = error_of(lambda: cloudwatch.put_metric_alarm(**request_))
    assert code == "ValidationError" and fragment in message, message
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_awss_statistic_forms_and_an_anomaly_threshold_are_accepted(account):
    cloudwatch = account.client("cloudwatch")
    for index, extended in enumerate(["p99", "p99.9", "tm90", "IQM", "PR(100:2000)", "TM(10%:90%)"]):
        cloudwatch.put_metric_alarm(**{**BASE, **METRIC, "AlarmName": f"a{index}", "ExtendedStatistic": extended})
    band = {"Id": "band", "Expression": "ANOMALY_DETECTION_BAND(m, 2)", "ReturnData": True}
    no_threshold = {k: v for k, v in BASE.items() if k != "Threshold"}
    cloudwatch.put_metric_alarm(
        **{**no_threshold, "AlarmName": "anomaly", "ComparisonOperator": "GreaterThanUpperThreshold"},
        Metrics=[{**QUERY, "ReturnData": False}, band],
        ThresholdMetricId="band",
    )
    assert len(cloudwatch.describe_alarms()["MetricAlarms"]) == 7


# --- listing --------------------------------------------------------------------------------------


def test_describe_alarms_by_prefix_pages_in_name_order(cloudwatch):
    for name in ("sk-d", "sk-b", "other", "sk-a", "sk-e", "sk-c"):
        errors_alarm(cloudwatch, name=name)
    pages, token = [], None
    while True:
        page = cloudwatch.describe_alarms(AlarmNamePrefix="sk-", MaxRecords=2, **({"NextToken": token} if token else {}))
        pages.append([a["AlarmName"] for a in page["MetricAlarms"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [["sk-a", "sk-b"], ["sk-c", "sk-d"], ["sk-e"]]
    paginated = cloudwatch.get_paginator("describe_alarms").paginate(PaginationConfig={"PageSize": 4})
    assert [a["AlarmName"] for p in paginated for a in p["MetricAlarms"]] == ["other", "sk-a", "sk-b", "sk-c", "sk-d", "sk-e"]


def test_describe_alarms_refuses_a_foreign_token_and_records_outside_1_to_100(account):
    cloudwatch = account.client("cloudwatch")
    assert error_of(lambda: cloudwatch.describe_alarms(NextToken="not-ours"))[0] == "InvalidNextToken"
    assert error_of(lambda: cloudwatch.describe_alarms(MaxRecords=101))[0] == "ValidationError"


def test_describe_alarms_combines_names_state_and_actions(account, emulator):
    cloudwatch = account.client("cloudwatch")
    topic = "arn:aws:sns:us-east-1:123456789012:pager"
    for name in ("x-1", "x-2", "y-1"):
        errors_alarm(cloudwatch, name=name, OKActions=[topic] if name != "x-2" else [])
    emulator.post("/_emulator/alarms", {"account": account.id, "alarmName": "x-1", "state": "ALARM"})
    emulator.post("/_emulator/alarms", {"account": account.id, "alarmName": "y-1", "state": "ALARM"})
    names = lambda **filters: [a["AlarmName"] for a in cloudwatch.describe_alarms(**filters)["MetricAlarms"]]  # noqa: E731
    assert names(AlarmNamePrefix="x-", StateValue="ALARM") == ["x-1"]
    assert names(AlarmNames=["x-1", "x-2", "missing"]) == ["x-1", "x-2"]
    assert names(ActionPrefix="arn:aws:sns:us-east-1:123456789012:pa", StateValue="ALARM") == ["x-1", "y-1"]
    assert names(AlarmTypes=["CompositeAlarm"]) == []
    code = error_of(lambda: cloudwatch.describe_alarms(AlarmNames=["x-1"], AlarmNamePrefix="x-"))[0]
    assert code == "InvalidParameterCombination"


# --- state and history ------------------------------------------------------------------------------


def test_a_control_api_state_change_is_in_the_history_newest_first(cloudwatch, account, emulator):
    latency_alarm(cloudwatch)
    fired = emulator.post(
        "/_emulator/alarms", {"account": account.id, "alarmName": "ep-latency", "state": "ALARM", "reason": "p99 above 250 ms"}
    )
    assert fired == {"alarmName": "ep-latency", "state": "ALARM", "previousState": "INSUFFICIENT_DATA"}
    cleared = emulator.post("/_emulator/alarms", {"account": account.id, "alarmName": "ep-latency", "state": "OK", "reason": "back"})
    assert cleared["previousState"] == "ALARM"
    items = history(cloudwatch, "ep-latency", HistoryItemType="StateUpdate", ScanBy="TimestampDescending")
    assert [i["HistorySummary"] for i in items] == ["Alarm updated from ALARM to OK", "Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert {i["AlarmType"] for i in items} == {"MetricAlarm"} and items[0]["Timestamp"] >= items[1]["Timestamp"]
    data = json.loads(items[1]["HistoryData"])
    assert data["oldState"] == {"stateValue": "INSUFFICIENT_DATA", "stateReason": "Unchecked: Initial alarm creation"}
    assert data["newState"] == {"stateValue": "ALARM", "stateReason": "p99 above 250 ms"}
    alarm = described(cloudwatch, "ep-latency")
    assert (alarm["StateValue"], alarm["StateReason"]) == ("OK", "back")
    assert alarm["StateTransitionedTimestamp"] == alarm["StateUpdatedTimestamp"] >= items[0]["Timestamp"]


def test_the_history_pages_and_filters_by_type(account, emulator):
    cloudwatch = account.client("cloudwatch")
    errors_alarm(cloudwatch)
    for state in ("ALARM", "OK", "ALARM"):
        emulator.post("/_emulator/alarms", {"account": account.id, "alarmName": "ep-5xx", "state": state})
    first = cloudwatch.describe_alarm_history(AlarmName="ep-5xx", MaxRecords=2)
    rest = cloudwatch.describe_alarm_history(AlarmName="ep-5xx", MaxRecords=2, NextToken=first["NextToken"])
    summaries = [i["HistorySummary"] for i in first["AlarmHistoryItems"] + rest["AlarmHistoryItems"]]
    assert summaries == [
        "Alarm updated from OK to ALARM",
        "Alarm updated from ALARM to OK",
        "Alarm updated from INSUFFICIENT_DATA to ALARM",
        'Alarm "ep-5xx" created',
    ]
    assert "NextToken" not in rest
    configuration = history(cloudwatch, "ep-5xx", HistoryItemType="ConfigurationUpdate")
    assert [i["HistorySummary"] for i in configuration] == ['Alarm "ep-5xx" created']


def test_set_alarm_state_records_a_transition_and_the_same_state_records_none(cloudwatch):
    errors_alarm(cloudwatch)
    cloudwatch.set_alarm_state(AlarmName="ep-5xx", StateValue="ALARM", StateReason="test", StateReasonData='{"k": 1}')
    cloudwatch.set_alarm_state(AlarmName="ep-5xx", StateValue="ALARM", StateReason="still")
    items = history(cloudwatch, "ep-5xx", HistoryItemType="StateUpdate")
    assert [i["HistorySummary"] for i in items] == ["Alarm updated from INSUFFICIENT_DATA to ALARM"]
    assert json.loads(items[0]["HistoryData"])["newState"]["stateReasonData"] == {"k": 1}
    assert described(cloudwatch, "ep-5xx")["StateReason"] == "still"
    assert error_of(lambda: cloudwatch.set_alarm_state(AlarmName="missing", StateValue="OK", StateReason="x"))[0] == "ResourceNotFound"


def test_the_control_api_refuses_an_unknown_alarm_and_an_unknown_state(account, emulator):
    errors_alarm(account.client("cloudwatch"))
    body = {"account": account.id, "alarmName": "missing", "state": "ALARM"}
    assert "missing" in emulator.post("/_emulator/alarms", body, expect=404)["error"]
    emulator.post("/_emulator/alarms", {**body, "alarmName": "ep-5xx", "state": "FIRING"}, expect=400)
    emulator.post("/_emulator/alarms", {**body, "alarmName": "ep-5xx", "region": "eu-west-1"}, expect=404)


def test_the_python_functions_read_and_set_an_alarms_state():
    """alarm_state / set_alarm_state, which the SageMaker rollout logic and the control API use."""
    from sagekeeper_emulator import cloudwatch

    account, region = "210987654321", "us-east-1"
    assert cloudwatch.alarm_state(account, region, "py") is None
    request = {**BASE, **METRIC, "AlarmName": "py", "Statistic": "Sum"}
    cloudwatch.put_alarm(account, region, request)
    assert cloudwatch.alarm_state(account, region, "py") == "INSUFFICIENT_DATA"
    assert cloudwatch.set_alarm_state(account, region, "py", "ALARM", "test") == "INSUFFICIENT_DATA"
    assert cloudwatch.alarm_state(account, region, "py") == "ALARM"
    with pytest.raises(LookupError):
        cloudwatch.set_alarm_state(account, region, "missing", "OK", "test")
    with pytest.raises(ValueError):
        cloudwatch.set_alarm_state(account, region, "py", "FIRING", "test")


def test_a_deleted_alarm_keeps_its_history_and_loses_its_tags(cloudwatch, account):
    errors_alarm(cloudwatch, Tags=[{"Key": OWNER, "Value": "uid-1"}])
    cloudwatch.delete_alarms(AlarmNames=["ep-5xx", "never-existed"])
    assert cloudwatch.describe_alarms(AlarmNames=["ep-5xx"])["MetricAlarms"] == []
    assert history(cloudwatch, "ep-5xx", ScanBy="TimestampDescending")[0]["HistorySummary"] == 'Alarm "ep-5xx" deleted'
    errors_alarm(cloudwatch)
    arn = f"arn:aws:cloudwatch:us-east-1:{account.id}:alarm:ep-5xx"
    assert cloudwatch.list_tags_for_resource(ResourceARN=arn)["Tags"] == []


def test_tags_of_an_alarm_round_trip_and_an_unknown_alarm_is_not_found(cloudwatch, account):
    errors_alarm(cloudwatch)
    arn = f"arn:aws:cloudwatch:us-east-1:{account.id}:alarm:ep-5xx"
    cloudwatch.untag_resource(ResourceARN=arn, TagKeys=["none-yet"])
    cloudwatch.tag_resource(ResourceARN=arn, Tags=[{"Key": OWNER, "Value": "uid-1"}, {"Key": "team", "Value": "ml"}])
    cloudwatch.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert cloudwatch.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": OWNER, "Value": "uid-1"}]
    missing = arn.replace("ep-5xx", "missing")
    for call in (
        lambda: cloudwatch.list_tags_for_resource(ResourceARN=missing),
        lambda: cloudwatch.tag_resource(ResourceARN=missing, Tags=[{"Key": "a", "Value": "b"}]),
        lambda: cloudwatch.untag_resource(ResourceARN=missing, TagKeys=["a"]),
        lambda: cloudwatch.list_tags_for_resource(ResourceARN=arn.replace(account.id, "999999999999")),
    ):
        assert error_of(call)[0] == "ResourceNotFoundException"


# --- IAM ----------------------------------------------------------------------------------------------


def owned(world: World, uid: str = "uid-1") -> dict:
    """Statements of a role allowed only on alarms tagged with its owner uid."""
    mine = {"StringEquals": {f"aws:ResourceTag/{OWNER}": uid}}
    tagging = {"StringEquals": {f"aws:RequestTag/{OWNER}": uid}, "ForAllValues:StringEquals": {"aws:TagKeys": [OWNER]}}
    return [
        allow(["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory", "cloudwatch:DeleteAlarms"], Condition=mine),
        allow(["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"], Condition=tagging),
    ]


@pytest.mark.parametrize("protocol", ["json", "cbor"])
def test_a_role_scoped_to_its_owner_tag_reaches_only_its_alarms(emulator, protocol):
    world = World(emulator)
    admin = world.admin.client("cloudwatch")
    errors_alarm(admin, name="mine", Tags=[{"Key": OWNER, "Value": "uid-1"}])
    errors_alarm(admin, name="theirs", Tags=[{"Key": OWNER, "Value": "uid-2"}])
    errors_alarm(admin, name="untagged")
    session = world.session("owner", *owned(world))
    cloudwatch = session.client("cloudwatch") if protocol == "json" else cbor_client(session)
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=["mine"])["MetricAlarms"]] == ["mine"]
    assert history(cloudwatch, "mine")
    for name in ("theirs", "untagged"):
        code, message = error_of(lambda: cloudwatch.describe_alarms(AlarmNames=[name]))
        assert code == "AccessDenied" and f":alarm:{name}" in message
        assert error_of(lambda: cloudwatch.delete_alarms(AlarmNames=[name]))[0] == "AccessDenied"
    assert error_of(lambda: cloudwatch.delete_alarms(AlarmNames=["mine", "theirs"]))[0] == "AccessDenied"
    cloudwatch.delete_alarms(AlarmNames=["mine"])
    assert [a["AlarmName"] for a in admin.describe_alarms()["MetricAlarms"]] == ["theirs", "untagged"]


def test_the_role_may_create_only_with_its_owner_tag(emulator):
    world = World(emulator)
    cloudwatch = world.session("owner", *owned(world)).client("cloudwatch")
    code, message = error_of(lambda: errors_alarm(cloudwatch, name="bare"))
    assert code == "AccessDenied" and "cloudwatch:PutMetricAlarm" in message
    code, _ = error_of(lambda: errors_alarm(cloudwatch, name="stolen", Tags=[{"Key": OWNER, "Value": "uid-2"}]))
    assert code == "AccessDenied"
    errors_alarm(cloudwatch, name="mine", Tags=[{"Key": OWNER, "Value": "uid-1"}])
    admin = world.admin.client("cloudwatch")
    assert [a["AlarmName"] for a in admin.describe_alarms()["MetricAlarms"]] == ["mine"]


def test_creating_with_tags_needs_the_tagging_permission_but_updating_does_not(emulator):
    world = World(emulator)
    tagged = {"StringEquals": {f"aws:RequestTag/{OWNER}": "uid-1"}}
    cloudwatch = world.session("no-tagging", allow("cloudwatch:PutMetricAlarm", Condition=tagged)).client("cloudwatch")
    code, message = error_of(lambda: errors_alarm(cloudwatch, Tags=[{"Key": OWNER, "Value": "uid-1"}]))
    assert code == "AccessDenied" and "cloudwatch:TagResource" in message
    errors_alarm(world.admin.client("cloudwatch"), Tags=[{"Key": OWNER, "Value": "uid-1"}])
    errors_alarm(cloudwatch, Threshold=7, Tags=[{"Key": OWNER, "Value": "uid-1"}])  # an update: its Tags are ignored
    assert described(world.admin.client("cloudwatch"), "ep-5xx")["Threshold"] == 7.0


def test_a_listing_by_prefix_is_authorized_on_the_alarms_it_may_return(emulator):
    world = World(emulator)
    arn = f"arn:aws:cloudwatch:us-east-1:{world.id}:alarm:sagekeeper-*"
    cloudwatch = world.session("prefix", allow("cloudwatch:DescribeAlarms", arn)).client("cloudwatch")
    errors_alarm(world.admin.client("cloudwatch"), name="sagekeeper-ep-5xx")
    listed = cloudwatch.describe_alarms(AlarmNamePrefix="sagekeeper-ep")["MetricAlarms"]
    assert [a["AlarmName"] for a in listed] == ["sagekeeper-ep-5xx"]
    code, message = error_of(lambda: cloudwatch.describe_alarms())
    assert code == "AccessDenied" and f"on resource: arn:aws:cloudwatch:us-east-1:{world.id}:alarm:* " in message
    scoped = world.session("tagged", *owned(world)).client("cloudwatch")
    assert error_of(lambda: scoped.describe_alarms(AlarmNamePrefix="sagekeeper-"))[0] == "AccessDenied"
