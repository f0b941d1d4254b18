"""The guard's path for managed compute: decide, then stop or scale the resource through its service.

The reactive guard (``enforcer.guard``) hands over every request naming a managed resource
(``extra["managed"]``, set by the SageMaker state-change detector, by the sweep below, or attached
here to a CloudTrail create call that names its job, notebook or cluster) and, on each scheduled
sweep, asks :func:`sweep` for the running resources of every registered family. A deny in enforce
mode calls the family's remediation (the blast-radius budget counts the resource's instances; legal
prohibitions are never capped, as for EC2) and notifies;
families without a stop or scale-to-zero call only notify. Dryrun only logs "would deny".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from itertools import islice
from typing import Any, Protocol

import botocore.session

from enforcer.act_state import is_legal
from enforcer.actions import ActionResult, Budget
from enforcer.aws_errors import error_code
from enforcer.guard import Guard
from enforcer.managed.registry import MANAGED_REF, Family, ManagedResource, families, from_request, to_request
from enforcer.model import LaunchRequest
from enforcer.pipeline import Enforcer, Outcome, rfc3339

#: The name is that of the request's first reference item (``{"kind": ..., "name": ...}``).
REF_NAME = "ref:name"
#: CloudTrail calls whose request names the managed resource they start or grow.
CLOUDTRAIL_NAMES: Mapping[str, tuple[str, str]] = {
    "sagemaker:CreateTrainingJob": ("sagemaker:training-job", "training_job_name"),
    "sagemaker:CreateProcessingJob": ("sagemaker:processing-job", "processing_job_name"),
    "sagemaker:CreateTransformJob": ("sagemaker:transform-job", "transform_job_name"),
    "sagemaker:CreateNotebookInstance": ("sagemaker:notebook-instance", "notebook_instance_name"),
    "sagemaker:CreateCluster": ("sagemaker:cluster", "cluster_name"),
    "sagemaker:UpdateCluster": ("sagemaker:cluster", "cluster_name"),
    # a denied addition of nodes is remediated as a denied UpdateCluster
    "sagemaker:BatchAddClusterNodes": ("sagemaker:cluster", "cluster_name"),
    "sagemaker:StartNotebookInstance": ("sagemaker:notebook-instance", "notebook_instance_name"),
    "sagemaker:CreateEndpoint": ("sagemaker:endpoint", "endpoint_name"),
    "sagemaker:UpdateEndpoint": ("sagemaker:endpoint", "endpoint_name"),
    "sagemaker:UpdateEndpointWeightsAndCapacities": ("sagemaker:endpoint", REF_NAME),
}


class GuardLike(Protocol):
    """What this module needs of ``enforcer.guard.Guard``."""

    enforcer: Enforcer
    clients: Any
    remediator: Any


def is_managed(request: LaunchRequest) -> bool:
    """True when ``request`` names a managed resource (attaching one for known CloudTrail creates)."""
    if isinstance(request.extra.get("managed"), dict):
        return True
    known = CLOUDTRAIL_NAMES.get(request.action)
    if known is None:
        return False
    if known[1] == REF_NAME:
        name = next((i.ref.get("name") for i in request.items if i.ref and i.ref.get("name")), None)
    else:
        name = request.extra.get(known[1])
    if not isinstance(name, str) or not name:
        return False
    request.extra["managed"] = {"kind": known[0], "name": name}
    return True


def _planned(guard: GuardLike, fam: Family | None) -> str:
    if guard.enforcer.mode != "enforce":
        return "guard:dryrun"
    return f"guard:{fam.remedy.split(' ')[0] if fam and fam.remediate else 'alert'}"


def _resolve(guard: GuardLike, request: LaunchRequest, fam: Family, res: ManagedResource) -> Any:
    """Replace managed refs by the types the service reports (the client is returned for reuse)."""
    if fam.describe is None or not any(
        i.unresolved and (i.ref or {}).get("kind") == MANAGED_REF for i in request.items
    ):
        return None
    client = guard.clients.client(fam.service, request.account_id, request.region)
    found = fam.describe(client, res)
    if found is not None and not found.items:  # described: runs on no instance (serverless endpoint)
        request.items = []
        request.extra["managed"]["no_instances"] = True
    elif found is not None:
        fresh = to_request(
            found, request.account_id, request.region, source="", action="", event_id=None, event_time=None
        )
        request.items = fresh.items
        request.extra["managed"] = {
            **found.ref(),
            **{k: v for k, v in request.extra["managed"].items() if k == "ids"},
        }
    return client


def decide_and_act(guard: GuardLike, request: LaunchRequest, budget: Budget, now: float) -> dict[str, Any]:
    """Decide on a managed resource, log it, then remediate a deny through the resource's service.

    Returns
    -------
    dict
        The guard's per-decision result (``event_id``, ``decision_id``, ``effect``, ``reasons``,
        ``duplicate``, ``remediation``).
    """
    res = from_request(request)
    fam = families().get(res.kind) if res is not None else None
    client: Any = None
    problems: list[str] = []
    if res is not None and fam is not None:
        try:
            client = _resolve(guard, request, fam, res)
        except Exception as exc:  # unresolved items stay: the policy denies them (REQUEST_UNRESOLVED)
            problems.append(f"describe failed: {error_code(exc) or type(exc).__name__}")
    outcome = guard.enforcer.enforce(request, now, action=_planned(guard, fam))
    result = _act(guard, outcome, fam, res, client, budget)
    result.errors = problems + result.errors
    d = outcome.decision
    return {
        "event_id": request.event_id,
        "decision_id": d.decision_id,
        "effect": d.effect,
        "reasons": d.reason_codes,
        "duplicate": outcome.duplicate,
        "remediation": {**result.to_dict(), "remedy": fam.remedy if fam else "unknown family: alert only"},
    }


def _act(
    guard: GuardLike,
    outcome: Outcome,
    fam: Family | None,
    res: ManagedResource | None,
    client: Any,
    budget: Budget,
) -> ActionResult:
    d = outcome.decision
    if outcome.duplicate:
        return ActionResult("duplicate", d.decision_id)
    if d.effect != "deny":
        return ActionResult("allowed" if d.effect == "allow" else "audited", d.decision_id)
    target = f"{res.kind}/{res.name}" if res is not None else "unknown"
    result = ActionResult("alerted", d.decision_id, targets=[target])
    if not d.enforced:
        result.status = "would_deny"
        return result
    if fam is not None and res is not None and fam.remediate is not None:
        units = _units(d.request)
        if _grant(guard, budget, d.reason_codes, units, d.request) < units:
            result.status, result.capped = "capped", [target]
        else:
            try:
                client = client or guard.clients.client(fam.service, d.request.account_id, d.request.region)
                result.status, result.acted = fam.remediate(client, res), [target]
            except Exception as exc:
                result.status = "failed"
                result.errors.append(f"{fam.remedy} failed: {error_code(exc) or type(exc).__name__}")
    notify = getattr(guard.remediator, "notify", None)
    if callable(notify):
        notify(d, result)
    return result


def _units(request: LaunchRequest) -> int:
    """Instances a remediation stops: the blast-radius cap counts them as it counts EC2 instances."""
    return max(
        1,
        sum(i.count for i in request.items if i.group is None)
        + max((i.count for i in request.items if i.group is not None), default=0),
    )


def _grant(guard: GuardLike, budget: Budget, codes: list[str], n: int, request: LaunchRequest) -> int:
    """Units granted: a legal prohibition is never capped (as for EC2); others pass the caps."""
    legal = is_legal(codes, getattr(guard, "legal", frozenset()))
    take_for = getattr(budget, "take_for", None)
    if callable(take_for):
        return int(take_for(n, request.account_id, request.region, legal))
    return n if legal else budget.take(n)


#: Family listings run at once (each is a few List/Describe calls in one account and region).
SWEEP_WORKERS = 16
#: Seconds the managed sweep may spend listing (the guard function has 60 s in all).
SWEEP_SECONDS = 25.0


def list_family(
    guard: GuardLike, fam: Family, account: str, region: str, limit: int
) -> list[ManagedResource]:
    """The running resources of ``fam`` with accelerators in one account and region.

    Raises
    ------
    Exception
        Whatever the service call raises (the caller reports it).
    """
    client = guard.clients.client(fam.service, account, region)
    return [r for r in islice(fam.sweep(client, limit), limit) if _accelerated(guard, r)]


def sweep(
    guard: GuardLike,
    trigger: LaunchRequest,
    pairs: list[tuple[str, str]],
    budget: Budget,
    now: float,
    limit: int,
    *,
    workers: int = SWEEP_WORKERS,
    seconds: float = SWEEP_SECONDS,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Decide on every running managed resource with accelerators in the (account, region) pairs.

    Every family of every pair is listed concurrently (skipping families the region has no
    endpoint for), within ``seconds``; then the found resources are decided one by one, in a
    stable order, at most ``limit`` of them.

    Parameters
    ----------
    trigger
        The scheduled sweep request (its event id prefixes each resource's event id).
    pairs
        (account, region) pairs to list.
    limit
        Most resources decided (the sweep's remaining cap).

    Returns
    -------
    tuple
        Per-decision results and per-family errors (``account/region/kind: code``).
    """
    jobs = [(a, r, fam) for a, r in pairs for fam in families().values() if available(fam.service, r)]
    listed: dict[int, list[ManagedResource]] = {}
    errors: list[str] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="managed-sweep")
    try:
        futures = {pool.submit(list_family, guard, fam, a, r, limit): i for i, (a, r, fam) in enumerate(jobs)}
        done, late = wait(futures, timeout=seconds)
        for fut in done:
            i = futures[fut]
            try:
                listed[i] = fut.result()
            except Exception as exc:
                a, r, fam = jobs[i]
                errors.append(f"{a}/{r}/{fam.kind}: {error_code(exc) or type(exc).__name__}")
        for fut in late:
            a, r, fam = jobs[futures[fut]]
            errors.append(f"{a}/{r}/{fam.kind}: not listed within {seconds:g} s")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results: list[dict[str, Any]] = []
    prefix = trigger.event_id or rfc3339(now)
    for i in sorted(listed):
        a, r, fam = jobs[i]
        for res in listed[i]:
            if len(results) >= limit:
                return results, sorted(errors)
            req = to_request(
                res,
                a,
                r,
                source="sweep",
                action=f"{fam.kind}:Sweep",
                event_id=f"{prefix}/{a}/{r}/{res.kind}/{res.name}"[:512],
                event_time=trigger.event_time,
            )
            req.extra["sweep"] = True
            results.append(decide_and_act(guard, req, budget, now))
    return results, sorted(errors)


