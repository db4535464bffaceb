"""CloudWatch alarms (signing name `monitoring`), as the Service Authorization Reference lists
them: every alarm operation takes the `alarm` resource,
`arn:aws:cloudwatch:<region>:<account>:alarm:<name>`, which carries the alarm's tags as
aws:ResourceTag.

- An operation naming alarms (DeleteAlarms, DescribeAlarms with AlarmNames) is authorized on
  each named alarm; DescribeAlarmHistory and SetAlarmState on the one alarm they name.
- A listing (DescribeAlarms by AlarmNamePrefix, or unfiltered; DescribeAlarmHistory of all
  alarms) names no alarm: it is authorized on the ARN pattern of the alarms it may return,
  `...:alarm:<prefix>*` (`...:alarm:*` unfiltered), which has no tags. A policy that scopes
  DescribeAlarms by name prefix allows it; one that asks for aws:ResourceTag does not (the
  emulator's reading: AWS documents no tag for a request that names no alarm).
- PutMetricAlarm supplies aws:RequestTag/aws:TagKeys for its Tags and cloudwatch:AlarmActions
  (all the actions it sets: AlarmActions, OKActions, InsufficientDataActions), and the existing
  alarm's tags on an update. Creating an alarm with Tags also needs cloudwatch:TagResource on it
  (the PutMetricAlarm API reference: "you must have the cloudwatch:TagResource permission").
- The tagging operations are authorized on the ARN they name (an insight rule's as
  `insight-rule`).
"""

from __future__ import annotations

from ... import cloudwatch
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

SERVICE = "monitoring"
ALARM = "alarm"
INSIGHT_RULE = "insight-rule"
ALARM_ACTIONS = "cloudwatch:AlarmActions"


def alarm_arn(ctx: Ctx, name: str) -> str:
    return ctx.arn("cloudwatch", f"alarm:{name}")


def _list(ctx: Ctx, name: str) -> list[str]:
    """A list parameter, in either protocol."""
    if ctx.request.protocol == "json":
        value = ctx.param(name) or []
        return [str(v) for v in value] if isinstance(value, list) else []
    return ctx.members(name)


def _tags(ctx: Ctx) -> dict[str, str]:
    return ctx.json_tags("Tags") if ctx.request.protocol == "json" else ctx.query_tags("Tags")


def _on_alarm(ctx: Ctx, action: str, name: str, **kwargs):
    tags = cloudwatch.alarm_tags(ctx.account, ctx.region, name)
    return ctx.check(action, ALARM, alarm_arn(ctx, name), resource_tags=tags, **kwargs)


def _listing(ctx: Ctx, action: str, prefix: str = ""):
    return ctx.check(action, ALARM, alarm_arn(ctx, f"{prefix}*"))


@operation(
    SERVICE,
    "PutMetricAlarm",
    grant("cloudwatch:PutMetricAlarm", ALARM, *RESOURCE_TAG, *TAG_KEYS, ALARM_ACTIONS),
    grant("cloudwatch:TagResource", ALARM, *TAG_KEYS),
)
def put_metric_alarm(ctx: Ctx):
    name = ctx.param("AlarmName") or ""
    tags = _tags(ctx)
    actions = [a for key in ("AlarmActions", "OKActions", "InsufficientDataActions") for a in _list(ctx, key)]
    checks = [
        _on_alarm(
            ctx,
            "cloudwatch:PutMetricAlarm",
            name,
            keys={ALARM_ACTIONS: actions} if actions else None,
            request_tags=tags or None,
        )
    ]
    if tags and cloudwatch.alarm(ctx.account, ctx.region, name) is None:
        checks.append(ctx.check("cloudwatch:TagResource", ALARM, alarm_arn(ctx, name), request_tags=tags))
    return checks


@operation(SERVICE, "DescribeAlarms", grant("cloudwatch:DescribeAlarms", ALARM, *RESOURCE_TAG))
def describe_alarms(ctx: Ctx):
    names = _list(ctx, "AlarmNames")
    if names:
        return [_on_alarm(ctx, "cloudwatch:DescribeAlarms", name) for name in names]
    return [_listing(ctx, "cloudwatch:DescribeAlarms", ctx.param("AlarmNamePrefix") or "")]


@operation(SERVICE, "DescribeAlarmHistory", grant("cloudwatch:DescribeAlarmHistory", ALARM, *RESOURCE_TAG))
def describe_alarm_history(ctx: Ctx):
    name = ctx.param("AlarmName")
    if name:
        return [_on_alarm(ctx, "cloudwatch:DescribeAlarmHistory", name)]
    return [_listing(ctx, "cloudwatch:DescribeAlarmHistory")]


@operation(SERVICE, "DeleteAlarms", grant("cloudwatch:DeleteAlarms", ALARM, *RESOURCE_TAG))
def delete_alarms(ctx: Ctx):
    return [_on_alarm(ctx, "cloudwatch:DeleteAlarms", name) for name in _list(ctx, "AlarmNames")]


@operation(SERVICE, "SetAlarmState", grant("cloudwatch:SetAlarmState", ALARM, *RESOURCE_TAG))
def set_alarm_state(ctx: Ctx):
    return [_on_alarm(ctx, "cloudwatch:SetAlarmState", ctx.param("AlarmName") or "")]


def _on_arn(ctx: Ctx, action: str, **kwargs):
    arn = ctx.param("ResourceARN") or ""
    parts = arn.split(":", 6)
    if len(parts) == 6 and parts[5].startswith("insight-rule/"):
        return ctx.check(action, INSIGHT_RULE, arn, **kwargs)
    tags = {}
    if len(parts) == 7 and parts[5] == "alarm" and (parts[4], parts[3]) == (ctx.account, ctx.region):
        tags = cloudwatch.alarm_tags(ctx.account, ctx.region, parts[6])
    return ctx.check(action, ALARM, arn, resource_tags=tags, **kwargs)


@operation(
    SERVICE,
    "TagResource",
    grant("cloudwatch:TagResource", ALARM, *RESOURCE_TAG, *TAG_KEYS),
    grant("cloudwatch:TagResource", INSIGHT_RULE, *TAG_KEYS),
)
def tag_resource(ctx: Ctx):
    return [_on_arn(ctx, "cloudwatch:TagResource", request_tags=_tags(ctx))]


@operation(
    SERVICE,
    "UntagResource",
    grant("cloudwatch:UntagResource", ALARM, *RESOURCE_TAG, "aws:TagKeys"),
    grant("cloudwatch:UntagResource", INSIGHT_RULE, "aws:TagKeys"),
)
def untag_resource(ctx: Ctx):
    return [_on_arn(ctx, "cloudwatch:UntagResource", keys={"aws:TagKeys": _list(ctx, "TagKeys")})]


@operation(
    SERVICE,
    "ListTagsForResource",
    grant("cloudwatch:ListTagsForResource", ALARM, *RESOURCE_TAG),
    grant("cloudwatch:ListTagsForResource", INSIGHT_RULE),
)
def list_tags_for_resource(ctx: Ctx):
    return [_on_arn(ctx, "cloudwatch:ListTagsForResource")]
