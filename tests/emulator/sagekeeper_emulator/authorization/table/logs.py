"""CloudWatch Logs: log groups and their streams, as the Service Authorization Reference lists
them. Group operations are authorized on `arn:aws:logs:<region>:<account>:log-group:<name>`,
stream operations (CreateLogStream, PutLogEvents, GetLogEvents) on
`...:log-group:<name>:log-stream:<stream>`; both carry the group's tags as aws:ResourceTag.
The tagging operations are authorized on the ARN they name. DescribeLogGroups takes no resource.
CreateLogGroup supplies aws:RequestTag/aws:TagKeys; the reference lists no dependent
logs:TagResource for it, so none is checked.
"""

from __future__ import annotations

from .. import resources
from . import RESOURCE_TAG, TAG_KEYS, Ctx, grant, operation

LOG_GROUP = "log-group"
LOG_STREAM = "log-stream"


def group_arn(ctx: Ctx, name: str) -> str:
    return ctx.arn("logs", f"log-group:{name}")


def _group_name(arn: str) -> str | None:
    """The group name of a log-group ARN (`...:log-group:<name>` or `...:<name>:*`)."""
    parts = (arn or "").split(":", 6)
    if len(parts) < 7 or parts[5] != "log-group":
        return None
    name = parts[6]
    return name[:-2] if name.endswith(":*") else name


def _on_group(ctx: Ctx, action: str, name: str, **kwargs):
    return ctx.check(
        action, LOG_GROUP, group_arn(ctx, name), resource_tags=resources.log_group_tags(ctx.account, ctx.region, name), **kwargs
    )


def _group_operation(name: str):
    action = f"logs:{name}"

    @operation("logs", name, grant(action, LOG_GROUP, *RESOURCE_TAG))
    def entry(ctx: Ctx):
        return [_on_group(ctx, action, ctx.param("logGroupName") or "")]

    return entry


def _stream_operation(name: str):
    action = f"logs:{name}"

    @operation("logs", name, grant(action, LOG_STREAM, *RESOURCE_TAG))
    def entry(ctx: Ctx):
        group = ctx.param("logGroupName") or ""
        stream = ctx.param("logStreamName") or ""
        return [
            ctx.check(
                action,
                LOG_STREAM,
                ctx.arn("logs", f"log-group:{group}:log-stream:{stream}"),
                resource_tags=resources.log_group_tags(ctx.account, ctx.region, group),
            )
        ]

    return entry


for _name in (
    "DeleteLogGroup",
    "PutRetentionPolicy",
    "AssociateKmsKey",
    "DisassociateKmsKey",
    "DescribeLogStreams",
    "FilterLogEvents",
):
    _group_operation(_name)
for _name in ("CreateLogStream", "PutLogEvents", "GetLogEvents"):
    _stream_operation(_name)


@operation("logs", "CreateLogGroup", grant("logs:CreateLogGroup", LOG_GROUP, *TAG_KEYS))
def create_log_group(ctx: Ctx):
    tags = ctx.param("tags") or {}
    return [ctx.check("logs:CreateLogGroup", LOG_GROUP, group_arn(ctx, ctx.param("logGroupName") or ""), request_tags=dict(tags))]


@operation("logs", "DescribeLogGroups", grant("logs:DescribeLogGroups"))
def describe_log_groups(ctx: Ctx):
    return [ctx.check("logs:DescribeLogGroups", None)]


def _on_arn(ctx: Ctx, action: str, **kwargs):
    arn = ctx.param("resourceArn") or ""
    name = _group_name(arn)
    tags = resources.log_group_tags(ctx.account, ctx.region, name) if name is not None else {}
    return ctx.check(action, LOG_GROUP, arn[:-2] if arn.endswith(":*") else arn, resource_tags=tags, **kwargs)


@operation("logs", "TagResource", grant("logs:TagResource", LOG_GROUP, *RESOURCE_TAG, *TAG_KEYS))
def tag_resource(ctx: Ctx):
    return [_on_arn(ctx, "logs:TagResource", request_tags=dict(ctx.param("tags") or {}))]


@operation("logs", "UntagResource", grant("logs:UntagResource", LOG_GROUP, *RESOURCE_TAG, "aws:TagKeys"))
def untag_resource(ctx: Ctx):
    return [_on_arn(ctx, "logs:UntagResource", keys={"aws:TagKeys": ctx.param("tagKeys") or []})]


@operation("logs", "ListTagsForResource", grant("logs:ListTagsForResource", LOG_GROUP, *RESOURCE_TAG))
def list_tags_for_resource(ctx: Ctx):
    return [_on_arn(ctx, "logs:ListTagsForResource")]
