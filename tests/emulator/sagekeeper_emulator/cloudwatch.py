"""CloudWatch metric alarms as AWS keeps them, where moto falls short.

moto stores alarms (`cloudwatch_backends[account][region].alarms`, moto's `Alarm` objects, which
other modules read: `state_value`, `state_updated_timestamp`); this module answers the alarm
operations in their place. What differs from moto, and why:

- A new alarm starts in INSUFFICIENT_DATA ("Unchecked: Initial alarm creation"), as the API
  reference says; moto starts it OK, which would read as healthy before any data.
- PutMetricAlarm on an existing alarm overwrites its configuration but keeps its state, its
  history and its tags; the Tags of an update are ignored (the API reference). moto builds a new
  alarm: back to its initial state, and the update's Tags applied.
- PutMetricAlarm validates what AWS validates (ValidationError): MetricName or Metrics, not
  both; with MetricName exactly one of Statistic and ExtendedStatistic, and a Period of 10, 20,
  30 or a multiple of 60; with Metrics none of the single-metric parameters, each query either
  an Expression or a MetricStat, exactly one returning data; a Threshold unless ThresholdMetricId;
  DatapointsToAlarm at most EvaluationPeriods; the enums (Statistic, ComparisonOperator, Unit,
  TreatMissingData, EvaluateLowSampleCountPercentile) and an ExtendedStatistic of AWS's forms
  (p99, tm90, IQM, PR(n:m), TM(10%:90%), ...). moto accepts both statistics, no threshold, and
  refuses every extended statistic but percentiles.
- Metrics are described as given (moto drops AccountId), Dimensions and the extended statistic
  of a single-metric alarm alike; a description carries StateTransitionedTimestamp.
- DescribeAlarms combines its filters (AlarmNames or AlarmNamePrefix, both is
  InvalidParameterCombination; StateValue; ActionPrefix on any action; AlarmTypes, metric alarms
  unless asked), lists by name and pages by MaxRecords (1 to 100, default 50) with a NextToken
  (InvalidNextToken when it is not one of ours). moto applies one filter, in creation order,
  unpaged.
- DescribeAlarmHistory (moto: not implemented) lists what this module records: a
  ConfigurationUpdate when an alarm is created, updated or deleted (kept after the deletion, as
  AWS keeps it), and a StateUpdate on every change of state ("Alarm updated from OK to ALARM",
  HistoryData with oldState and newState), filtered by AlarmName, AlarmTypes, HistoryItemType,
  StartDate and EndDate, newest first unless ScanBy=TimestampAscending, paged like DescribeAlarms
  (default 100). Setting an alarm to the state it is in changes its reason and
  StateUpdatedTimestamp but records no transition.
- DeleteAlarms forgets the alarm's tags (moto keeps them, and a new alarm of the same name would
  inherit them); unknown names are ignored, as AWS does; more than 100 names is a ValidationError.
- TagResource, UntagResource and ListTagsForResource on an alarm ARN that names no alarm of the
  caller's account and region answer ResourceNotFoundException (moto lists nothing for it and
  refuses to untag an alarm that has no tags yet).

Alarms are never evaluated against metric data: their state changes only through SetAlarmState
or `set_alarm_state` (the control API's POST /_emulator/alarms).
"""

from __future__ import annotations

import base64
import binascii
import functools
import itertools
import json
import re
import threading
from datetime import datetime
from functools import lru_cache

import botocore.session
from moto.cloudwatch.exceptions import (
    CloudWatchException,
    InvalidFormat,
    InvalidParameterCombination,
    ResourceNotFound,
    ResourceNotFoundException,
    ValidationError,
)
from moto.cloudwatch.models import Alarm, CloudWatchBackend, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow

LOCK = threading.RLock()
STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
INITIAL_REASON = "Unchecked: Initial alarm creation"
MISSING_DATA = ("breaching", "notBreaching", "ignore", "missing")
LOW_SAMPLE_COUNT = ("evaluate", "ignore")
_EXTENDED = re.compile(
    r"(p|tm|tc|ts|wm)(100(\.0+)?|\d{1,2}(\.\d+)?)|IQM|(PR|TM|TC|TS|WM)\([^():]*:[^():]*\)"
)
_SINGLE_METRIC = ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit")