@functools.lru_cache(maxsize=4096)
def available(service: str, region: str) -> bool:
    """Whether botocore's endpoint data lists ``service`` in ``region`` (no network; unknown: True)."""
    session = botocore.session.get_session()
    listed: set[str] = set()
    for partition in session.get_available_partitions():
        listed.update(session.get_available_regions(service, partition))
    return not listed or region in listed


def _accelerated(guard: GuardLike, res: ManagedResource) -> bool:
    """False only when every type is known to carry no accelerator (as the EC2 sweep skips them)."""
    return any(t is None or guard.enforcer.catalog.classify(t).chip_class != "none" for t, _ in res.items)


class ManagedGuard(Guard):
    """The reactive guard with managed compute: managed requests take this module's path, and each
    sweep also lists the managed families in the (account, region) pairs the EC2 sweep visited
    (families the region has no endpoint for are skipped; failures go to ``managed_errors``)."""

    #: Concurrent family listings and the seconds they may take (see :func:`sweep`).
    sweep_workers: int = SWEEP_WORKERS
    sweep_seconds: float = SWEEP_SECONDS

    def decide_and_act(self, request: LaunchRequest, budget: Budget, now: float) -> dict[str, Any]:
        """Managed resources here; everything else as ``Guard.decide_and_act``."""
        if is_managed(request):
            return decide_and_act(self, request, budget, now)
        return super().decide_and_act(request, budget, now)

    def sweep(self, request: LaunchRequest, budget: Budget, now: float, **kwargs: Any) -> dict[str, Any]:
        """``Guard.sweep``, then the managed families of the same pairs (not in report-only mode)."""
        out = super().sweep(request, budget, now, **kwargs)
        if kwargs.get("report_only"):
            return out
        visited = out.get("visited")
        if isinstance(visited, list) and visited:
            pairs = [(str(v).split("/", 1)[0], str(v).split("/", 1)[-1]) for v in visited]
        else:
            accounts = self.sweep_accounts or (request.account_id,)
            regions = self.sweep_regions or (request.region,)
            pairs = [(a, r) for a in accounts for r in regions]
        results = out.setdefault("results", [])
        room = self.max_sweep - len(results)
        found, errors = (
            sweep(
                self,
                request,
                pairs,
                budget,
                now,
                room,
                workers=self.sweep_workers,
                seconds=self.sweep_seconds,
            )
            if room > 0
            else ([], [])
        )
        results += found
        out["managed_errors"] = errors  # apart from the EC2 sweep's own ``errors``
        return out
