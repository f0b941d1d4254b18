"""Replay's ledger: books each replayed decision and release into an in-memory ledger, in event
order, so later launches see the compute earlier ones left running, and records each owner's peak.
"""

from __future__ import annotations

import time
from typing import Any

from enforcer.ledger.owners import delta_of
from enforcer.ledger.release import release_event
from enforcer.ledger.store import LocalLedgerStore
from enforcer.model import Decision


class LedgerBook:
    """What the ledger would have held over a history of events."""

    def __init__(self, ledger: LocalLedgerStore) -> None:
        self.ledger = ledger
        self.peaks: dict[str, float] = {}
        self.crossings: dict[str, int] = {}
        self.released = 0

    def book(self, decision: Decision) -> None:
        """Add a replayed decision's launch; note each owner's running TPP after it."""
        doc = decision.input or {}
        tpp = float((doc.get("request") or {}).get("total_tpp") or 0.0)
        crossed = "AGGREGATE_COMPUTE" in decision.reason_codes
        for o in (doc.get("ledger") or {}).get("owners", []):
            key = f"{o['kind']}:{o['owner']}"
            self.peaks[key] = max(self.peaks.get(key, 0.0), float(o.get("running_tpp") or 0.0) + tpp)
            if crossed:
                self.crossings[key] = self.crossings.get(key, 0) + 1
        self.ledger.apply(delta_of(decision))

    def release(self, event: Any, now: float | None) -> None:
        """Take a stop/terminate/completion event's resource off the ledger."""
        if release_event(self.ledger, event, time.time() if now is None else now) is not None:
            self.released += 1

    def rows(self, now: float) -> list[dict[str, Any]]:
        """The ledger's owners with their peak running TPP and AGGREGATE_COMPUTE decisions."""
        out = []
        for row in self.ledger.owners(now):
            key = f"{row['kind']}:{row['owner']}"
            out.append({**row, "peak_running_tpp": round(self.peaks.get(key, 0.0), 1),
                        "aggregate_compute": self.crossings.get(key, 0)})  # fmt: skip
        return sorted(out, key=lambda r: (-r["peak_running_tpp"], r["kind"], r["owner"]))
