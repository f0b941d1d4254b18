"""The local ledger (``STATE/ledger/ledger.json``, or in memory for replay).

One JSON document: ``owners`` (owner key -> counters and label), ``allocs`` (resource -> what it
counts for, until released) and ``calls`` (account -> hour -> country -> calls). Writes hold an
exclusive ``fcntl`` lock on a sidecar file and replace the document atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from enforcer.ledger.figures import Allocation, Delta, Figures

#: Hour buckets of call counts kept per account (older ones are dropped on write).
KEEP_HOURS = 24 * 7


class LedgerStore(Protocol):
    """What the pipeline, the audit wrapper and the release path need from a ledger backend."""

    def read(
        self, owner_keys: list[str], account_id: str, now: float, window_hours: int
    ) -> tuple[dict[str, Figures], dict[str, int]]:
        """Counters of ``owner_keys`` and the account's calls per country over the window."""
        ...

    def apply(self, delta: Delta) -> None:
        """Add a logged decision's allocations and call."""
        ...

    def release(self, resource: str, when: float) -> Allocation | None:
        """Take a resource's compute off its owners' running figures (None: not in the ledger)."""
        ...


def _figures(d: dict[str, Any] | None) -> Figures:
    d = d or {}
    return Figures(
        float(d.get("running", 0.0)),
        float(d.get("offset", 0.0)),
        float(d.get("cumulative", 0.0)),
        int(d.get("launches", 0)),
    )


class LocalLedgerStore:
    """The ledger in one JSON file; ``path=None`` keeps it in memory (replay's what-if ledger)."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._doc: dict[str, Any] = {"owners": {}, "allocs": {}, "calls": {}}
        self._mtime = -1.0

    # -- file handling ------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return self._doc
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._doc, self._mtime = {"owners": {}, "allocs": {}, "calls": {}}, -1.0
            return self._doc
        if mtime != self._mtime:
            doc = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            self._doc = {k: dict(doc.get(k) or {}) for k in ("owners", "allocs", "calls")}
            self._mtime = mtime
        return self._doc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        if self.path is None:
            yield self._doc
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._mtime = -1.0
            doc = self._load()
            yield doc
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".ledger-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, sort_keys=True)
            os.replace(tmp, self.path)

    # -- the protocol -------------------------------------------------------------------------
    def read(
        self, owner_keys: list[str], account_id: str, now: float, window_hours: int
    ) -> tuple[dict[str, Figures], dict[str, int]]:
        doc = self._load()
        figs = {k: _figures(doc["owners"].get(k)) for k in owner_keys}
        hour = int(now // 3600)
        calls: dict[str, int] = {}
        for h, counts in (doc["calls"].get(account_id) or {}).items():
            if hour - window_hours < int(h) <= hour:
                for cc, n in counts.items():
                    calls[cc] = calls.get(cc, 0) + int(n)
        return figs, calls

    def apply(self, delta: Delta) -> None:
        if delta.empty:
            return
        with self._locked() as doc:
            for a in delta.allocations:
                if a.resource in doc["allocs"]:
                    continue  # counted once, however often the launch is seen
                doc["allocs"][a.resource] = a.to_dict()
                for key in a.owners:
                    o = doc["owners"].setdefault(
                        key, {"running": 0.0, "offset": 0.0, "cumulative": 0.0, "launches": 0}
                    )
                    o["running"] += a.tpp
                    o["offset"] += a.tpp * a.start
                    o["cumulative"] += a.tpp
                    o["launches"] += 1
                    if key in delta.labels:
                        o["label"] = delta.labels[key]
            if delta.country is not None:
                hours = doc["calls"].setdefault(delta.account_id, {})
                bucket = hours.setdefault(str(delta.hour), {})
                bucket[delta.country] = bucket.get(delta.country, 0) + 1
                for h in [h for h in hours if int(h) <= delta.hour - KEEP_HOURS]:
                    del hours[h]

    def release(self, resource: str, when: float) -> Allocation | None:
        with self._locked() as doc:
            raw = doc["allocs"].pop(resource, None)
            if raw is None:
                return None
            a = Allocation.from_dict(raw)
            end = max(when, a.start)
            for key in a.owners:
                o = doc["owners"].get(key)
                if o is not None:
                    o["running"] = round(o["running"] - a.tpp, 3)
                    o["offset"] -= a.tpp * end
            return a

    def owners(self, now: float, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every owner as the policy would see it (``ledger show``), largest running TPP first."""
        doc = self._load()
        out = []
        for key, raw in doc["owners"].items():
            kind, _, owner = key.partition(":")
            if prefix and not (key.startswith(prefix) or owner.startswith(prefix)):
                continue
            out.append(_figures(raw).to_policy(kind, owner, now, raw.get("label")))
        return sorted(out, key=lambda o: (-o["running_tpp"], -o["tpp_hours"], o["kind"], o["owner"]))