_history: dict[tuple[str, str], list[dict]] = {}
_sequence = itertools.count(1)


class InvalidNextToken(CloudWatchException):
    code = "InvalidNextToken"


# --- what other modules use ---------------------------------------------------------


def alarm_arn(account: str, region: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"


def _backend(account: str, region: str) -> CloudWatchBackend:
    return cloudwatch_backends[account][region]


def alarm(account: str, region: str, name: str) -> Alarm | None:
    """moto's alarm `name`, or None."""
    try:
        return _backend(account, region).alarms.get(name)
    except KeyError:  # a region moto does not know
        return None


def alarm_tags(account: str, region: str, name: str) -> dict[str, str]:
    """The tags of alarm `name` (empty when there is no such alarm)."""
    found = alarm(account, region, name)
    return dict(_backend(account, region).tagger.get_tag_dict_for_resource(found.alarm_arn)) if found else {}


def alarm_state(account: str, region: str, name: str) -> str | None:
    """The state of alarm `name` (OK, ALARM or INSUFFICIENT_DATA), None when there is none."""
    found = alarm(account, region, name)
    return found.state_value if found else None


def set_alarm_state(account: str, region: str, name: str, state: str, reason: str, reason_data: str | None = None) -> str:
    """Set an alarm's state as SetAlarmState does (a StateUpdate history item when the state
    changes); returns the previous state. LookupError: no such alarm; ValueError: not a state."""
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}")
    with LOCK:
        found = alarm(account, region, name)
        if found is None:
            raise LookupError(f"no alarm {name} in account {account}, region {region}")
        return _transition(account, region, found, state, reason, reason_data)


def put_alarm(account: str, region: str, request: dict, tags: dict[str, str] | None = None) -> Alarm:
    """Create or update a metric alarm from PutMetricAlarm's parameters (validated here; a
    ValidationError as AWS answers it), with `tags` when it is created."""
    _validate(request)
    with LOCK:
        backend = _backend(account, region)
        name = request["AlarmName"]
        existing = backend.alarms.get(name)
        found = _build(account, region, request)
        now = found.configuration_updated_timestamp
        if existing is None:
            found.state_value, found.state_reason, found.state_reason_data = "INSUFFICIENT_DATA", INITIAL_REASON, None
            found.state_updated_timestamp = found.state_transitioned_timestamp = now
            backend.tagger.delete_all_tags_for_resource(found.alarm_arn)
            if tags:
                backend.tagger.tag_resource(found.alarm_arn, [{"Key": k, "Value": v} for k, v in tags.items()])
        else:
            for field in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp"):
                setattr(found, field, getattr(existing, field))
            found.state_transitioned_timestamp = getattr(existing, "state_transitioned_timestamp", existing.state_updated_timestamp)
        backend.alarms[name] = found
        verb, key = ("created", "createdAlarm") if existing is None else ("updated", "updatedAlarm")
        data = {"version": "1.0", "type": "Create" if existing is None else "Update", key: _history_form(describe(found))}
        if existing is not None:
            data["originalAlarm"] = _history_form(describe(existing))
        _record(account, region, name, "ConfigurationUpdate", f'Alarm "{name}" {verb}', data, now)
        return found


def delete_alarms(account: str, region: str, names: list[str]) -> None:
    """Delete the named alarms (unknown names are ignored), their tags with them."""
    with LOCK:
        backend = _backend(account, region)
        for name in names:
            found = backend.alarms.pop(name, None)
            if found is None:
                continue
            backend.tagger.delete_all_tags_for_resource(found.alarm_arn)
            data = {"version": "1.0", "type": "Delete", "deletedAlarm": _history_form(describe(found))}
            _record(account, region, name, "ConfigurationUpdate", f'Alarm "{name}" deleted', data, utcnow())


