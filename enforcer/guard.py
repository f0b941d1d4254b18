"""The reactive guard: decide on launch events after the fact, then remediate (see ``enforcer.actions``).

One guard event is one of: an EventBridge "AWS API Call via CloudTrail" for a launch path, an EC2
"Instance State-change Notification" (``pending``: the resolver describes the instance), or the
scheduled sweep.

The deny path (issue 11), in order, with the AWS calls it makes one after the other:

1. decide; find the targets (a describe only when the event does not name the instances);
2. **one** ``TransactWriteItems``: the audit record, its idempotency item, the remediation state
   ``decided`` and the per-account counter (``enforcer.act_state``) -- or, with a store that has no
   transactions, the record then the state;
3. the stop (or terminate) call;
4. then, concurrently: tags, ASG suspension, the notification, the state (``acted`` | ``failed`` |
   ``capped``), the backlog, and a pending seal of the audit log.

A redelivered event never makes a new decision: the logged decision and its state are read back and
acted on unless the state is ``acted``. A record written whose seal failed is still acted on.

The sweep works the capped/failed backlog first, then walks every (account, region) of the
organisation (Organizations ``ListAccounts`` x the configured or enabled regions) from a persisted
cursor, ``pairs_per_run`` pairs per run: every pair is visited within ``ceil(pairs / pairs_per_run)``
runs. With ``report_only`` (or an event ``detail.mode == "report"``) it only lists running violators.
"""

from __future__ import annotations

import inspect
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from enforcer.act_state import FINAL_STATES, ActLedger, MemoryLedger, _state_fields, is_legal
from enforcer.actions import ActionResult, Budget, Remediator
from enforcer.audit.record import decision_from_record
from enforcer.intake import normalise
from enforcer.intake._tags import find_attestation_ref
from enforcer.model import Decision, Ignored, InputError, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer, Outcome, rfc3339
from enforcer.ports import AuditReceipt

#: Most instances one sweep decides on (per invocation).
MAX_SWEEP_INSTANCES = 1000
#: (account, region) pairs one sweep run describes.
DEFAULT_PAIRS_PER_RUN = 50
SWEEP_STATES = ("pending", "running")
SWEEP_CURSOR = "sweep"


class ClientSource(Protocol):
    """Where the guard gets clients of a member account (``aws_wiring.ClientFactory``)."""

    def client(
        self, service: str, account_id: str | None = None, region: str | None = None, role: str | None = None
    ) -> Any: ...


def sweep_bound(pairs: int, pairs_per_run: int) -> int:
    """Runs within which the sweep visits every one of ``pairs`` (account, region) pairs."""
    return max(1, math.ceil(pairs / max(1, pairs_per_run)))


