"""The guard's scheduled sweep: decide on the accelerated instances running in the organisation.

The sweep works the capped/failed backlog first (``enforcer.guard_backlog``), then walks every
(account, region) of the organisation (Organizations ``ListAccounts`` x the configured or enabled
regions) from a persisted cursor, ``pairs_per_run`` pairs per run: every pair is visited within
``ceil(pairs / pairs_per_run)`` runs. With ``report_only`` (or an event ``detail.mode == "report"``)
it only lists running violators. Each instance found becomes a request built by the intake
(``enforcer.intake.sweep``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from enforcer.actions import Budget
from enforcer.guard_backlog import drain_backlog
from enforcer.intake.sweep import sweep_request
from enforcer.model import InputError, LaunchRequest
from enforcer.pipeline import rfc3339

if TYPE_CHECKING:
    from enforcer.guard import Guard

#: Most instances one sweep decides on (per invocation).
MAX_SWEEP_INSTANCES = 1000
#: (account, region) pairs one sweep run describes.
DEFAULT_PAIRS_PER_RUN = 50
SWEEP_STATES = ("pending", "running")
SWEEP_CURSOR = "sweep"


def sweep_bound(pairs: int, pairs_per_run: int) -> int:
    """Runs within which the sweep visits every one of ``pairs`` (account, region) pairs."""
    return max(1, math.ceil(pairs / max(1, pairs_per_run)))


def sweep_pairs(guard: Guard, request: LaunchRequest) -> list[tuple[str, str]]:
    """Every (account, region) the sweep covers, in a stable order."""
    accounts = guard.sweep_accounts or _org_accounts(guard) or (request.account_id,)
    regions = guard.sweep_regions or _enabled_regions(guard) or (request.region,)
    return [(a, r) for a in sorted(set(accounts)) for r in sorted(set(regions))]


def _org_accounts(guard: Guard) -> tuple[str, ...]:
    try:
        org = guard.clients.client("organizations")
        out: list[str] = []
        for page in org.get_paginator("list_accounts").paginate():
            out += [str(a["Id"]) for a in page.get("Accounts") or [] if a.get("Status", "ACTIVE") == "ACTIVE"]
        return tuple(out)
    except Exception:
        return ()


def _enabled_regions(guard: Guard) -> tuple[str, ...]:
    try:
        resp = guard.clients.client("ec2").describe_regions(AllRegions=False)
        return tuple(
            str(r["RegionName"])
            for r in resp.get("Regions") or []
            if r.get("OptInStatus") in (None, "opt-in-not-required", "opted-in")
        )
    except Exception:
        return ()


def sweep(
    guard: Guard, request: LaunchRequest, budget: Budget, now: float, *, report_only: bool = False
) -> dict[str, Any]:
    """Work the backlog, then decide on running accelerated instances from the persisted cursor."""
    results: list[dict[str, Any]] = [] if report_only else drain_backlog(guard, budget)
    errors: list[str] = []
    violators: list[dict[str, Any]] = []
    pairs = sweep_pairs(guard, request)
    start = (guard.safe(lambda: guard.ledger.cursor(SWEEP_CURSOR)) or 0) % len(pairs)
    visited: list[str] = []
    decided = 0
    for k in range(min(len(pairs), guard.pairs_per_run)):
        if decided >= guard.max_sweep:  # the cap is reached: no more describe calls
            break
        account, region = pairs[(start + k) % len(pairs)]
        visited.append(f"{account}/{region}")
        try:
            found = running(guard, account, region, guard.max_sweep - decided)
        except Exception as exc:
            errors.append(f"{account}/{region}: {type(exc).__name__}")
            continue
        for inst in found:
            decided += 1
            try:
                req = sweep_request(request, account, region, inst, rfc3339(now))
            except InputError as exc:
                errors.append(f"{account}/{region}: {exc.code}: {str(exc)[:200]}")
                continue
            if report_only:
                d = guard.enforcer.decide(req, now)
                if d.effect == "deny":
                    violators.append(
                        {
                            "account_id": account,
                            "region": region,
                            "instance_id": req.instance_ids[0],
                            "instance_type": req.items[0].instance_type,
                            "reasons": d.reason_codes,
                        }
                    )
            else:
                results.append(guard.decide_and_act(req, budget, now))
    nxt = (start + len(visited)) % len(pairs)
    guard.safe(lambda: guard.ledger.set_cursor(SWEEP_CURSOR, nxt))
    out: dict[str, Any] = {
        "status": "reported" if report_only else "swept",
        "results": results,
        "errors": errors,
        "visited": visited,
        "pairs": len(pairs),
        "runs_to_cover": sweep_bound(len(pairs), guard.pairs_per_run),
    }
    if report_only:
        out["violators"] = violators
    return out


def running(guard: Guard, account: str, region: str, limit: int) -> list[dict[str, Any]]:
    """Pending/running instances whose type has accelerators that are not classified ``none``."""
    ec2 = guard.clients.client("ec2", account, region)
    out: list[dict[str, Any]] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": list(SWEEP_STATES)}]
    )
    for page in pages:
        for res in page.get("Reservations") or []:
            for inst in res.get("Instances") or []:
                itype = inst.get("InstanceType")
                if not isinstance(itype, str) or guard.enforcer.catalog.classify(itype).chip_class == "none":
                    continue
                if len(out) >= limit:
                    return out
                out.append(inst)
    return out