def describe(found: Alarm) -> dict:
    """A MetricAlarm as DescribeAlarms answers it."""
    description = {
        "AlarmName": found.name,
        "AlarmArn": found.alarm_arn,
        "AlarmDescription": found.description,
        "AlarmConfigurationUpdatedTimestamp": found.configuration_updated_timestamp,
        "ActionsEnabled": found.actions_enabled,
        "OKActions": list(found.ok_actions or []),
        "AlarmActions": list(found.alarm_actions or []),
        "InsufficientDataActions": list(found.insufficient_data_actions or []),
        "StateValue": found.state_value,
        "StateReason": found.state_reason,
        "StateReasonData": found.state_reason_data,
        "StateUpdatedTimestamp": found.state_updated_timestamp,
        "StateTransitionedTimestamp": getattr(found, "state_transitioned_timestamp", found.state_updated_timestamp),
        "MetricName": found.metric_name,
        "Namespace": found.namespace,
        "Statistic": found.statistic,
        "ExtendedStatistic": found.extended_statistic,
        "Period": found.period,
        "Unit": found.unit,
        "EvaluationPeriods": found.evaluation_periods,
        "DatapointsToAlarm": found.datapoints_to_alarm,
        "Threshold": None if found.threshold is None else float(found.threshold),
        "ComparisonOperator": found.comparison_operator,
        "TreatMissingData": found.treat_missing_data,
        "EvaluateLowSampleCountPercentile": found.evaluate_low_sample_count_percentile,
        "ThresholdMetricId": found.threshold_metric_id,
        "Metrics": getattr(found, "metrics", None),
    }
    if found.metric_name is not None or found.dimensions:
        description["Dimensions"] = [{"Name": d.name, "Value": d.value} for d in found.dimensions]
    return {key: value for key, value in description.items() if value is not None}


def reset() -> None:
    """Forget the alarm history (moto's reset forgets the alarms)."""
    with LOCK:
        _history.clear()


# --- state and history ------------------------------------------------------------------


def _transition(account: str, region: str, found: Alarm, state: str, reason: str, reason_data: str | None) -> str:
    old, now = found.state_value, utcnow()
    if state != old:
        data = {
            "version": "1.0",
            "oldState": _state_form(old, found.state_reason, found.state_reason_data),
            "newState": _state_form(state, reason, reason_data),
        }
        _record(account, region, found.name, "StateUpdate", f"Alarm updated from {old} to {state}", data, now)
        found.state_transitioned_timestamp = now
    found.state_value, found.state_reason, found.state_reason_data = state, reason, reason_data
    found.state_updated_timestamp = now
    return old


def _state_form(value: str, reason: str | None, reason_data: str | None) -> dict:
    form = {"stateValue": value, "stateReason": reason}
    if reason_data:
        try:
            form["stateReasonData"] = json.loads(reason_data)
        except ValueError:
            pass
    return form


