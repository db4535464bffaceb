"""Injected faults: make chosen AWS calls fail with a chosen AWS error.

moto has no error or throttling injection. A fault names an operation (or "*"),
optionally a service, a caller account (or a list of `accounts`) and a substring
of the request; matching requests are answered with the error before moto sees
them. `count` limits how often it fires, `probability` makes it fire for a share
of calls (throttling). `armAfter` (operation globs joined by `|`, e.g.
`Create*|AllocateAddress`) keeps a fault dormant until one such call succeeds in
one of its accounts: "everything fails right after the next create", which is how
tests abort a reconcile after each create in turn. `stallSeconds` holds a matching
request that long before answering it with the error: a service that stops
answering, which is how tests prove every AWS call has a time limit.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import threading
from dataclasses import asdict, dataclass

from .protocol import AwsRequest


@dataclass
class Fault:
    """One registered fault, as posted to the control API."""

    id: str
    operation: str
    code: str
    message: str
    httpStatus: int
    service: str | None
    account: str | None
    match: str | None
    count: int | None
    probability: float
    accounts: list[str] | None = None
    armAfter: str | None = None
    stallSeconds: float = 0.0
    armed: bool = True
    armedBy: str | None = None
    hits: int = 0

    def in_accounts(self, account: str) -> bool:
        return self.account in (None, account) and (self.accounts is None or account in self.accounts)

    def matches(self, request: AwsRequest, account: str) -> bool:
        return (
            self.armed
            and self.operation in ("*", request.operation)
            and self.service in (None, request.service)
            and self.in_accounts(account)
            and (self.match is None or self.match in request.text())
        )

    def arms_on(self, operation: str, account: str) -> bool:
        return (
            not self.armed
            and self.in_accounts(account)
            and any(fnmatch.fnmatchcase(operation, glob) for glob in (self.armAfter or "").split("|") if glob)
        )


def parse_fault(spec: dict, fault_id: str) -> Fault:
    """Validate a control-API fault spec; raises ValueError naming the problem."""
    operation, code = spec.get("operation"), spec.get("code")
    if not isinstance(operation, str) or not operation:
        raise ValueError("operation is required")
    if not isinstance(code, str) or not code:
        raise ValueError("code is required")
    count, probability = spec.get("count"), spec.get("probability", 1.0)
    status = spec.get("httpStatus", 400)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be an integer >= 1")
    if not isinstance(probability, (int, float)) or not 0 <= probability <= 1:
        raise ValueError("probability must be between 0 and 1")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError("httpStatus must be an HTTP error status")
    stall = spec.get("stallSeconds", 0)
    if not isinstance(stall, (int, float)) or not 0 <= stall <= 3600:
        raise ValueError("stallSeconds must be between 0 and 3600")
    for name in ("service", "account", "match", "message", "armAfter"):
        if spec.get(name) is not None and not isinstance(spec[name], str):
            raise ValueError(f"{name} must be a string")
    accounts = spec.get("accounts")
    if accounts is not None and (not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts)):
        raise ValueError("accounts must be a list of account ids")
    return Fault(
        id=fault_id,
        operation=operation,
        code=code,
        message=spec.get("message") or code,
        httpStatus=status,
        service=spec.get("service"),
        account=spec.get("account"),
        match=spec.get("match"),
        count=count,
        probability=float(probability),
        accounts=accounts,
        armAfter=spec.get("armAfter"),
        stallSeconds=float(stall),
        armed=not spec.get("armAfter"),
    )


class FaultRegistry:
    """Registered faults in order; the first matching one fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)
        self._random = random.Random()

    def add(self, spec: dict) -> Fault:
        with self._lock:
            fault = parse_fault(spec, f"fault-{next(self._ids)}")
            self._faults[fault.id] = fault
            return fault

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            return self._faults.pop(fault_id, None) is not None

    def remove_account(self, account: str | None) -> int:
        """Remove the faults of one account (all faults if account is None)."""
        with self._lock:
            doomed = [f.id for f in self._faults.values() if account in (None, f.account)]
            for fault_id in doomed:
                del self._faults[fault_id]
            return len(doomed)

    def list(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults.values()]

    def fire(self, request: AwsRequest, account: str) -> Fault | None:
        """The fault that answers this request, if any (consuming one of its count)."""
        with self._lock:
            for fault in self._faults.values():
                if not fault.matches(request, account):
                    continue
                if self._random.random() >= fault.probability:
                    continue
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        del self._faults[fault.id]
                return fault
            return None

    def observe(self, operation: str, account: str, status: int) -> None:
        """Arms the dormant faults waiting for this (successful) call."""
        if status >= 400:
            return
        with self._lock:
            for fault in self._faults.values():
                if fault.arms_on(operation, account):
                    fault.armed, fault.armedBy = True, operation

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


registry = FaultRegistry()
