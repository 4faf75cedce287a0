"""Fault injection for the emulator: deterministic, switchable misbehaviour of the API.

Sits between the HTTP front of the emulator (`app.py`) and its handlers. For every request
under `/v1`, the app asks `Faults.decide()` which faults to play; the handlers and the
response wrapper then act on that `Decision`. The emulator's command line (`command.py`),
the embedded server (`server.py`) and the admin endpoints (`PUT /_emulator/faults`) build
and change `Faults` objects; tests use them to check how a client copes with a flaky API.

Random decisions come from `random.Random(seed)`, rolled in a fixed order for every
request, so the same seed and the same sequence of requests give the same faults.
A scripted schedule of `FaultRule`s takes precedence over the random rates: the next
requests that match a rule get its fault, `times` times.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

RATE_LIMIT = "rate_limit"
FAIL_BEFORE_COMMIT = "fail_before_commit"
FAIL_AFTER_COMMIT = "fail_after_commit"
DROP_AFTER_COMMIT = "drop_after_commit"
SLOW_VISIBILITY = "slow_visibility"
DELETION_FAILS = "deletion_fails"
SECRET_DROPPED = "secret_dropped"
ROTATION_FAILS = "rotation_fails"
SLOW_INVOICE = "slow_invoice"
RECEIVE_FAILS = "receive_fails"
RECEIVE_FEE_REFUSED = "receive_fee_refused"

FAULT_KINDS = (
    RATE_LIMIT,
    FAIL_BEFORE_COMMIT,
    FAIL_AFTER_COMMIT,
    DROP_AFTER_COMMIT,
    SLOW_VISIBILITY,
    DELETION_FAILS,
    SECRET_DROPPED,
    ROTATION_FAILS,
    SLOW_INVOICE,
    RECEIVE_FAILS,
    RECEIVE_FEE_REFUSED,
)
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})

# The operations the operation-specific faults apply to (paths after /v1).
_UUID = r"[^/]+"
_WEBHOOK_CREATE = re.compile(rf"^/organizations/{_UUID}/environments/{_UUID}/webhooks/?$")
_WEBHOOK_ROTATE = re.compile(
    rf"^/organizations/{_UUID}/environments/{_UUID}/webhooks/{_UUID}/keys/?$"
)
_PAYMENT_CREATE = re.compile(rf"^/organizations/{_UUID}/environments/{_UUID}/payments/?$")


def is_secret_call(method: str, path: str) -> bool:
    """A call whose answer carries a webhook's shared secret (create, key rotation)."""
    return method == "POST" and bool(_WEBHOOK_CREATE.match(path) or _WEBHOOK_ROTATE.match(path))


def is_rotation(method: str, path: str) -> bool:
    return method == "POST" and bool(_WEBHOOK_ROTATE.match(path))


def is_payment_create(method: str, path: str) -> bool:
    return method == "POST" and bool(_PAYMENT_CREATE.match(path))