def _history_form(value):
    """A description as HistoryData spells it: lowerCamelCase keys, ISO timestamps."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _history_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_history_form(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds") + "+0000"
    return value


def _record(account: str, region: str, name: str, kind: str, summary: str, data: dict, when: datetime) -> None:
    _history.setdefault((account, region), []).append(
        {
            "seq": next(_sequence),
            "AlarmName": name,
            "AlarmType": "MetricAlarm",
            "Timestamp": when,
            "HistoryItemType": kind,
            "HistorySummary": summary,
            "HistoryData": json.dumps(data, separators=(",", ":")),
        }
    )


# --- validation ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _model():
    return botocore.session.get_session().get_service_model("cloudwatch")


def _enum(value, shape: str, parameter: str) -> None:
    allowed = _model().shape_for(shape).enum
    if value is not None and value not in allowed:
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at '{parameter}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(allowed)}]"
        )


def _option(value, allowed: tuple[str, ...], parameter: str) -> None:
    if value is not None and value not in allowed:
        raise ValidationError(
            f"Option {value} is not supported. Supported options for parameter {parameter} are "
            f"{', '.join(allowed[:-1])} and {allowed[-1]}."
        )


def _length(value, maximum: int, parameter: str) -> None:
    if value is not None and len(value) > maximum:
        raise ValidationError(
            f"1 validation error detected: Value at '{parameter}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {maximum}"
        )


def _period(value, parameter: str = "Period") -> None:
    if value is not None and (value < 1 or (value not in (10, 20, 30) and value % 60)):
        raise ValidationError(f"The parameter {parameter} must be 10, 20, 30 or a multiple of 60.")


def _validate(request: dict) -> None:
    name = request.get("AlarmName")
    if not name:
        raise ValidationError("1 validation error detected: Value null at 'alarmName' failed to satisfy constraint: Member must not be null")
    _length(name, 255, "alarmName")
    _length(request.get("AlarmDescription"), 1024, "alarmDescription")
    for actions, parameter in (("AlarmActions", "alarmActions"), ("OKActions", "oKActions"), ("InsufficientDataActions", "insufficientDataActions")):
        _length(request.get(actions), 5, parameter)
    periods = request.get("EvaluationPeriods")
    if periods is None or periods < 1:
        raise ValidationError("The parameter EvaluationPeriods must be a positive integer.")
    to_alarm = request.get("DatapointsToAlarm")
    if to_alarm is not None and not 1 <= to_alarm <= periods:
        raise ValidationError("DatapointsToAlarm must be between 1 and EvaluationPeriods.")
    if request.get("ComparisonOperator") is None:
        raise ValidationError("1 validation error detected: Value null at 'comparisonOperator' failed to satisfy constraint: Member must not be null")
    _enum(request.get("ComparisonOperator"), "ComparisonOperator", "comparisonOperator")
    _enum(request.get("Unit"), "StandardUnit", "unit")
    _option(request.get("TreatMissingData"), MISSING_DATA, "TreatMissingData")
    _option(request.get("EvaluateLowSampleCountPercentile"), LOW_SAMPLE_COUNT, "EvaluateLowSampleCountPercentile")
    if request.get("Threshold") is None and not request.get("ThresholdMetricId"):
        raise ValidationError("Threshold must be specified unless the alarm uses ThresholdMetricId.")
    if request.get("Metrics"):
        _validate_metrics(request)
    elif request.get("MetricName"):
        _validate_single_metric(request)
    else:
        raise ValidationError("Either MetricName or Metrics must be specified.")


def _validate_single_metric(request: dict) -> None:
    statistic, extended = request.get("Statistic"), request.get("ExtendedStatistic")
    if (statistic is None) == (extended is None):
        raise ValidationError("Exactly one of Statistic and ExtendedStatistic must be specified.")
    _enum(statistic, "Statistic", "statistic")
    if extended is not None and not _EXTENDED.fullmatch(extended):
        raise ValidationError(f"The value {extended} for parameter ExtendedStatistic is not supported.")
    if request.get("Period") is None and not request.get("ThresholdMetricId"):
        raise ValidationError("Period must be specified for an alarm on a metric.")
    _period(request.get("Period"))
    _length(request.get("Dimensions"), 30, "dimensions")


def _validate_metrics(request: dict) -> None:
    for parameter in _SINGLE_METRIC:
        if request.get(parameter) not in (None, []):
            raise ValidationError(f"{parameter} should not be set if list of Metrics is set.")
    returning = 0
    for index, query in enumerate(request["Metrics"], 1):
        if not query.get("Id"):
            raise ValidationError(f"The parameter Metrics.member.{index}.Id is required.")
        if (query.get("Expression") is None) == (query.get("MetricStat") is None):
            raise ValidationError(f"Exactly one of Expression and MetricStat must be set in Metrics.member.{index}.")
        stat = query.get("MetricStat")
        if stat is not None:
            if not stat.get("Stat") or not (stat.get("Metric") or {}).get("MetricName"):
                raise ValidationError(f"Metrics.member.{index}.MetricStat needs a Metric with a MetricName and a Stat.")
            _period(stat.get("Period"), f"Metrics.member.{index}.MetricStat.Period")
        returning += query.get("ReturnData", True) is not False
    if returning != 1:
        raise ValidationError("Exactly one element of the metrics list should return data.")


def _build(account: str, region: str, request: dict) -> Alarm:
    """moto's Alarm object for a (validated) request."""
    found = Alarm(
        account_id=account,
        region_name=region,
        name=request["AlarmName"],
        namespace=request.get("Namespace"),
        metric_name=request.get("MetricName"),
        metric_data_queries=None,
        comparison_operator=request.get("ComparisonOperator"),
        evaluation_periods=request.get("EvaluationPeriods"),
        datapoints_to_alarm=request.get("DatapointsToAlarm"),
        period=request.get("Period"),
        threshold=request.get("Threshold"),
        statistic=request.get("Statistic"),
        extended_statistic=request.get("ExtendedStatistic"),
        description=request.get("AlarmDescription"),
        dimensions=request.get("Dimensions") or [],
        alarm_actions=list(request.get("AlarmActions") or []),
        ok_actions=list(request.get("OKActions") or []),
        insufficient_data_actions=list(request.get("InsufficientDataActions") or []),
        unit=request.get("Unit"),
        actions_enabled=request.get("ActionsEnabled"),
        treat_missing_data=request.get("TreatMissingData"),
        evaluate_low_sample_count_percentile=request.get("EvaluateLowSampleCountPercentile"),
        threshold_metric_id=request.get("ThresholdMetricId"),
        rule=None,
    )
    found.metrics = json.loads(json.dumps(request["Metrics"])) if request.get("Metrics") else None
    return found