class Guard:
    """Decides on guard events and remediates denies.

    Parameters
    ----------
    enforcer
        The pipeline (with an audit store: its idempotency makes redelivered events harmless).
    remediator
        Stops/terminates, tags and notifies.
    clients
        Clients of the account and region each launch happened in.
    sweep_accounts, sweep_regions
        What the sweep covers (default: every active account of the organisation, every enabled
        region; the event's own account/region when neither can be listed).
    max_sweep
        Most instances one sweep decides on.
    ledger
        Remediation states, backlog and sweep cursor (default: in memory).
    legal
        Reason codes that are legal prohibitions (never capped); None: every deny is.
    pairs_per_run
        (account, region) pairs one sweep describes.
    report_only
        The sweep lists running violators and acts on nothing.
    """

    def __init__(
        self,
        enforcer: Enforcer,
        remediator: Remediator,
        clients: ClientSource,
        *,
        sweep_accounts: tuple[str, ...] = (),
        sweep_regions: tuple[str, ...] = (),
        max_sweep: int = MAX_SWEEP_INSTANCES,
        ledger: ActLedger | None = None,
        legal: frozenset[str] | None = frozenset({"ORIGIN_RESTRICTED", "END_CUSTOMER_RESTRICTED"}),
        pairs_per_run: int = DEFAULT_PAIRS_PER_RUN,
        report_only: bool = False,
    ) -> None:
        self.enforcer = enforcer
        self.remediator = remediator
        self.clients = clients
        self.sweep_accounts = sweep_accounts
        self.sweep_regions = sweep_regions
        self.max_sweep = max_sweep
        self.ledger: ActLedger = ledger if ledger is not None else MemoryLedger()
        self.legal = legal
        self.pairs_per_run = max(1, pairs_per_run)
        self.report_only = report_only
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="guard-after")

    @property
    def planned_action(self) -> str:
        """What a deny leads to, as recorded in the audit log with the decision."""
        return f"guard:{self.remediator.action}" if self.enforcer.mode == "enforce" else "guard:dryrun"

    def handle(self, event: Any, budget: Budget, now: float | None = None) -> dict[str, Any]:
        """Handle one event.

        Parameters
        ----------
        event
            The EventBridge event.
        budget
            The invocation's blast-radius budget.
        now
            Epoch seconds (decision time).

        Returns
        -------
        dict
            ``{"status": "ignored"|"bad_input"|"decided"|"swept"|"reported", ...}``.

        Raises
        ------
        ports.AuditWriteError
            When a decision cannot be logged in enforce mode (the event is retried, then dead-lettered).
        """
        now = time.time() if now is None else now
        try:
            parsed = normalise(event, rfc3339(now))
        except InputError as exc:
            return {"status": "bad_input", "code": exc.code, "error": str(exc)[:300]}
        if isinstance(parsed, Ignored):
            return {"status": "ignored", **parsed.to_dict()}
        if parsed.source == "sweep":
            detail = event.get("detail") if isinstance(event, dict) else None
            report = self.report_only or (isinstance(detail, dict) and detail.get("mode") == "report")
            return self.sweep(parsed, budget, now, report_only=report)
        return {"status": "decided", "results": [self.decide_and_act(parsed, budget, now)]}

    # -- one launch ------------------------------------------------------------------------
    def decide_and_act(self, request: LaunchRequest, budget: Budget, now: float) -> dict[str, Any]:
        """Decide on ``request``, log it with its remediation state, then remediate."""
        d = self.enforcer.decide(request, now)
        acts = d.effect == "deny" and d.enforced
        ec2 = asg = None
        targets: list[str] = []
        legal = False
        access_error: str | None = None
        if acts:
            legal = is_legal(d.reason_codes, self.legal)
            try:
                ec2 = self.clients.client("ec2", request.account_id, request.region)
                asg = self.clients.client("autoscaling", request.account_id, request.region)
                targets = self.remediator.targets(d, ec2, asg)
            except Exception as exc:  # no access to the member account: log, alert, backlog
                access_error = f"member account access: {type(exc).__name__}"
        # The record, its state and the account's counter: one transaction where the store has them.
        room = budget.invocation_room(len(targets), legal) if acts and access_error is None else 0
        receipt, counted = self._log(d, targets, legal, room, budget)
        outcome = Outcome(d, receipt)
        if receipt is not None and receipt.duplicate:
            return self._redelivered(request, d, receipt, budget, outcome)
        if not acts:
            return self._result(request, outcome, self.remediator.remediate(outcome, None, None, budget))
        result = ActionResult("no_target", d.decision_id, targets=targets or list(request.instance_ids))
        if access_error is not None:
            result.status, result.errors = "failed", [access_error]
        elif targets:
            self._execute(
                d, targets, ec2, asg, budget, legal, result, counted, describe=_needs_describe(request)
            )
        return self._finish(request, outcome, result, legal)

    def _log(
        self, d: Decision, targets: list[str], legal: bool, room: int, budget: Budget
    ) -> tuple[AuditReceipt | None, int]:
        """Write the record (+ state ``decided`` + counter when possible); return the receipt and
        how many instances the counter already granted (-1: not counted in the write)."""
        audit = self.enforcer.audit
        if audit is None:
            return None, -1
        fields = _state_fields(d, targets, legal)
        side: list[dict[str, Any]] = []
        counted = -1
        put_op = getattr(self.ledger, "put_op", None)
        can_side = put_op is not None and "side_ops" in inspect.signature(audit.write).parameters
        if d.effect == "deny" and d.enforced and can_side and put_op is not None:
            side.append(put_op(d.decision_id, "decided", fields))
            if room and not legal and budget.caps is not None:
                side.append({"Update": budget.caps.update(d.request.account_id, d.request.region, room)})
                counted = room
        try:
            if side:
                from enforcer.audit.aws import SideOpRefused

                try:
                    receipt = audit.write(d, self.planned_action, side_ops=side)  # type: ignore[call-arg]
                except SideOpRefused:  # not enough room for all: write the record, then take what fits
                    receipt = audit.write(d, self.planned_action, side_ops=side[:1])  # type: ignore[call-arg]
                    counted = -1
                except Exception:
                    # The state/counter table failed (missing, throttled, denied): the record must not
                    # depend on it. Write the record alone; the state and caps are tried apart.
                    receipt = audit.write(d, self.planned_action)
                    counted = -1
                    if not receipt.duplicate:
                        self._safe(lambda: self.ledger.put(d.decision_id, "decided", fields))
                if counted > 0:
                    budget.used += counted
            else:
                receipt = audit.write(d, self.planned_action)
                if d.effect == "deny" and d.enforced:
                    self._safe(lambda: self.ledger.put(d.decision_id, "decided", fields))
                counted = -1
        except Exception:
            self.enforcer.counters["audit_write_failures"] += 1
            if self.enforcer.mode == "enforce":
                raise
            return None, -1
        if receipt.duplicate:
            self.enforcer.counters["duplicates"] += 1
        return receipt, counted

    def _execute(
        self,
        d: Decision,
        targets: list[str],
        ec2: Any,
        asg: Any,
        budget: Budget,
        legal: bool,
        result: ActionResult,
        counted: int,
        *,
        describe: bool,
    ) -> None:
        req = d.request
        seen = len(budget.errors)

        def grant(n: int) -> int:
            if legal:
                return n
            if counted >= 0:  # counted in the audit transaction
                return min(n, counted)
            return budget.take_for(n, req.account_id, req.region, legal)

        futures: list[Future[None]] = []

        def after(f: Any) -> None:
            futures.append(self._pool.submit(f))

        self.remediator.execute(d, targets, ec2, asg, grant, result, describe=describe, after=after)
        for fut in futures:
            fut.result()
        result.errors += budget.errors[seen:]

    def _finish(
        self, request: LaunchRequest, outcome: Outcome, result: ActionResult, legal: bool
    ) -> dict[str, Any]:
        """Notify, record the state, queue what is left, retry a pending seal (concurrently)."""
        d = outcome.decision
        state, remaining = self._state_of(result)
        jobs = [
            lambda: self.remediator.notify(d, result),
            lambda: self._record_state(d, state, remaining, legal),
        ]
        audit = self.enforcer.audit
        if getattr(audit, "seal_pending", False):
            jobs.append(lambda: self._safe(lambda: audit.retry_seal()))  # type: ignore[union-attr]
        for fut in [self._pool.submit(j) for j in jobs]:
            fut.result()
        if state == "capped":
            result.errors.append("capped: held back in the remediation backlog (alarm raised)")
        return self._result(request, outcome, result)

    def _state_of(self, result: ActionResult) -> tuple[str, list[str]]:
        """The remediation state an action result leaves, and the instances still to act on.

        Anything neither acted on nor already stopped stays to do: what a cap held back and what a
        failed call (stop, member-account access) left running, together.
        """
        unacted = [i for i in result.targets if i not in result.acted and i not in result.already]
        failed_call = result.status == "failed" or any(
            e.startswith((f"{self.remediator.action} failed", "member account access")) for e in result.errors
        )
        remaining = unacted if failed_call else list(result.capped)
        if remaining:
            return ("failed" if failed_call else "capped"), remaining
        if result.status in ("stopped", "terminated", "already_stopped", "no_target", "capped"):
            return "acted", []
        return "failed", []

    def _record_state(self, d: Decision, state: str, remaining: list[str], legal: bool) -> None:
        fields = _state_fields(d, remaining, legal)
        self._safe(lambda: self.ledger.put(d.decision_id, state, fields))
        if state in ("capped", "failed"):
            self._safe(lambda: self.ledger.backlog_add(d.decision_id))
        else:
            self._safe(lambda: self.ledger.backlog_remove(d.decision_id))

    def _redelivered(
        self, request: LaunchRequest, fresh: Decision, receipt: AuditReceipt, budget: Budget, outcome: Outcome
    ) -> dict[str, Any]:
        """Act on the logged decision (never the fresh one) unless its state says it was acted on."""
        logged = decision_from_record(fresh, receipt.record) if receipt.record is not None else None
        if logged is None:
            logged = fresh
            logged.decision_id = receipt.decision_id or fresh.decision_id
        outcome = Outcome(logged, receipt)
        if not (logged.effect == "deny" and logged.enforced):
            return self._result(request, outcome, ActionResult("duplicate", logged.decision_id))
        state = self._safe(lambda: self.ledger.get(logged.decision_id))
        if isinstance(state, dict) and state.get("state") in FINAL_STATES:
            self.remediator.log.info(
                "duplicate event: already acted on", extra={"decision_id": logged.decision_id}
            )
            return self._result(request, outcome, ActionResult("duplicate", logged.decision_id))
        legal = is_legal(logged.reason_codes, self.legal)
        result = ActionResult("no_target", logged.decision_id, targets=list(request.instance_ids))
        try:
            ec2 = self.clients.client("ec2", request.account_id, request.region)
            asg = self.clients.client("autoscaling", request.account_id, request.region)
            result.targets = self.remediator.targets(logged, ec2, asg)
        except Exception as exc:
            result.status, result.errors = "failed", [f"member account access: {type(exc).__name__}"]
            return self._finish(request, outcome, result, legal)
        if result.targets:
            self._execute(logged, result.targets, ec2, asg, budget, legal, result, -1, describe=True)
        return self._finish(request, outcome, result, legal)

    @staticmethod
    def _safe(f: Any) -> Any:
        try:
            return f()
        except Exception:  # state bookkeeping never blocks enforcement; the sweep re-checks
            return None

    @staticmethod
    def _result(request: LaunchRequest, outcome: Outcome, result: ActionResult) -> dict[str, Any]:
        d = outcome.decision
        out = {
            "event_id": request.event_id,
            "decision_id": d.decision_id,
            "effect": d.effect,
            "reasons": d.reason_codes,
            "duplicate": outcome.duplicate,
            "remediation": result.to_dict(),
        }
        if outcome.receipt is not None and outcome.receipt.seal_error:
            out["seal_error"] = outcome.receipt.seal_error
        return out

    # -- backlog ---------------------------------------------------------------------------
    def drain_backlog(self, budget: Budget) -> list[dict[str, Any]]:
        """Act on capped/failed remediations (oldest first where known) while the budget allows."""
        out: list[dict[str, Any]] = []
        ids = self._safe(self.ledger.backlog) or []
        for did in ids:
            item = self._safe(lambda did=did: self.ledger.get(did))
            if not isinstance(item, dict) or item.get("state") in FINAL_STATES:
                self._safe(lambda did=did: self.ledger.backlog_remove(did))
                continue
            out.append(self._act_on_backlog(did, item, budget))
        return out

    def _act_on_backlog(self, did: str, item: dict[str, Any], budget: Budget) -> dict[str, Any]:
        from enforcer.model import Reason

        account, region = str(item.get("account")), str(item.get("region"))
        remaining = [str(i) for i in item.get("remaining") or []]
        legal = bool(item.get("legal", True))
        reasons = [Reason(str(c), "", "high") for c in item.get("reasons") or []]
        req = LaunchRequest(
            "backlog",
            "guard:Backlog",
            account,
            region,
            instance_ids=remaining,
            event_id=str(item.get("event_id") or did),
        )
        d = Decision(did, rfc3339(time.time()), "deny", True, reasons, req, "backlog", "backlog")
        result = ActionResult("no_target", did, targets=remaining)
        if remaining:
            try:
                ec2 = self.clients.client("ec2", account, region)
                asg = self.clients.client("autoscaling", account, region)
            except Exception as exc:
                result.status, result.errors = "failed", [f"member account access: {type(exc).__name__}"]
            else:
                self._execute(d, remaining, ec2, asg, budget, legal, result, -1, describe=True)
        state, remaining_now = self._state_of(result)
        fields = {"remaining": remaining_now}
        self._safe(lambda: self.ledger.put(did, state, fields))
        if state == "acted":
            self._safe(lambda: self.ledger.backlog_remove(did))
        return {
            "event_id": req.event_id,
            "decision_id": did,
            "effect": "deny",
            "reasons": d.reason_codes,
            "duplicate": False,
            "backlog": True,
            "remediation": result.to_dict(),
        }

    # -- sweep -----------------------------------------------------------------------------
    def sweep_pairs(self, request: LaunchRequest) -> list[tuple[str, str]]:
        """Every (account, region) the sweep covers, in a stable order."""
        accounts = self.sweep_accounts or self._org_accounts() or (request.account_id,)
        regions = self.sweep_regions or self._enabled_regions() or (request.region,)
        return [(a, r) for a in sorted(set(accounts)) for r in sorted(set(regions))]

    def _org_accounts(self) -> tuple[str, ...]:
        try:
            org = self.clients.client("organizations")
            out: list[str] = []
            for page in org.get_paginator("list_accounts").paginate():
                out += [
                    str(a["Id"]) for a in page.get("Accounts") or [] if a.get("Status", "ACTIVE") == "ACTIVE"
                ]
            return tuple(out)
        except Exception:
            return ()

    def _enabled_regions(self) -> tuple[str, ...]:
        try:
            resp = self.clients.client("ec2").describe_regions(AllRegions=False)
            return tuple(
                str(r["RegionName"])
                for r in resp.get("Regions") or []
                if r.get("OptInStatus") in (None, "opt-in-not-required", "opted-in")
            )
        except Exception:
            return ()

    def sweep(
        self, request: LaunchRequest, budget: Budget, now: float, *, report_only: bool = False
    ) -> dict[str, Any]:
        """Work the backlog, then decide on running accelerated instances from the persisted cursor."""
        results: list[dict[str, Any]] = [] if report_only else self.drain_backlog(budget)
        errors: list[str] = []
        violators: list[dict[str, Any]] = []
        pairs = self.sweep_pairs(request)
        start = (self._safe(lambda: self.ledger.cursor(SWEEP_CURSOR)) or 0) % len(pairs)
        visited: list[str] = []
        decided = 0
        for k in range(min(len(pairs), self.pairs_per_run)):
            if decided >= self.max_sweep:  # the cap is reached: no more describe calls
                break
            account, region = pairs[(start + k) % len(pairs)]
            visited.append(f"{account}/{region}")
            try:
                found = self._running(account, region, self.max_sweep - decided)
            except Exception as exc:
                errors.append(f"{account}/{region}: {type(exc).__name__}")
                continue
            for inst in found:
                decided += 1
                req = self._sweep_request(request, account, region, inst, now)
                if report_only:
                    d = self.enforcer.decide(req, now)
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
                    results.append(self.decide_and_act(req, budget, now))
        nxt = (start + len(visited)) % len(pairs)
        self._safe(lambda: self.ledger.set_cursor(SWEEP_CURSOR, nxt))
        out: dict[str, Any] = {
            "status": "reported" if report_only else "swept",
            "results": results,
            "errors": errors,
            "visited": visited,
            "pairs": len(pairs),
            "runs_to_cover": sweep_bound(len(pairs), self.pairs_per_run),
        }
        if report_only:
            out["violators"] = violators
        return out

    @staticmethod
    def _sweep_request(
        request: LaunchRequest, account: str, region: str, inst: dict[str, Any], now: float
    ) -> LaunchRequest:
        iid = str(inst["InstanceId"])
        return LaunchRequest(
            source="sweep",
            action="ec2:Sweep",
            account_id=account,
            region=region,
            items=[LaunchItem(str(inst["InstanceType"]), 1, path="sweep")],
            event_id=f"{request.event_id or rfc3339(now)}/{account}/{iid}",
            event_time=request.event_time,
            instance_ids=[iid],
            attestation_ref=find_attestation_ref(inst.get("Tags") or [])[0],
            extra={"sweep": True},
        )

    def _running(self, account: str, region: str, limit: int) -> list[dict[str, Any]]:
        """Pending/running instances whose type has accelerators that are not classified ``none``."""
        ec2 = self.clients.client("ec2", account, region)
        out: list[dict[str, Any]] = []
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": list(SWEEP_STATES)}]
        )
        for page in pages:
            for res in page.get("Reservations") or []:
                for inst in res.get("Instances") or []:
                    itype = inst.get("InstanceType")
                    if (
                        not isinstance(itype, str)
                        or self.enforcer.catalog.classify(itype).chip_class == "none"
                    ):
                        continue
                    if len(out) >= limit:
                        return out
                    out.append(inst)
        return out


def _needs_describe(request: LaunchRequest) -> bool:
    """A first CloudTrail delivery names the instances it just launched: no describe before the stop."""
    return not (
        request.source == "cloudtrail"
        and request.action == "ec2:RunInstances"
        and bool(request.instance_ids)
        and not request.extra.get("auto_scaling_group_name")
    )
