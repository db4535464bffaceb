"""The call log: every AWS request that reached the emulator, in order.

AWS has CloudTrail; moto has nothing comparable in server mode (its recorder
replays requests, it does not attribute them). Tests read this log to assert
what the controller did: which operations, in which account, with what result,
and that a converged drift check made no write call.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone


class CallLog:
    """Append-only list of calls, thread-safe, filterable by account and service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict] = []

    def record(
        self, account: str, caller: str, service: str, operation: str, status: int, verdict: dict | None = None
    ) -> None:
        entry = {
            "account": account,
            "caller": caller,
            "service": service,
            "operation": operation,
            "status": status,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            **(verdict or {}),
        }
        with self._lock:
            self._calls.append(entry)

    def list(self, account: str | None = None, service: str | None = None) -> list[dict]:
        with self._lock:
            return [c for c in self._calls if _selected(c, account, service)]

    def clear(self, account: str | None = None) -> int:
        """Forget the calls of one account (all if None); returns how many."""
        with self._lock:
            kept = [c for c in self._calls if not _selected(c, account, None)]
            removed = len(self._calls) - len(kept)
            self._calls = kept
            return removed


def _selected(call: dict, account: str | None, service: str | None) -> bool:
    return account in (None, call["account"]) and service in (None, call["service"])


log = CallLog()
