"""Observed signals, screening and ledger figures for one decision, added to the policy input.

``Observer.observe`` is the one place the pipeline calls (``Enforcer.observer``). It adds:

* ``input.evidence``: ``caller`` (the CloudTrail ``sourceIPAddress`` and its MMDB country),
  ``contact`` (the account's contact-address country) and ``call_share`` (the account's recent
  calls per country), each with its ``source`` and ``time``;
* ``input.screening``: ``{status, list, hits}``, hits from the account name, the ultimate parent
  and every attested end-customer name and alias;
* ``input.ledger``: ``{owners: [{kind, owner, running_tpp, tpp_hours, cumulative_tpp}], ...}``.

Attested clear names (``end_customer.name``/``aliases``) are screened and then removed from the
input: the audit record keeps the hits (list entries are public) and ``name_screened: true``,
never the name. A failing signal is left out (counted); a failing screening list is reported as
``status: unavailable`` so the policy can audit it, never silently as "no hit".
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enforcer.evidence.contact import ContactCountries
from enforcer.evidence.geoip import GeoIp, parse_ip
from enforcer.evidence.names import strip_clear_names
from enforcer.ledger.owners import event_epoch, owners_of
from enforcer.ledger.store import LedgerStore
from enforcer.model import AccountOrigin, AttestationResult, LaunchRequest
from enforcer.screening.match import Screener

DEFAULT_WINDOW_HOURS = 24


def _when(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


class ScreeningSource:
    """The screener over a list file, reloaded when the file changes (None: no list loaded)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mtime: int | None = None
        self._screener: Screener | None = None

    def __call__(self) -> Screener | None:
        from enforcer.screening.store import open_screener

        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            self._mtime, self._screener = None, None
            return None
        if mtime != self._mtime:
            self._screener = open_screener(self.path)
            self._mtime = mtime
        return self._screener


@dataclass
class Observer:
    """Collects what the account does not control; every part is optional."""

    geoip: GeoIp | None = None
    contacts: ContactCountries | None = None
    screening: Callable[[], Screener | None] | None = None
    ledger: LedgerStore | None = None
    window_hours: int = DEFAULT_WINDOW_HOURS
    counters: Counter[str] = field(default_factory=Counter)

    def observe(
        self,
        request: LaunchRequest,
        origin: AccountOrigin | None,
        att: AttestationResult,
        doc: dict[str, Any],
        now: float,
    ) -> None:
        """Add ``evidence``, ``screening`` and ``ledger`` to the policy input ``doc`` in place."""
        when = _when(now)
        evidence: dict[str, Any] = {}
        ip = parse_ip(request.extra.get("source_ip")) if self.geoip is not None else None
        if ip is not None and self.geoip is not None:
            evidence["caller"] = {
                "ip": ip,
                "country": self.geoip.country(ip),
                "source": self.geoip.source,
                "time": request.event_time or when,
            }
        if self.contacts is not None and origin is not None:
            contact = self.contacts.signal(request.account_id, now)
            if contact is not None:
                evidence["contact"] = contact
        if self.ledger is not None:
            at = event_epoch(request, now)
            self._ledger(request, origin, att, doc, evidence, at, _when(at))
        if evidence:
            doc["evidence"] = evidence
        if self.screening is not None:
            doc["screening"] = self._screen(request, origin, att)
        strip_clear_names(doc)

    # -- ledger and call share ----------------------------------------------------------------
    def _ledger(
        self,
        request: LaunchRequest,
        origin: AccountOrigin | None,
        att: AttestationResult,
        doc: dict[str, Any],
        evidence: dict[str, Any],
        now: float,
        when: str,
    ) -> None:
        assert self.ledger is not None
        owners = owners_of(origin, att, request.account_id)
        keys = [f"{kind}:{owner}" for kind, owner, _ in owners]
        try:
            figs, calls = self.ledger.read(keys, request.account_id, now, self.window_hours)
        except Exception as exc:  # the ledger is evidence, not a gate: decide without it, counted
            self.counters["ledger_read_failures"] += 1
            doc["ledger"] = {  # owners without figures: the launch is still booked after it is logged
                "owners": [{"kind": kind, "owner": owner} for kind, owner, _ in owners],
                "status": "unavailable",
                "detail": type(exc).__name__,
                "time": when,
            }
            return
        doc["ledger"] = {
            "owners": [
                figs[k].to_policy(kind, owner, now, label)
                for k, (kind, owner, label) in zip(keys, owners, strict=True)
            ],
            "source": "ledger",
            "time": when,
        }
        total = sum(calls.values())
        if total:
            evidence["call_share"] = {
                "shares": {cc: round(n / total, 4) for cc, n in sorted(calls.items())},
                "counts": dict(sorted(calls.items())),
                "total": total,
                "window_hours": self.window_hours,
                "source": "ledger:calls (CloudTrail sourceIPAddress)",
                "time": when,
            }

    # -- screening ------------------------------------------------------------------------------
    def _screen(
        self, request: LaunchRequest, origin: AccountOrigin | None, att: AttestationResult
    ) -> dict[str, Any]:
        assert self.screening is not None
        try:
            screener = self.screening()
        except Exception as exc:
            self.counters["screening_failures"] += 1
            return {"status": "unavailable", "detail": f"{type(exc).__name__}: {str(exc)[:200]}", "hits": []}
        if screener is None:
            return {"status": "not_loaded", "hits": []}
        subjects: list[tuple[str, str]] = []
        if origin is not None and origin.name:
            subjects.append((f"account {request.account_id} name", origin.name))
        parent = getattr(origin, "parent", None)
        if isinstance(parent, str) and parent:
            subjects.append((f"ultimate parent of account {request.account_id}", parent))
        if att.status == "valid":
            customers = att.parties if att.parties is not None else [att.claims.get("end_customer") or {}]
            for ec in customers:
                if not isinstance(ec, dict):
                    continue
                label = f"attested end customer (reseller {att.issuer or (origin and origin.reseller)})"
                names = [ec.get("name"), *(ec.get("aliases") or [])]
                subjects.extend((label, n) for n in names if isinstance(n, str) and n)
        hits: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for subject, name in subjects:
            for h in screener.screen(name):
                key = (subject, h.entry.entry_id)
                if key not in seen:
                    seen.add(key)
                    hits.append(h.to_policy(subject))
        return {"status": "ok", "list": screener.version, "screened": len(subjects), "hits": hits}
