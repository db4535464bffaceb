"""Shared machinery of the SageMaker extension: handlers, state, lazy state changes.

moto dispatches a SageMaker request to the method of SageMakerResponse named
after the action (CreateUserProfile -> create_user_profile). Handlers here are
plain functions of a `Call`, registered under that name: new operations are
added, existing ones replaced (the replaced moto method stays reachable as
`call.original()`). Every SageMaker request runs under one lock, after the
state changes that have come due for its account and region were applied
(Pending -> InService and the like), so Describe and List always show the
status for "now" and check-then-act sequences are atomic.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Callable

from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

from .. import config

LOCK = threading.RLock()
Scope = tuple[str, str]  # (account, region)
_handlers: dict[str, Callable[["Call"], Any]] = {}
_tables: defaultdict[tuple, dict] = defaultdict(dict)


class Call:
    """One SageMaker request, as an extension handler sees it."""

    def __init__(self, response: SageMakerResponse, original: Callable | None):
        self.response = response
        self._original = original

    @property
    def scope(self) -> Scope:
        return (self.response.current_account, self.response.region)

    @property
    def backend(self) -> SageMakerModelBackend:
        return self.response.sagemaker_backend

    @property
    def config(self) -> config.AccountConfig:
        return config.registry.get(self.response.current_account)

    def param(self, name: str, default: Any = None) -> Any:
        return self.response._get_param(name, default)

    def arn(self, kind: str, resource_id: str) -> str:
        account, region = self.scope
        return arn_formatter(kind, resource_id, account, region)

    def original(self) -> Any:
        """moto's own implementation of this operation."""
        return self._original(self.response)


def operation(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
    """Register fn as the handler of the SageMaker action named like it (snake_case)."""
    _handlers[fn.__name__] = fn
    return fn


def table(kind: str, *scope: str) -> dict:
    """The extension's own records of one kind in one scope, e.g. table("app", *call.scope)."""
    return _tables[(kind, *scope)]


class Timeline:
    """State changes due at a given time, applied lazily when their scope is next read."""

    def __init__(self) -> None:
        self._pending: defaultdict[Scope, dict[str, tuple[datetime, Callable]]] = defaultdict(dict)

    def schedule(self, scope: Scope, key: str, seconds: float, apply: Callable[[datetime], None]) -> None:
        """Run apply(due_time) `seconds` from now (replacing what was pending for key);
        at once if seconds <= 0."""
        due = utcnow() + timedelta(seconds=seconds)
        self._pending[scope].pop(key, None)
        if seconds <= 0:
            apply(due)
        else:
            self._pending[scope][key] = (due, apply)

    def cancel(self, scope: Scope, key: str) -> None:
        self._pending[scope].pop(key, None)

    def settle(self, scope: Scope) -> None:
        now, pending = utcnow(), self._pending[scope]
        for key, (due, apply) in sorted(pending.items(), key=lambda item: item[1][0]):
            if due <= now:
                del pending[key]
                apply(due)

    def clear(self) -> None:
        self._pending.clear()


timeline = Timeline()


def backend_of(arn: str) -> SageMakerModelBackend:
    """The backend owning a SageMaker ARN (arn:aws:sagemaker:<region>:<account>:...)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "sagemaker":
        raise ValidationError(f"Invalid ARN: {arn}")
    return sagemaker_backends[parts[4]][parts[3]]


def merged(base: dict | None, update: dict | None) -> dict:
    """AWS's update semantics for settings: nested structures merge, values replace."""
    result = copy.deepcopy(base or {})
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def listing(call: Call, items: list[dict], key: str, sort_fields: dict[str, str] | None = None) -> dict:
    """A List* response: sorted as requested (newest first by default), one page.
    `sort_fields` maps a SortBy value to the item field it sorts on, when they differ
    (SortBy "Name" sorts on "ModelName")."""
    sort_by = call.param("SortBy") or "CreationTime"
    field = (sort_fields or {}).get(sort_by, sort_by)
    items = sorted(
        items,
        key=lambda item: item.get(field) or "",
        reverse=(call.param("SortOrder") or "Descending") == "Descending",
    )
    try:
        start = int(call.param("NextToken") or 0)
    except ValueError:
        raise ValidationError("Invalid pagination token")
    size = call.param("MaxResults") or 100
    result: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        result["NextToken"] = str(start + size)
    return result


def _bind(name: str, handler: Callable[[Call], Any]) -> Callable:
    original = getattr(SageMakerResponse, name, None)

    @functools.wraps(handler)
    def method(self: SageMakerResponse):
        result = handler(Call(self, original))
        return result if isinstance(result, ActionResult) else ActionResult(result or {})

    return method


def _call_action(self: SageMakerResponse):
    with LOCK:
        timeline.settle((self.current_account, self.region))
        return BaseResponse.call_action(self)


def reset() -> None:
    """Forget all extension state (moto's own state is reset by moto)."""
    with LOCK:
        timeline.clear()
        _tables.clear()


def install() -> None:
    """Attach the registered handlers and the locked, settling dispatch to moto."""
    for name, handler in _handlers.items():
        setattr(SageMakerResponse, name, _bind(name, handler))
    SageMakerResponse.call_action = _call_action
