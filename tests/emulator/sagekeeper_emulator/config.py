"""Per-account behaviour settings: how long AWS's transitional states last.

moto makes everything terminal at once (domains InService, endpoints InService,
pipeline runs Succeeded) and IAM changes visible at once. Real AWS takes
minutes and IAM is eventually consistent. Tests choose, per account, how long
each transitional state lasts; 0 (the default) keeps moto's instant behaviour.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields


@dataclass
class AccountConfig:
    """Durations in seconds; pipelineExecutionSeconds None = Executing until told."""

    domainPendingSeconds: float = 0
    endpointCreatingSeconds: float = 0
    endpointUpdatingSeconds: float = 0
    endpointDeletingSeconds: float = 0
    pipelineExecutionSeconds: float | None = 0
    iamPropagationSeconds: float = 0
    # An interface VPC endpoint is `pending` this long before `available` (gateways: at once).
    vpcEndpointPendingSeconds: float = 0
    # Every call of the account waits this long before it is served (AWS's round trip).
    callLatencySeconds: float = 0


_FIELDS = {f.name for f in fields(AccountConfig)}


class ConfigRegistry:
    """Settings by account id, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountConfig] = {}

    def get(self, account: str) -> AccountConfig:
        with self._lock:
            return self._accounts.get(account, AccountConfig())

    def update(self, account: str, changes: dict) -> AccountConfig:
        """Apply a subset of settings; raises ValueError naming a bad key or value."""
        unknown = set(changes) - _FIELDS
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        clean = {name: _duration(name, value) for name, value in changes.items()}
        with self._lock:
            config = AccountConfig(**{**asdict(self._accounts.get(account, AccountConfig())), **clean})
            self._accounts[account] = config
            return config

    def clear(self) -> None:
        with self._lock:
            self._accounts.clear()


def _duration(name: str, value) -> float | None:
    if name == "pipelineExecutionSeconds" and (value is None or _number(value) and value < 0):
        return None
    if not _number(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    return float(value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def as_json(account: str, config: AccountConfig) -> dict:
    """The settings as the control API returns them."""
    return {"account": account, **asdict(config)}


registry = ConfigRegistry()
