"""The reactive guard: decide on launch events after the fact, then remediate (see ``enforcer.actions``).

One guard event is one of: an EventBridge "AWS API Call via CloudTrail" for a launch path, an EC2
"Instance State-change Notification" (``pending``: the resolver describes the instance), or the
scheduled sweep, which lists running instances with accelerators in the configured accounts and
regions and decides on each one (a backstop for missed events). Each decision is written to the
audit log before anything acts on it; a duplicate receipt (the event was already decided) means
no second action.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from enforcer.actions import ActionResult, Budget, Remediator
from enforcer.intake import normalise
from enforcer.intake._tags import find_attestation_ref
from enforcer.model import Ignored, InputError, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer, Outcome, rfc3339

#: Most instances one sweep decides on (per invocation).
MAX_SWEEP_INSTANCES = 1000
SWEEP_STATES = ("pending", "running")


class ClientSource(Protocol):
    """Where the guard gets clients of a member account (``aws_wiring.ClientFactory``)."""

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
        What the sweep covers (default: the scheduled event's own account and region).
    max_sweep
        Most instances one sweep decides on.
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
    ) -> None:
        self.enforcer = enforcer
        self.remediator = remediator
        self.clients = clients
        self.sweep_accounts = sweep_accounts
        self.sweep_regions = sweep_regions
        self.max_sweep = max_sweep

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
            ``{"status": "ignored"|"bad_input"|"decided"|"swept", ...}`` with one entry per decision.

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
            return self.sweep(parsed, budget, now)
        return {"status": "decided", "results": [self.decide_and_act(parsed, budget, now)]}

    def decide_and_act(self, request: LaunchRequest, budget: Budget, now: float) -> dict[str, Any]:
        """Decide on ``request``, log it, then remediate in the launch's own account."""
        outcome = self.enforcer.enforce(request, now, action=self.planned_action)
        d = outcome.decision
        if d.effect != "deny" or outcome.duplicate:  # nothing to act on: no AssumeRole, no clients
            result = self.remediator.remediate(outcome, None, None, budget)
            return self._result(request, outcome, result)
        try:
            ec2 = self.clients.client("ec2", request.account_id, request.region)
            asg = self.clients.client("autoscaling", request.account_id, request.region)
        except Exception as exc:  # no access to the member account: alert, the sweep retries later
            result = ActionResult(
                "failed", d.decision_id, errors=[f"member account access: {type(exc).__name__}"]
            )
            if d.enforced:
                self.remediator.notify(d, result)
        else:
            result = self.remediator.remediate(outcome, ec2, asg, budget)
        return self._result(request, outcome, result)

    @staticmethod
    def _result(request: LaunchRequest, outcome: Outcome, result: ActionResult) -> dict[str, Any]:
        d = outcome.decision
        return {
            "event_id": request.event_id,
            "decision_id": d.decision_id,
            "effect": d.effect,
            "reasons": d.reason_codes,
            "duplicate": outcome.duplicate,
            "remediation": result.to_dict(),
        }

    def sweep(self, request: LaunchRequest, budget: Budget, now: float) -> dict[str, Any]:
        """Decide on every running instance with accelerators in the swept accounts and regions."""
        results: list[dict[str, Any]] = []
        errors: list[str] = []
        accounts = self.sweep_accounts or (request.account_id,)
        regions = self.sweep_regions or (request.region,)
        for account in accounts:
            for region in regions:
                if len(results) >= self.max_sweep:  # the cap is reached: no more describe calls
                    break
                try:
                    found = self._running(account, region, self.max_sweep - len(results))
                except Exception as exc:
                    errors.append(f"{account}/{region}: {type(exc).__name__}")
                    continue
                for inst in found:
                    iid = str(inst["InstanceId"])
                    req = LaunchRequest(
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
                    results.append(self.decide_and_act(req, budget, now))
        return {"status": "swept", "results": results, "errors": errors}

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
