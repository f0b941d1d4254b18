"""The reactive guard: decide on launch events after the fact, then remediate (see ``enforcer.actions``).

One guard event is one of: an EventBridge "AWS API Call via CloudTrail" for a launch path, an EC2
"Instance State-change Notification" (``pending``: the resolver describes the instance), or the
scheduled sweep (``enforcer.guard_sweep``, which works the backlog of ``enforcer.guard_backlog``
first).

The deny path (issue 16), in order, with the AWS calls it makes one after the other:

1. decide (the account directory and licence register are read through a short-lived cache,
   ``enforcer.lookup_cache``); find the targets (a describe only when the event does not name the
   instances);
2. **one** ``TransactWriteItems``: the audit record, its idempotency item, the remediation state
   ``decided``, the per-account counter (``enforcer.act_state``) and the compute ledger's update --
   or, with a store that has no transactions, the record then the state;
3. the stop (or terminate) call;
4. then, all at once and concurrently: tags, ASG suspension, the notification, the state (``acted``
   | ``failed`` | ``capped``, one ``PutItem`` of the whole item), the backlog (only when something is
   left to do, or when a redelivery or the backlog acted), and a seal of the audit log that is due
   or pending (the record's write defers it: S3 and KMS never stand between the record and the stop).

A redelivered event never makes a new decision: the logged decision and its state are read back and
acted on unless the state is ``acted``. A record written whose seal failed is still acted on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from enforcer.act_state import FINAL_STATES, ActLedger, MemoryLedger, _state_fields, is_legal
from enforcer.actions import ActionResult, Budget, Remediator
from enforcer.audit.record import decision_from_record
from enforcer.guard_backlog import drain_backlog
from enforcer.guard_record import log_decision
from enforcer.guard_sweep import (
    DEFAULT_PAIRS_PER_RUN,
    MAX_SWEEP_INSTANCES,
    SWEEP_CURSOR,
    SWEEP_STATES,
    sweep,
    sweep_bound,
    sweep_pairs,
)
from enforcer.intake import normalise
from enforcer.intake.malformed import malformed_launch
from enforcer.model import Decision, Ignored, InputError, LaunchRequest
from enforcer.pipeline import Enforcer, Outcome, rfc3339
from enforcer.ports import AuditReceipt

__all__ = [
    "DEFAULT_PAIRS_PER_RUN",
    "MAX_SWEEP_INSTANCES",
    "SWEEP_CURSOR",
    "SWEEP_STATES",
    "ClientSource",
    "Guard",
    "sweep_bound",
]


class ClientSource(Protocol):
    """Where the guard gets clients of a member account (``wiring.aws.ClientFactory``)."""

    def client(
        self, service: str, account_id: str | None = None, region: str | None = None, role: str | None = None
    ) -> Any: ...


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
            bad = {"code": exc.code, "error": str(exc)[:300]}
            launch = malformed_launch(event, exc)  # a launch call we cannot read: denied, not ignored
            if launch is None:
                return {"status": "bad_input", **bad}
            return {
                "status": "decided",
                "malformed": bad,
                "results": [self.decide_and_act(launch, budget, now)],
            }
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
        pending: list[Future[None]] = []
        if access_error is not None:
            result.status, result.errors = "failed", [access_error]
        elif targets:
            pending = self.execute(
                d, targets, ec2, asg, budget, legal, result, counted, describe=_needs_describe(request)
            )
        return self._finish(request, outcome, result, legal, pending, fresh=True)

    def _log(
        self, d: Decision, targets: list[str], legal: bool, room: int, budget: Budget
    ) -> tuple[AuditReceipt | None, int]:
        """Log ``d`` with its state and counter in one write (``enforcer.guard_record``)."""
        return log_decision(self, d, targets, legal, room, budget)

    def execute(
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
    ) -> list[Future[None]]:
        """Stop what the caps grant of ``targets`` now; return the follow-up calls (tags, ASG
        suspension) already running on the guard's pool, for :meth:`wait` or :meth:`_finish`."""
        req = d.request
        seen = len(budget.errors)

        def grant(n: int) -> int:
            if legal:
                return n
            if counted >= 0:  # counted in the audit transaction
                return min(n, counted)
            return budget.take_for(n, req.account_id, req.region, legal)

        futures: list[Future[None]] = []

        def after(f: Callable[[], None]) -> None:
            futures.append(self._pool.submit(f))

        self.remediator.execute(d, targets, ec2, asg, grant, result, describe=describe, after=after)
        result.errors += budget.errors[seen:]  # granted before the stop: known now
        return futures

    @staticmethod
    def wait(futures: list[Future[None]]) -> None:
        """Wait for every follow-up call (each records its own failure in the action result); an
        unexpected exception is raised only once all of them have finished."""
        wait(futures)
        for fut in futures:
            fut.result()

    def _finish(
        self,
        request: LaunchRequest,
        outcome: Outcome,
        result: ActionResult,
        legal: bool,
        pending: list[Future[None]],
        *,
        fresh: bool,
    ) -> dict[str, Any]:
        """Notify, record the state, queue what is left, retry a pending seal: all at once, beside the
        follow-up calls ``pending`` already running, then wait for everything.

        The state and the notification depend only on the stop's outcome (known now), never on the
        tags. ``fresh``: a first decision, which cannot be in the backlog yet (no call to take it out).
        """
        d = outcome.decision
        state, remaining = self.state_of(result)
        jobs: list[Callable[[], Any]] = [
            lambda: self.remediator.notify(d, result),
            lambda: self._record_state(d, state, remaining, legal, fresh),
        ]
        if getattr(self.enforcer.audit, "seal_pending", False):
            jobs.append(lambda: self._seal(outcome.receipt))
        self.wait(pending + [self._pool.submit(j) for j in jobs])
        if state == "capped":
            result.errors.append("capped: held back in the remediation backlog (alarm raised)")
        return self._result(request, outcome, result)

    def _seal(self, receipt: AuditReceipt | None) -> None:
        """Retry a pending seal; a seal this event's write deferred (``defer_seal``) gets the write's
        own attempt here too: its failure is the receipt's ``seal_error``, then it is tried again."""
        audit: Any = self.enforcer.audit
        error = self.safe(lambda: audit.retry_seal())  # a store without it (local: seals in its write)
        if error and receipt is not None and not receipt.duplicate and receipt.seal_error is None:
            receipt.seal_error = error
            self.safe(lambda: audit.retry_seal())

    def state_of(self, result: ActionResult) -> tuple[str, list[str]]:
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

    def _record_state(self, d: Decision, state: str, remaining: list[str], legal: bool, fresh: bool) -> None:
        fields = _state_fields(d, remaining, legal)  # every field of the item: written whole
        self.safe(lambda: self.ledger.put(d.decision_id, state, fields, replace=True))
        if state in ("capped", "failed"):
            self.safe(lambda: self.ledger.backlog_add(d.decision_id))
        elif not fresh:  # a redelivery may find its decision queued by an earlier failed attempt
            self.safe(lambda: self.ledger.backlog_remove(d.decision_id))

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
        state = self.safe(lambda: self.ledger.get(logged.decision_id))
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
            return self._finish(request, outcome, result, legal, [], fresh=False)
        pending: list[Future[None]] = []
        if result.targets:
            pending = self.execute(logged, result.targets, ec2, asg, budget, legal, result, -1, describe=True)
        return self._finish(request, outcome, result, legal, pending, fresh=False)

    @staticmethod
    def safe(f: Callable[[], Any]) -> Any:
        """``f()``, or None when it raises: state bookkeeping never blocks enforcement."""
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

    # -- backlog and sweep (enforcer.guard_backlog, enforcer.guard_sweep) ---------------------
    def drain_backlog(self, budget: Budget) -> list[dict[str, Any]]:
        """Act on capped/failed remediations while the budget allows (``guard_backlog``)."""
        return drain_backlog(self, budget)

    def sweep_pairs(self, request: LaunchRequest) -> list[tuple[str, str]]:
        """Every (account, region) the sweep covers, in a stable order (``guard_sweep``)."""
        return sweep_pairs(self, request)

    def sweep(
        self, request: LaunchRequest, budget: Budget, now: float, *, report_only: bool = False
    ) -> dict[str, Any]:
        """Work the backlog, then decide on running accelerated instances (``guard_sweep``)."""
        return sweep(self, request, budget, now, report_only=report_only)


def _needs_describe(request: LaunchRequest) -> bool:
    """A first CloudTrail delivery names the instances it just launched: no describe before the stop."""
    return not (
        request.source == "cloudtrail"
        and request.action == "ec2:RunInstances"
        and bool(request.instance_ids)
        and not request.extra.get("auto_scaling_group_name")
    )