@dataclass
class FaultRule:
    """Play `fault` on the next `times` requests whose method and path match.

    `method` is an HTTP method or `None`/"*" for any; `path_contains` is a substring of
    the request path (empty matches every path).
    """

    fault: str
    method: str | None = None
    path_contains: str = ""
    times: int = 1

    def __post_init__(self) -> None:
        if self.fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {', '.join(FAULT_KINDS)}")
        if self.method is not None:
            self.method = self.method.upper()
            if self.method == "*":
                self.method = None
        if not isinstance(self.times, int) or isinstance(self.times, bool) or self.times < 1:
            raise ValueError("a fault rule's times must be an integer >= 1")

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path_contains in path

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "method": self.method,
            "path_contains": self.path_contains,
            "times": self.times,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        if not isinstance(data, Mapping):
            raise ValueError("a fault rule must be an object")
        known = {"fault", "method", "path_contains", "times"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {', '.join(unknown)}")
        if "fault" not in data:
            raise ValueError("a fault rule needs a 'fault'")
        return cls(
            fault=str(data["fault"]),
            method=data.get("method"),
            path_contains=str(data.get("path_contains") or ""),
            times=data.get("times", 1),
        )


@dataclass(frozen=True)
class Decision:
    """The faults to play on one request."""

    rate_limited: bool = False
    fail_before_commit: bool = False
    fail_after_commit: bool = False
    drop_after_commit: bool = False
    slow_visibility: bool = False
    deletion_fails: bool = False
    latency_ms: int = 0
    extra_visibility: float = 0.0  # seconds added to the visibility delay of this write
    retry_after_ms: int = 0
    slow_invoice: float = 0.0  # seconds added before a receive's invoice appears
    receive_fails: bool = False
    receive_fee_refused: bool = False


_RATE_FIELDS = (
    "rate_limit",
    "fail_before_commit",
    "fail_after_commit",
    "drop_after_commit",
    "slow_visibility",
    "deletion_fails",
)
# Rolled from a second random sequence, so adding them kept the sequence of the first.
_OPERATION_RATE_FIELDS = (
    "secret_dropped",
    "rotation_fails",
    "slow_invoice",
    "receive_fails",
    "receive_fee_refused",
)


@dataclass
class Faults:
    """The fault configuration of one running emulator (all rates are shares in 0..1).

    - `latency_ms`: added to every API request (awaited, so other requests proceed).
    - `visibility_delay`: seconds before an accepted write shows in reads.
    - `slow_visibility`: share of writes that take `slow_visibility_seconds` longer.
    - `fail_before_commit`: share of writes answered 500 without being done.
    - `fail_after_commit`: share of writes done, then answered 500.
    - `drop_after_commit`: share of writes done, then answered with a cut-off response.
    - `rate_limit`: share of requests (reads too) answered 429 without being done.
    - `deletion_fails`: share of deletes accepted that later fail (`deletion_failed_at`).
    - `secret_dropped`: share of webhook creates and key rotations done, then answered
      with a cut-off response (the client never sees the shared secret).
    - `rotation_fails`: share of key rotations answered 500 without being done.
    - `slow_invoice`: share of receive payments whose invoice appears
      `slow_invoice_seconds` later than usual (the payment stays `generating`).
    - `receive_fails`: share of receive payments that fail before an invoice exists.
    - `receive_fee_refused`: share of receive payments refused asynchronously as if a
      nonzero receive processing fee applied to an any-amount invoice.
    - `invoice_delay`: seconds from a receive becoming visible to its invoice.
    - `seed`: seed of the random decisions (`None`: a fresh random seed).
    - `schedule`: scripted rules, played before any random decision.
    """

    latency_ms: int = 0
    visibility_delay: float = 0.2
    slow_visibility: float = 0.0
    slow_visibility_seconds: float = 2.0
    fail_before_commit: float = 0.0
    fail_after_commit: float = 0.0
    drop_after_commit: float = 0.0
    rate_limit: float = 0.0
    retry_after_ms: int = 1000
    deletion_fails: float = 0.0
    secret_dropped: float = 0.0
    rotation_fails: float = 0.0
    slow_invoice: float = 0.0
    slow_invoice_seconds: float = 2.0
    receive_fails: float = 0.0
    receive_fee_refused: float = 0.0
    invoice_delay: float = 0.0
    seed: int | None = None
    schedule: list[FaultRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._validate()
        self._reseed()

    def _reseed(self) -> None:
        self._rng = random.Random(self.seed)
        self._rng_ops = random.Random(None if self.seed is None else f"{self.seed}/operations")

    def _validate(self) -> None:
        for name in _RATE_FIELDS + _OPERATION_RATE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number between 0 and 1")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in ("latency_ms", "retry_after_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0")
        for name in (
            "visibility_delay",
            "slow_visibility_seconds",
            "slow_invoice_seconds",
            "invoice_delay",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError("seed must be an integer")
        # Own copies of the rules: playing a rule counts its `times` down.
        self.schedule = [
            FaultRule.from_dict(rule.to_dict() if isinstance(rule, FaultRule) else rule)
            for rule in self.schedule
        ]

    # --- run-time changes -------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Change some settings in place; a new `seed` restarts the random sequence.

        Raises ValueError (and changes nothing) on an unknown name or a bad value.
        """
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        with self._lock:
            before = {name: getattr(self, name) for name in names}
            for name, value in changes.items():
                setattr(self, name, list(value) if name == "schedule" else value)
            try:
                self._validate()
            except ValueError:
                for name, value in before.items():
                    setattr(self, name, value)
                raise
            if "seed" in changes:
                self._reseed()

    def replace(self, other: Faults) -> None:
        """Take every setting of `other` (and restart the random sequence from its seed)."""
        self.update(**{f.name: getattr(other, f.name) for f in fields(other)})
        with self._lock:
            self._reseed()

    def add_rule(
        self, fault: str, *, method: str | None = None, path_contains: str = "", times: int = 1
    ) -> None:
        """Script `fault` for the next `times` requests matching method and path."""
        rule = FaultRule(fault=fault, method=method, path_contains=path_contains, times=times)
        with self._lock:
            self.schedule.append(rule)

    def clear(self) -> None:
        """Switch every fault off (keeps the visibility delay and the seed)."""
        rates = dict.fromkeys(_RATE_FIELDS + _OPERATION_RATE_FIELDS, 0.0)
        self.update(latency_ms=0, schedule=[], **rates)

    # --- serialisation (admin endpoints, command line) ---------------------------------

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "schedule"}
            data["schedule"] = [rule.to_dict() for rule in self.schedule]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build from a JSON object; unknown keys and bad values raise ValueError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values = dict(data)
        if "schedule" in values:
            schedule = values["schedule"]
            if not isinstance(schedule, list):
                raise ValueError("schedule must be a list of rules")
            values["schedule"] = [
                rule if isinstance(rule, FaultRule) else FaultRule.from_dict(rule)
                for rule in schedule
            ]
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - names are checked above
            raise ValueError(str(exc)) from None

    # --- decisions ----------------------------------------------------------------------

    def decide(self, method: str, path: str) -> Decision:
        """The faults for one API request. Consumes a scripted rule or random rolls."""
        method = method.upper()
        is_write = method in WRITE_METHODS
        with self._lock:
            for rule in self.schedule:
                if rule.matches(method, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self.schedule.remove(rule)
                    return self._scripted(rule.fault, is_write, method, path)
            # Fixed order of rolls, always all of them, so one seed gives one sequence.
            rolls = {name: self._rng.random() for name in _RATE_FIELDS}
            rolls.update({name: self._rng_ops.random() for name in _OPERATION_RATE_FIELDS})
            hit = {name: rolls[name] < getattr(self, name) for name in rolls}
            slow = is_write and hit["slow_visibility"]
            secret = is_secret_call(method, path)
            rotation = is_rotation(method, path)
            payment = is_payment_create(method, path)
            return Decision(
                rate_limited=hit["rate_limit"],
                fail_before_commit=(is_write and hit["fail_before_commit"])
                or (rotation and hit["rotation_fails"]),
                fail_after_commit=is_write and hit["fail_after_commit"],
                drop_after_commit=(is_write and hit["drop_after_commit"])
                or (secret and hit["secret_dropped"]),
                slow_visibility=slow,
                deletion_fails=method == "DELETE" and hit["deletion_fails"],
                latency_ms=self.latency_ms,
                extra_visibility=self.slow_visibility_seconds if slow else 0.0,
                retry_after_ms=self.retry_after_ms,
                slow_invoice=self.slow_invoice_seconds if payment and hit["slow_invoice"] else 0.0,
                receive_fails=payment and hit["receive_fails"],
                receive_fee_refused=payment and hit["receive_fee_refused"],
            )

    def _scripted(self, fault: str, is_write: bool, method: str, path: str) -> Decision:
        slow = fault == SLOW_VISIBILITY
        payment = is_payment_create(method, path)
        return Decision(
            rate_limited=fault == RATE_LIMIT,
            fail_before_commit=fault == FAIL_BEFORE_COMMIT
            or (fault == ROTATION_FAILS and is_rotation(method, path)),
            fail_after_commit=fault == FAIL_AFTER_COMMIT,
            drop_after_commit=fault == DROP_AFTER_COMMIT
            or (fault == SECRET_DROPPED and is_secret_call(method, path)),
            slow_visibility=slow,
            deletion_fails=fault == DELETION_FAILS and method == "DELETE",
            latency_ms=self.latency_ms,
            extra_visibility=self.slow_visibility_seconds if slow else 0.0,
            retry_after_ms=self.retry_after_ms,
            slow_invoice=self.slow_invoice_seconds if fault == SLOW_INVOICE and payment else 0.0,
            receive_fails=fault == RECEIVE_FAILS and payment,
            receive_fee_refused=fault == RECEIVE_FEE_REFUSED and payment,
        )

    def base_visibility_delay(self) -> float:
        with self._lock:
            return float(self.visibility_delay)

    def base_invoice_delay(self) -> float:
        with self._lock:
            return float(self.invoice_delay)
