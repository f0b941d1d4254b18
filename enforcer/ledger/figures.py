"""Ledger arithmetic that needs no read before a write (DynamoDB ``ADD`` only).

Per owner: ``running`` (TPP running now), ``offset`` (sum of tpp x start - tpp x end over
allocations, seconds) and ``cumulative`` (TPP ever launched). TPP-seconds up to ``now`` are
``running * now - offset``: a launch at ``s`` adds ``tpp`` to running and ``tpp * s`` to offset, a
release at ``e`` subtracts ``tpp`` and ``tpp * e``. Both are additions, so concurrent writers commute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OWNER_KINDS = ("account", "end_customer", "parent", "reseller")


@dataclass(slots=True)
class Figures:
    """One owner's counters."""

    running: float = 0.0
    offset: float = 0.0
    cumulative: float = 0.0
    launches: int = 0

    def tpp_hours(self, now: float) -> float:
        return max(0.0, (self.running * now - self.offset) / 3600.0)

    def to_policy(self, kind: str, owner: str, now: float, label: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": kind,
            "owner": owner,
            "running_tpp": round(max(self.running, 0.0), 1),
            "tpp_hours": round(self.tpp_hours(now), 1),
            "cumulative_tpp": round(self.cumulative, 1),
            "launches": self.launches,
        }
        if label:
            doc["label"] = label
        return doc


@dataclass(slots=True)
class Allocation:
    """What one running resource (an instance, a managed job) counts for, to release it later."""

    resource: str
    tpp: float
    start: float
    owners: list[str] = field(default_factory=list)
    account_id: str = ""
    region: str = ""
    decision_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "tpp": self.tpp,
            "start": self.start,
            "owners": list(self.owners),
            "account_id": self.account_id,
            "region": self.region,
            "decision_id": self.decision_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Allocation:
        return cls(
            resource=str(d["resource"]),
            tpp=float(d["tpp"]),
            start=float(d["start"]),
            owners=[str(o) for o in d.get("owners", [])],
            account_id=str(d.get("account_id", "")),
            region=str(d.get("region", "")),
            decision_id=str(d.get("decision_id", "")),
        )


@dataclass(slots=True)
class Delta:
    """What one logged decision changes: allocations added (a launch) and calls counted per country."""

    allocations: list[Allocation] = field(default_factory=list)
    account_id: str = ""
    country: str | None = None
    hour: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.allocations and self.country is None