# --- paging ---------------------------------------------------------------------------


def _max_records(value, default: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= 100:
        raise ValidationError(
            f"1 validation error detected: Value '{value}' at 'maxRecords' failed to satisfy constraint: "
            "Member must have value between 1 and 100"
        )
    return value


def _token(position) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode()


def _position(token: str | None):
    if token is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidNextToken("The service cannot process the NextToken provided.") from None


# --- moto handlers --------------------------------------------------------------------


def _scope(response: CloudWatchResponse) -> tuple[str, str]:
    return response.current_account, response.region


_PUT_FIELDS = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions", "InsufficientDataActions",
    "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
    "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
    "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId",
)  # fmt: skip


def put_metric_alarm(self: CloudWatchResponse) -> ActionResult:
    request = {field: self._get_param(field) for field in _PUT_FIELDS}
    tags = {t["Key"]: t.get("Value", "") for t in self._get_param("Tags") or []}
    _length(tags, 50, "tags")
    put_alarm(*_scope(self), request, tags)
    return EmptyResult()


def describe_alarms(self: CloudWatchResponse) -> ActionResult:
    names, prefix = self._get_param("AlarmNames") or [], self._get_param("AlarmNamePrefix")
    if names and prefix:
        raise InvalidParameterCombination("AlarmNamePrefix and AlarmNames cannot be specified together.")
    _length(names, 100, "alarmNames")
    state, action_prefix = self._get_param("StateValue"), self._get_param("ActionPrefix")
    _enum(state, "StateValue", "stateValue")
    types = self._get_param("AlarmTypes") or ["MetricAlarm"]
    for kind in types:
        _enum(kind, "AlarmType", "alarmTypes")
    limit = _max_records(self._get_param("MaxRecords"), 50)
    after = _position(self._get_param("NextToken"))
    with LOCK:
        alarms = sorted(_backend(*_scope(self)).alarms.values(), key=lambda a: a.name)
        chosen = [
            a
            for a in alarms
            if (not names or a.name in names)
            and (prefix is None or a.name.startswith(prefix))
            and (state is None or a.state_value == state)
            and (action_prefix is None or any(x.startswith(action_prefix) for x in [*a.alarm_actions, *a.ok_actions, *a.insufficient_data_actions]))
            and (after is None or a.name > after)
        ]
        page = chosen[:limit]
        result = {
            "MetricAlarms": [describe(a) for a in page if a.rule is None] if "MetricAlarm" in types else [],
            "CompositeAlarms": [a for a in page if a.rule is not None] if "CompositeAlarm" in types else [],
        }
    if len(chosen) > limit:
        result["NextToken"] = _token(page[-1].name)
    return ActionResult(result)


def describe_alarm_history(self: CloudWatchResponse) -> ActionResult:
    name, kind = self._get_param("AlarmName"), self._get_param("HistoryItemType")
    _enum(kind, "HistoryItemType", "historyItemType")
    types = self._get_param("AlarmTypes") or ["MetricAlarm"]
    for alarm_type in types:
        _enum(alarm_type, "AlarmType", "alarmTypes")
    start, end = self._get_param("StartDate"), self._get_param("EndDate")
    scan = self._get_param("ScanBy") or "TimestampDescending"
    _enum(scan, "ScanBy", "scanBy")
    limit = _max_records(self._get_param("MaxRecords"), 100)
    after = _position(self._get_param("NextToken"))
    descending = scan == "TimestampDescending"
    with LOCK:
        items = [
            item
            for item in _history.get(_scope(self), [])
            if (name is None or item["AlarmName"] == name)
            and item["AlarmType"] in types
            and (kind is None or item["HistoryItemType"] == kind)
            and (start is None or item["Timestamp"] >= _naive(start))
            and (end is None or item["Timestamp"] <= _naive(end))
            and (after is None or (item["seq"] < after if descending else item["seq"] > after))
        ]
    items.sort(key=lambda item: item["seq"], reverse=descending)
    page = items[:limit]
    result = {"AlarmHistoryItems": [{k: v for k, v in item.items() if k != "seq"} for item in page]}
    if len(items) > limit:
        result["NextToken"] = _token(page[-1]["seq"])
    return ActionResult(result)


