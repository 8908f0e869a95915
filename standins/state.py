"""The stand-ins' memory: records of every effect, the Idempotency-Key ledger and the active faults.

One lock guards all of it. Effects are plain synchronous functions run under the lock, so a
replay check, the effect and the ledger entry are one atomic step even under concurrent calls.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

RecordKind = Literal[
    "bookings",
    "invoices",
    "customers",
    "purchases",
    "notifications",
    "shortages",
    "return_labels",
    "refunds",
    "purchase_requests",
]
RECORD_KINDS: tuple[RecordKind, ...] = (
    "bookings",
    "invoices",
    "customers",
    "purchases",
    "notifications",
    "shortages",
    "return_labels",
    "refunds",
    "purchase_requests",
)

Service = Literal["carrier", "finance", "crm", "notifications", "purchasing"]
PROVIDER_SERVICES: frozenset[str] = frozenset({"carrier", "finance", "crm", "notifications", "purchasing"})


class ProviderError(Exception):
    """A refusal answered as {"error": code, "detail": ...} with the given status."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(f"{status} {error}")
        self.status = status
        self.error = error
        self.detail = detail


@dataclass(frozen=True)
class Outcome:
    """What a mutating call answered; replayed as is for a repeated Idempotency-Key."""

    status: int
    body: dict[str, Any]

    @classmethod
    def refusal(cls, status: int, error: str, detail: Any = None) -> Outcome:
        return cls(status, {"error": error, "detail": detail})


class Fault(BaseModel):
    service: Service | Literal["*"]
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # What a failure answers: 503 (unavailable, to be tried again), or a 4xx refusal.
    failure_status: int = Field(default=503, ge=400, le=599)
    drop_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # A drop after the effect loses the answer of a call that did happen, the hard case for idempotency.
    drop_after_effect: bool = False
    # A share of calls held up by a further spike_ms on top of latency_ms, as a provider under load does.
    spike_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    spike_ms: int = Field(default=1000, ge=0, le=60_000)


FaultKind = Literal["failure", "drop", "spike"]


@dataclass(frozen=True)
class _LedgerEntry:
    fingerprint: str
    outcome: Outcome


class Store:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in RECORD_KINDS}
        self._ledger: dict[str, _LedgerEntry] = {}
        self._applied: Counter[str] = Counter()
        self._faults: dict[str, Fault] = {}
        self._struck: Counter[tuple[str, str]] = Counter()

    # Idempotency

    def once(self, key: str, fingerprint: str, effect: Callable[[], Outcome]) -> Outcome:
        """Apply `effect` the first time `key` is seen; answer a repeat with the first outcome."""
        with self._lock:
            entry = self._ledger.get(key)
            if entry is not None:
                if entry.fingerprint != fingerprint:
                    return Outcome.refusal(
                        422, "idempotency_key_reused", "this Idempotency-Key was used with a different request"
                    )
                return entry.outcome
            outcome = effect()
            self._applied[key] += 1
            self._ledger[key] = _LedgerEntry(fingerprint, outcome)
            return outcome

    # Records

    def put(self, kind: RecordKind, record_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records[kind][record_id] = record

    def get(self, kind: RecordKind, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records[kind].get(record_id)
            return copy.deepcopy(record) if record is not None else None

    def update(self, kind: RecordKind, record_id: str, change: Callable[[dict[str, Any]], Outcome]) -> Outcome:
        """Run `change` on the live record under the lock; 404 when there is none."""
        with self._lock:
            record = self._records[kind].get(record_id)
            if record is None:
                return Outcome.refusal(404, "not_found", f"no such {kind[:-1]}: {record_id}")
            return change(record)

    def items(self, kind: RecordKind) -> list[dict[str, Any]]:
        """Every record of a kind, each with `applied` = how often the effect of its key was applied."""
        with self._lock:
            items = copy.deepcopy(list(self._records[kind].values()))
            for item in items:
                item["applied"] = self._applied[item["idempotency_key"]]
                for step in item.get("history", []):
                    step["applied"] = self._applied[step["idempotency_key"]]
            return items

    # Faults

    def set_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults[fault.service] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def fault_for(self, service: str) -> Fault | None:
        with self._lock:
            return self._faults.get(service) or self._faults.get("*")

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults.values())

    def count_strike(self, service: str, kind: FaultKind) -> None:
        with self._lock:
            self._struck[(service, kind)] += 1

    def strikes(self) -> dict[str, dict[str, int]]:
        """How often each kind of fault struck each service since the last reset, e.g. {"finance": {"failure": 3}}."""
        with self._lock:
            counts: dict[str, dict[str, int]] = {}
            for (service, kind), count in sorted(self._struck.items()):
                counts.setdefault(service, {})[kind] = count
            return counts

    def reset(self) -> None:
        with self._lock:
            for records in self._records.values():
                records.clear()
            self._ledger.clear()
            self._applied.clear()
            self._faults.clear()
            self._struck.clear()
