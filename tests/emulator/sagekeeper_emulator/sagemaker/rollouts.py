"""Blue/green endpoint updates with deployment guardrails: UpdateEndpoint's DeploymentConfig.

moto has no UpdateEndpoint; endpoints.py adds one that switches configs after the account's
endpointUpdatingSeconds. With a DeploymentConfig whose BlueGreenUpdatePolicy shifts traffic, this
module runs the rollout as the SageMaker developer guide describes it ("Blue/Green Deployments",
"Auto-Rollback Configuration and Monitoring"):

1. the new (green) fleet is provisioned: endpointUpdatingSeconds, variant status `Creating`;
2. traffic shifts in steps: ALL_AT_ONCE one step of 100%; CANARY the canary (its instances'
   share of the green fleet), then the rest; LINEAR a step of LinearStepSize at a time. Each step
   is followed by a baking period of WaitIntervalInSeconds (variant status `Baking`, the traffic
   share in CurrentWeight against DesiredWeight);
3. after the last step, TerminationWaitInSeconds before the old fleet is terminated (variant
   status `Deleting`), then the endpoint serves the new config.

An alarm of AutoRollbackConfiguration in state ALARM at the end of a baking period or of the
termination wait rolls the update back (the emulator looks at the end of each period; AWS watches
throughout, so it may begin sooner): `RollingBack` for endpointUpdatingSeconds, then `InService` on the old config with FailureReason set (AWS does not
document its text; the alarm is not named there: its history says which one fired). So does
running past MaximumExecutionTimeoutInSeconds. Validation follows the API reference
(WaitIntervalInSeconds and TerminationWaitInSeconds 0 to 3600, MaximumExecutionTimeoutInSeconds
600 to 28800 and above their sum, a CanarySize for CANARY and a LinearStepSize for LINEAR) and the
guide (a canary at most 50% of the green fleet, linear steps 10% to 50% of it, the same variant
names in the old and new config). Inf1 variants fall back to all-at-once, silently, as the guide
says they do. A variant with an Application Auto Scaling target cannot change its instance type
in an update (ValidationException), as AWS refuses.

Every update is recorded with its steps (time, traffic share, status) and outcome, for tests:
`GET /_emulator/endpoint-deployments?account=A&endpointName=ep`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError

from .core import LOCK, Call, table, timeline


@dataclass
class Step:
    """One traffic shift: the share of traffic on the new fleet, then a wait."""

    percent: int
    wait: int


@dataclass
class Plan:
    strategy: str
    steps: list[Step]
    termination_wait: int
    timeout: int | None
    alarms: list[str]


@dataclass
class Record:
    """What tests read back of one update."""

    endpoint_config_name: str
    strategy: str
    start: datetime
    steps: list[dict] = field(default_factory=list)
    outcome: str = "InProgress"
    rolled_back_by: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "endpointConfigName": self.endpoint_config_name,
            "strategy": self.strategy,
            "startTime": self.start.isoformat(),
            "steps": self.steps,
            "outcome": self.outcome,
            "alarmsInAlarm": self.rolled_back_by,
        }


def _fail(message: str) -> None:
    raise ValidationError(message)


def _in_range(value, low: int, high: int, name: str) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        _fail(f"{name} must be between {low} and {high}, got {value!r}.")
    return value


def _instances(size: dict, fleet: int, name: str) -> int:
    """Instances of the green fleet a CapacitySize stands for (at least one)."""
    kind, value = size.get("Type"), size.get("Value")
    if not isinstance(value, int) or value < 1:
        _fail(f"{name}.Value must be at least 1.")
    if kind == "INSTANCE_COUNT":
        return value
    if kind == "CAPACITY_PERCENT":
        if value > 100:
            _fail(f"{name}.Value must be at most 100 for CAPACITY_PERCENT.")
        return max(1, math.floor(fleet * value / 100))
    _fail(f"{name}.Type must be INSTANCE_COUNT or CAPACITY_PERCENT.")
    return 0


def plan(current: dict | None, new: dict, deployment: dict | None) -> Plan | None:
    """The rollout of an update from config `current` to `new`, or None when no
    BlueGreenUpdatePolicy asks for one (the plain switch of endpoints.py)."""
    policy = (deployment or {}).get("BlueGreenUpdatePolicy")
    if not policy:
        if (deployment or {}).get("RollingUpdatePolicy"):
            _fail("RollingUpdatePolicy is not supported by the emulator.")
        return None
    routing = policy.get("TrafficRoutingConfiguration") or _fail(
        "BlueGreenUpdatePolicy.TrafficRoutingConfiguration is required."
    )
    strategy = routing.get("Type")
    wait = _in_range(routing.get("WaitIntervalInSeconds"), 0, 3600, "TrafficRoutingConfiguration.WaitIntervalInSeconds")
    termination = _in_range(policy.get("TerminationWaitInSeconds", 0), 0, 3600, "TerminationWaitInSeconds")
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout is not None:
        _in_range(timeout, 600, 28800, "MaximumExecutionTimeoutInSeconds")
        if timeout <= wait + termination:
            _fail(
                "MaximumExecutionTimeoutInSeconds must be larger than the total waiting time in "
                "TerminationWaitInSeconds and WaitIntervalInSeconds."
            )
    alarms = [a.get("AlarmName", "") for a in ((deployment or {}).get("AutoRollbackConfiguration") or {}).get("Alarms") or []]
    if len(alarms) > 10:
        _fail("AutoRollbackConfiguration.Alarms may name at most 10 alarms.")
    variants = new["ProductionVariants"]
    fleet = sum(v.get("InitialInstanceCount") or 1 for v in variants)
    if strategy in ("CANARY", "LINEAR"):
        old_names = sorted(v["VariantName"] for v in (current or {}).get("ProductionVariants", []))
        if old_names != sorted(v["VariantName"] for v in variants):
            _fail(f"{strategy} traffic shifting needs the same variant names in the old and the new endpoint config.")
        if any((v.get("InstanceType") or "").startswith("ml.inf1.") for v in variants):
            strategy = "ALL_AT_ONCE"  # the guide: Inf1 falls back to all-at-once, silently
    if strategy == "ALL_AT_ONCE":
        steps = [Step(100, wait)]
    elif strategy == "CANARY":
        size = routing.get("CanarySize") or _fail("CanarySize is required for CANARY traffic routing.")
        canary = _instances(size, fleet, "CanarySize")
        if canary * 2 > fleet:
            _fail(f"CanarySize must be at most 50% of the new fleet ({fleet} instances), got {canary} instances.")
        steps = [Step(math.floor(100 * canary / fleet), wait), Step(100, wait)]
    elif strategy == "LINEAR":
        size = routing.get("LinearStepSize") or _fail("LinearStepSize is required for LINEAR traffic routing.")
        step = _instances(size, fleet, "LinearStepSize")
        if not (fleet * 10 <= step * 100 <= fleet * 50):
            _fail(f"LinearStepSize must be 10% to 50% of the new fleet ({fleet} instances), got {step} instances.")
        shifted = range(step, fleet + step, step)
        steps = [Step(min(100, math.floor(100 * n / fleet)), wait) for n in shifted]
        steps[-1].percent = 100
    else:
        _fail("TrafficRoutingConfiguration.Type must be ALL_AT_ONCE, CANARY or LINEAR.")
    return Plan(strategy, steps, termination, timeout, alarms)


def check_scaled_instance_types(call: Call, endpoint, current: dict | None, new: dict) -> None:
    """AWS refuses an update that changes the instance type of a variant with a scalable target."""
    from .. import autoscaling  # registered targets live there (imported late: it imports sagemaker)

    old_types = {v["VariantName"]: v.get("InstanceType") for v in (current or {}).get("ProductionVariants", [])}
    for variant in new["ProductionVariants"]:
        name = variant["VariantName"]
        resource = f"endpoint/{endpoint.endpoint_name}/variant/{name}"
        if name in old_types and old_types[name] != variant.get("InstanceType") and autoscaling.scalable_target(
            call.scope[0], call.scope[1], resource
        ):
            _fail(
                f'The variant "{name}" has an automatic scaling target registered (ResourceId {resource}); '
                "deregister it before changing its instance type."
            )


def records(account: str, endpoint_name: str) -> list[dict]:
    with LOCK:
        return [r.as_json() for r in table("endpoint-deployments", account).get(endpoint_name, [])]


def _alarms_in_alarm(scope, names: list[str], since: datetime) -> tuple[list[str], datetime | None]:
    """The named alarms in ALARM now, and the earliest time one of them went there (not before
    `since`)."""
    from moto.cloudwatch.models import cloudwatch_backends

    alarms = cloudwatch_backends[scope[0]][scope[1]].alarms
    firing = [alarms[n] for n in names if n in alarms and alarms[n].state_value == "ALARM"]
    if not firing:
        return [], None
    return [a.name for a in firing], max(since, min(a.state_updated_timestamp for a in firing))


@dataclass
class Rollout:
    """One update in flight; each phase schedules the next on the account's timeline."""

    call_scope: tuple
    endpoint: object
    config: dict
    plan: Plan
    record: Record
    settle_seconds: float
    finish: object  # endpoints.py's switch to the new config (or its registered failure)

    def _at(self, when: datetime, apply) -> None:
        timeline.schedule(self.call_scope, self.endpoint.arn, (when - utcnow()).total_seconds(), apply)

    def _variant_status(self, status: str, message: str, since: datetime, percent: int | None = None) -> None:
        summary = self.endpoint.pending_deployment_summary
        if not summary:
            return
        for variant in summary["ProductionVariants"]:
            variant["VariantStatus"] = [{"Status": status, "StatusMessage": message, "StartTime": since}]
            if percent is not None:
                variant.setdefault("DesiredWeight", 1.0)
                variant["CurrentWeight"] = round(variant["DesiredWeight"] * percent / 100, 4)
            if status != "Creating":
                variant["CurrentInstanceCount"] = variant.get("DesiredInstanceCount")

    def start(self, provisioned: datetime) -> None:
        self._at(provisioned, lambda due: self._shift(0, due))

    def _timed_out(self, due: datetime) -> bool:
        return self.plan.timeout is not None and due > self.record.start + timedelta(seconds=self.plan.timeout)

    def _shift(self, index: int, due: datetime) -> None:
        step = self.plan.steps[index]
        self.record.steps.append({"time": due.isoformat(), "trafficPercent": step.percent, "status": "Baking"})
        message = f"Baking for {step.wait} seconds with {step.percent}% of the traffic on the new fleet"
        self._variant_status("Baking", message, due, step.percent)
        self._at(due + timedelta(seconds=step.wait), lambda end: self._baked(index, due, end))

    def _baked(self, index: int, since: datetime, due: datetime) -> None:
        if self._rolled_back(since, due):
            return
        if index + 1 < len(self.plan.steps):
            self._shift(index + 1, due)
            return
        wait = self.plan.termination_wait
        self.record.steps.append({"time": due.isoformat(), "trafficPercent": 100, "status": "Deleting"})
        self._variant_status("Deleting", f"Terminating the old fleet in {wait} seconds", due)
        self._at(due + timedelta(seconds=wait), lambda end: self._terminated(due, end))

    def _terminated(self, since: datetime, due: datetime) -> None:
        if self._rolled_back(since, due):
            return
        self.record.outcome = "Succeeded"
        self.finish(due)

    def _rolled_back(self, since: datetime, due: datetime) -> bool:
        firing, when = _alarms_in_alarm(self.call_scope, self.plan.alarms, since)
        if not firing and not self._timed_out(due):
            return False
        when = when or due
        self.record.outcome, self.record.rolled_back_by = "RolledBack", firing
        self.record.steps.append({"time": when.isoformat(), "trafficPercent": 0, "status": "RollingBack"})
        endpoint = self.endpoint
        endpoint.endpoint_status, endpoint.pending_deployment_summary = "RollingBack", None
        reason = (
            "The update was rolled back: an alarm of its AutoRollbackConfiguration went into ALARM."
            if firing
            else "The update was rolled back: it ran longer than MaximumExecutionTimeoutInSeconds."
        )

        def back(end: datetime) -> None:
            endpoint.endpoint_status, endpoint.failure_reason, endpoint.last_modified_time = "InService", reason, end

        self._at(due + timedelta(seconds=self.settle_seconds), back)
        return True


def begin(call: Call, endpoint, config: dict, rollout_plan: Plan, finish) -> None:
    """Runs `rollout_plan` for the update of `endpoint` to `config` begun now."""
    now = utcnow()
    record = Record(config["EndpointConfigName"], rollout_plan.strategy, now)
    with LOCK:
        table("endpoint-deployments", call.scope[0]).setdefault(endpoint.endpoint_name, []).append(record)
    seconds = call.config.endpointUpdatingSeconds
    rollout = Rollout(call.scope, endpoint, config, rollout_plan, record, seconds, finish)
    rollout.start(now + timedelta(seconds=seconds))