def _naive(value) -> datetime:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def delete_alarms_handler(self: CloudWatchResponse) -> ActionResult:
    names = self._get_param("AlarmNames") or []
    _length(names, 100, "alarmNames")
    delete_alarms(*_scope(self), names)
    return EmptyResult()


def set_alarm_state_handler(self: CloudWatchResponse) -> ActionResult:
    name, state = self._get_param("AlarmName"), self._get_param("StateValue")
    reason, reason_data = self._get_param("StateReason"), self._get_param("StateReasonData")
    _enum(state, "StateValue", "stateValue")
    if reason_data is not None:
        try:
            json.loads(reason_data)
        except ValueError:
            raise InvalidFormat("StateReasonData is not valid JSON.") from None
    with LOCK:
        found = alarm(*_scope(self), name or "")
        if found is None:
            raise ResourceNotFound(f"Alarm {name} not found")
        _transition(*_scope(self), found, state, reason, reason_data)
    return EmptyResult()


def _alarm_of_arn(response: CloudWatchResponse) -> Alarm | None:
    """The alarm a ResourceARN names (ResourceNotFoundException if none); None for an ARN that
    is not an alarm's (moto's own handling applies)."""
    arn = response._get_param("ResourceARN") or ""
    parts = arn.split(":", 6)
    if len(parts) != 7 or parts[2] != "cloudwatch" or parts[5] != "alarm":
        return None
    account, region = _scope(response)
    found = alarm(account, region, parts[6]) if (parts[4], parts[3]) == (account, region) else None
    if found is None:
        raise ResourceNotFoundException(f"The specified resource does not exist: {arn}")
    return found


def _on_alarm_arn(handler):
    def wrap(original):
        @functools.wraps(original)
        def method(self: CloudWatchResponse) -> ActionResult:
            with LOCK:
                found = _alarm_of_arn(self)
                if found is None:
                    return original(self)
                return handler(self, _backend(*_scope(self)), found)

        return method

    return wrap


@_on_alarm_arn
def _tag(self, backend: CloudWatchBackend, found: Alarm) -> ActionResult:
    tags = self._get_param("Tags") or []
    current = backend.tagger.get_tag_dict_for_resource(found.alarm_arn)
    if len({**current, **{t["Key"]: t.get("Value", "") for t in tags}}) > 50:
        raise ValidationError("An alarm can have at most 50 tags.")
    backend.tagger.tag_resource(found.alarm_arn, [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags])
    return EmptyResult()


@_on_alarm_arn
def _untag(self, backend: CloudWatchBackend, found: Alarm) -> ActionResult:
    backend.tagger.untag_resource_using_names(found.alarm_arn, self._get_param("TagKeys") or [])
    return EmptyResult()


@_on_alarm_arn
def _list_tags(self, backend: CloudWatchBackend, found: Alarm) -> ActionResult:
    tags = backend.tagger.get_tag_dict_for_resource(found.alarm_arn)
    return ActionResult({"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]})


def install() -> None:
    """Patch moto's CloudWatch alarm handlers."""
    CloudWatchResponse.put_metric_alarm = put_metric_alarm
    CloudWatchResponse.describe_alarms = describe_alarms
    CloudWatchResponse.describe_alarm_history = describe_alarm_history
    CloudWatchResponse.delete_alarms = delete_alarms_handler
    CloudWatchResponse.set_alarm_state = set_alarm_state_handler
    CloudWatchResponse.tag_resource = _tag(CloudWatchResponse.tag_resource)
    CloudWatchResponse.untag_resource = _untag(CloudWatchResponse.untag_resource)
    CloudWatchResponse.list_tags_for_resource = _list_tags(CloudWatchResponse.list_tags_for_resource)
