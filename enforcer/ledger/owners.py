"""Whom a launch counts for, and what a logged decision changes in the ledger.

Owners: the account itself, its reseller, its ultimate parent (the account directory's ``parent``
name, compared as a screening key so spellings meet) and each attested end customer, identified
by its ``name_hash`` claim or, when the attestation carries a clear name, by a digest of that
name's screening key. No clear end-customer name is ever a ledger key.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from enforcer.ledger.figures import Allocation, Delta
from enforcer.model import AccountOrigin, AttestationResult, Decision, LaunchRequest
from enforcer.screening.normalise import latin_key, ledger_skeleton

#: Sources whose decisions add to the ledger. A launch is seen several times (hook or broker
#: before it, the CloudTrail call after it, the ``pending`` state change): only the CloudTrail
#: call counts, once, keyed by the instances it started.
COUNTED_SOURCES = frozenset({"cloudtrail"})
MAX_RESOURCES = 1000


def owner_name_key(name: str) -> str:
    """The ledger's key for a named owner: its screening key with Latin-lookalike letters read as Latin
    (``latin_key``), spaces removed as screening compares keys, and the letters a spelling swaps for each
    other read alike (``ledger_skeleton``: i, l, 1 as l; 0 as o), so that "Inspur" spelt with Cyrillic I,
    dze and er, with an invisible character inside, as "In-spur" or as "lnspur", and "Megv11", add up
    with the plain spelling. Names that differ only in those letters share an owner (over-counting,
    never a split). A ledger booked before a change of this rule is re-keyed once, its old rows
    released as their instances stop."""
    return ledger_skeleton(latin_key(name))


def end_customer_key(ec: dict[str, Any]) -> str | None:
    """Ledger id of one attested end customer (None when the attestation names nobody)."""
    nh = ec.get("name_hash")
    if isinstance(nh, str) and nh:
        return nh[:128]
    name = ec.get("name")
    if isinstance(name, str) and (key := owner_name_key(name)):
        return "name-sha256:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return None


def owners_of(
    origin: AccountOrigin | None, att: AttestationResult, account_id: str
) -> list[tuple[str, str, str]]:
    """``(kind, owner id, label)`` for every owner a launch of ``account_id`` counts for."""
    out: list[tuple[str, str, str]] = [("account", account_id, (origin.name or "") if origin else "")]
    if origin is not None and origin.reseller:
        out.append(("reseller", origin.reseller, ""))
    parent = getattr(origin, "parent", None)
    if isinstance(parent, str) and (parent_key := owner_name_key(parent)):
        out.append(("parent", parent_key, parent))
    if att.status == "valid":
        customers = att.parties if att.parties is not None else [att.claims.get("end_customer") or {}]
        seen: set[str] = set()
        for ec in customers:
            key = end_customer_key(ec) if isinstance(ec, dict) else None
            if key and key not in seen:
                seen.add(key)
                out.append(("end_customer", key, f"attested by {att.issuer or 'reseller'}"))
    return out


#: CloudTrail request names (``extra``) -> the managed kind whose state changes release them.
MANAGED_NAMES = {
    "training_job_name": "sagemaker:training-job",
    "processing_job_name": "sagemaker:processing-job",
    "transform_job_name": "sagemaker:transform-job",
    "notebook_instance_name": "sagemaker:notebook-instance",
    "cluster_name": "sagemaker:cluster",
}


def managed_resource(kind: str, account_id: str, region: str, name: str) -> str:
    """Ledger resource id of a managed resource (the same from its CloudTrail call and its events)."""
    return f"{kind}/{account_id}/{region}/{name[:256]}"


def _resources(decision: Decision) -> list[str]:
    req = decision.request
    if req.instance_ids:
        return [f"instance:{i}" for i in req.instance_ids[:MAX_RESOURCES]]
    for key, kind in MANAGED_NAMES.items():
        name = req.extra.get(key)
        if isinstance(name, str) and name:
            return [managed_resource(kind, req.account_id, req.region, name)]
    return [f"decision:{decision.decision_id}"]


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str) or len(ts) > 64:
        return None
    return _epoch_of(ts)


@lru_cache(maxsize=1024)
def _epoch_of(ts: str) -> float | None:
    # pure, and each decision reads its event time twice (evidence, then its ledger delta)
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def event_epoch(request: LaunchRequest, now: float) -> float:
    """When the launch happened: the event's own time (CloudTrail ``eventTime``), never after ``now``.

    Replay decides old events at one ``now``; the ledger must still book each at its own time.
    """
    t = _epoch(request.event_time)
    return now if t is None or t > now else t


def delta_of(decision: Decision) -> Delta:
    """What logging ``decision`` changes: its allocations (a counted launch) and its caller's country."""
    doc = decision.input or {}
    req = decision.request
    delta = Delta(account_id=req.account_id)
    if req.source not in COUNTED_SOURCES:
        return delta
    now = event_epoch(req, _epoch(decision.timestamp) or 0.0)
    delta.hour = int(now // 3600)
    caller = (doc.get("evidence") or {}).get("caller") or {}
    if isinstance(caller.get("country"), str):
        delta.country = caller["country"]
    listed = [o for o in (doc.get("ledger") or {}).get("owners", []) if isinstance(o, dict)]
    owners = [f"{o['kind']}:{o['owner']}" for o in listed]
    delta.labels = {f"{o['kind']}:{o['owner']}": str(o["label"]) for o in listed if o.get("label")}
    tpp = float((doc.get("request") or {}).get("total_tpp") or 0.0)
    runs = decision.effect != "deny" or not decision.enforced
    if owners and tpp > 0 and runs:
        resources = _resources(decision)
        share = round(tpp / len(resources), 3)
        delta.allocations = [
            Allocation(r, share, now, owners, req.account_id, req.region, decision.decision_id)
            for r in resources
        ]
    return delta
