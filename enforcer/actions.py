"""Remediation after a reactive deny: stop (or terminate), tag, notify, within a blast-radius cap.

The guard sees launches seconds after they happen, so a deny there means undoing: the instances the
launch produced are stopped by default (terminated when configured), tagged with the decision id and
reason, and an SNS notification is sent. Safety rails:

- **mode**: in ``dryrun`` nothing is acted on, tagged or notified; the remediator only logs "would deny".
- **idempotency**: an outcome whose audit receipt is a duplicate (the trigger event was already
  decided: at-least-once delivery) is never acted on again.
- **blast radius**: what a :class:`~enforcer.budget.Budget` grants (per invocation, then per account
  and region per hour, ``enforcer.act_state.AccountCaps``); beyond it the remediator only alerts.
- instances already stopped (or terminated) are not acted on again; they are tagged if untagged.

What the broker launches is ``enforcer.broker_launch``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from enforcer.aws_errors import error_code
from enforcer.budget import Budget
from enforcer.model import Decision
from enforcer.pipeline import Outcome

__all__ = ["MAX_TAG_VALUE", "TAG_PREFIX", "ActionResult", "Budget", "LogLike", "Remediator", "reason_text"]

#: Library logger; the Lambda handlers copy their Powertools configuration onto it (JSON lines).
log = logging.getLogger(__name__)
TAG_PREFIX = "gpu-enforcer"
MAX_TAG_VALUE = 256
ASG_TAG = "aws:autoscaling:groupName"
SUSPENDED_PROCESSES = ("Launch", "ReplaceUnhealthy", "HealthCheck", "AZRebalance")
_DONE_STATES = {
    "stop": frozenset({"stopping", "stopped", "shutting-down", "terminated"}),
    "terminate": frozenset({"shutting-down", "terminated"}),
}
_PAST = {"stop": "stopped", "terminate": "terminated"}
_DESCRIBE_BATCH = 100
_MAX_TARGETS = 1000


class LogLike(Protocol):
    """The subset of ``logging.Logger`` (and Powertools ``Logger``) the remediator uses."""

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...


@dataclass
class ActionResult:
    """What the remediator did with one outcome.

    ``status`` is one of ``allowed``, ``audited``, ``duplicate``, ``would_deny``, ``no_target``,
    ``stopped``, ``terminated``, ``capped`` (some or all targets left running, alert sent),
    ``already_stopped`` or ``failed``.
    """

    status: str
    decision_id: str
    targets: list[str] = field(default_factory=list)
    acted: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notified: bool = False
    suspended_groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "decision_id": self.decision_id,
            "targets": self.targets,
            "acted": self.acted,
            "already": self.already,
            "capped": self.capped,
            "errors": self.errors,
            "notified": self.notified,
            "suspended_groups": self.suspended_groups,
        }


def reason_text(decision: Decision, limit: int = MAX_TAG_VALUE) -> str:
    """Reason codes and messages, truncated to ``limit`` characters (an EC2 tag value's maximum)."""
    text = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons) or decision.effect
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Remediator:
    """Acts on deny decisions of the reactive guard.

    Parameters
    ----------
    action
        ``stop`` (default) or ``terminate``.
    sns, topic_arn
        SNS client and topic for notifications (no notification when either is None).
    logger
        Where "would deny" and action lines go.
    """

    def __init__(
        self,
        action: str = "stop",
        *,
        sns: Any = None,
        topic_arn: str | None = None,
        logger: LogLike | None = None,
    ) -> None:
        if action not in _PAST:
            raise ValueError(f"action must be stop or terminate, not {action!r}")
        self.action = action
        self.sns = sns
        self.topic_arn = topic_arn
        self.log: LogLike = logger or log

    def remediate(self, outcome: Outcome, ec2: Any, autoscaling: Any, budget: Budget) -> ActionResult:
        """Carry out (or, in dryrun, only log) what ``outcome`` calls for.

        Parameters
        ----------
        outcome
            Decision and audit receipt from ``Enforcer.enforce``.
        ec2, autoscaling
            boto3 clients of the account and region the launch happened in.
        budget
            The invocation's blast-radius budget.
        """
        d = outcome.decision
        if outcome.duplicate:
            self.log.info("duplicate event: already decided, not acting again", extra=_ctx(d))
            return ActionResult("duplicate", d.decision_id)
        if d.effect != "deny":
            return ActionResult("allowed" if d.effect == "allow" else "audited", d.decision_id)
        targets = self.targets(d, ec2, autoscaling)
        result = ActionResult("no_target", d.decision_id, targets=targets)
        if not d.enforced:
            self.log.info(
                f"would deny: dryrun, would {self.action} {len(targets)} instance(s)",
                extra={**_ctx(d), "would_act_on": targets},
            )
            result.status = "would_deny"
            return result
        if targets:
            seen = len(budget.errors)
            self.execute(d, targets, ec2, autoscaling, budget.take, result)
            result.errors += budget.errors[seen:]  # only this outcome's counter errors
        self.notify(d, result)
        return result

    # -- targets -------------------------------------------------------------------------------
    def targets(self, decision: Decision, ec2: Any, autoscaling: Any) -> list[str]:
        """Instance ids a denied launch produced (event ids, ASG members, fleet instances)."""
        req = decision.request
        ids = list(dict.fromkeys(req.instance_ids))
        group = req.extra.get("auto_scaling_group_name")
        if isinstance(group, str) and autoscaling is not None:
            ids += [i for i in self._asg_instances(autoscaling, group) if i not in ids]
        fleet = req.extra.get("fleet_id")
        if isinstance(fleet, str) and not req.instance_ids:
            ids += [i for i in _fleet_instances(ec2, fleet) if i not in ids]
        return ids[:_MAX_TARGETS]

    def _asg_instances(self, autoscaling: Any, group: str) -> list[str]:
        try:
            resp = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])
        except Exception:
            return []
        return [
            str(i["InstanceId"])
            for g in resp.get("AutoScalingGroups") or []
            for i in g.get("Instances") or []
        ]

    # -- acting ----------------------------------------------------------------------------------
    def execute(
        self,
        d: Decision,
        targets: list[str],
        ec2: Any,
        autoscaling: Any,
        grant: Callable[[int], int],
        result: ActionResult,
        *,
        describe: bool = True,
        after: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Stop (or terminate) what ``grant`` allows of ``targets``, then hold ASGs and tag.

        Parameters
        ----------
        d
            The (logged) deny decision.
        targets
            Instance ids the launch produced.
        ec2, autoscaling
            Clients of the launch's account and region.
        grant
            Called with the number of instances to act on; returns how many may be.
        result
            Filled in place (``acted``, ``capped``, ``already``, ``errors``, ``status``).
        describe
            Describe the targets first (their state, tags and ASG). The guard skips it for a
            first delivery whose event names freshly launched instances: one call less before
            the stop.
        after
            Runs the follow-up calls (tags, ASG suspension); the guard passes a function that
            runs them concurrently after the stop. Default: run them in turn.
        """
        run = after or (lambda f: f())
        if describe:
            states, tagged, groups = _describe(ec2, targets)
        else:
            states, tagged, groups = dict.fromkeys(targets, "pending"), set(), {}
        done = _DONE_STATES[self.action]
        to_act = [i for i in targets if states.get(i) not in done and states.get(i) is not None]
        result.already = [i for i in targets if states.get(i) in done]
        missing = [i for i in targets if i not in states]
        if missing:
            result.errors.append(f"not found: {', '.join(missing[:10])}")
        granted = grant(len(to_act))
        act, result.capped = to_act[:granted], to_act[granted:]
        if act:
            try:
                if self.action == "stop":
                    ec2.stop_instances(InstanceIds=act)
                else:
                    ec2.terminate_instances(InstanceIds=act)
                result.acted = act
            except Exception as exc:
                result.errors.append(f"{self.action} failed: {error_code(exc)}")
        named = d.request.extra.get("auto_scaling_group_name")
        held = {named} if isinstance(named, str) else set()
        held |= {groups[i] for i in act if i in groups}  # members launched by an ASG: stop it replacing them
        if act and autoscaling is not None:
            for group in sorted(held)[:10]:
                run(lambda g=group: self._suspend(autoscaling, g, result))  # type: ignore[misc]
        to_tag = act + [i for i in result.already if i not in tagged]
        if to_tag:
            run(lambda: self._tag(ec2, to_tag, d, result))
        if result.capped:
            result.status = "capped"
        elif result.acted:
            result.status = _PAST[self.action]
        elif act:
            result.status = "failed"
        elif result.already:
            result.status = "already_stopped"
        else:
            result.status = "failed" if result.errors else "no_target"
        self.log.info(f"deny: {result.status}", extra={**_ctx(d), **result.to_dict()})

    def _suspend(self, autoscaling: Any, group: str, result: ActionResult) -> None:
        """Stop the group replacing what is stopped (a stopped member counts as unhealthy)."""
        try:
            autoscaling.suspend_processes(
                AutoScalingGroupName=group, ScalingProcesses=list(SUSPENDED_PROCESSES)
            )
            result.suspended_groups.append(group)
        except Exception as exc:
            result.errors.append(f"suspend {group} failed: {error_code(exc)}")

    def _tag(self, ec2: Any, ids: list[str], d: Decision, result: ActionResult) -> None:
        tags = [
            {"Key": f"{TAG_PREFIX}:decision-id", "Value": d.decision_id[:MAX_TAG_VALUE]},
            {"Key": f"{TAG_PREFIX}:reason", "Value": reason_text(d)},
            {"Key": f"{TAG_PREFIX}:action", "Value": _PAST[self.action]},
        ]
        try:
            ec2.create_tags(Resources=ids, Tags=tags)
        except Exception as exc:
            result.errors.append(f"tagging failed: {error_code(exc)}")

    # -- notification ---------------------------------------------------------------------------
    def notify(self, d: Decision, result: ActionResult) -> None:
        """Publish the deny and what was done about it to SNS (errors are logged, not raised)."""
        if self.sns is None or self.topic_arn is None:
            return
        req = d.request
        body = {
            "decision_id": d.decision_id,
            "effect": d.effect,
            "account_id": req.account_id,
            "region": req.region,
            "action": req.action,
            "principal": req.principal,
            "reasons": [r.to_dict() for r in d.reasons][:20],
            "remediation": result.to_dict(),
        }
        subject = f"GPU launch denied in {req.account_id}: {result.status}"
        try:
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject[:100],
                Message=json.dumps(body, default=str)[:200_000],
                MessageAttributes={"status": {"DataType": "String", "StringValue": result.status}},
            )
            result.notified = True
        except Exception as exc:
            result.errors.append(f"notify failed: {error_code(exc)}")
            self.log.warning("notification failed", extra={**_ctx(d), "error": error_code(exc)})


def _describe(ec2: Any, ids: list[str]) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """State of each instance, those already carrying a decision-id tag, and their Auto Scaling group."""
    states: dict[str, str] = {}
    tagged: set[str] = set()
    groups: dict[str, str] = {}
    for start in range(0, len(ids), _DESCRIBE_BATCH):
        batch = ids[start : start + _DESCRIBE_BATCH]
        try:
            resp = ec2.describe_instances(InstanceIds=batch)
        except Exception:
            resp = _describe_one_by_one(ec2, batch)
        for inst in _instances(resp):
            iid = str(inst.get("InstanceId"))
            states[iid] = str((inst.get("State") or {}).get("Name", ""))
            for tag in inst.get("Tags") or []:
                if tag.get("Key") == f"{TAG_PREFIX}:decision-id":
                    tagged.add(iid)
                elif tag.get("Key") == ASG_TAG and isinstance(tag.get("Value"), str):
                    groups[iid] = tag["Value"]
    return states, tagged, groups


def _describe_one_by_one(ec2: Any, ids: Iterable[str]) -> dict[str, Any]:
    reservations: list[Any] = []
    for iid in ids:
        try:
            reservations += ec2.describe_instances(InstanceIds=[iid]).get("Reservations") or []
        except Exception:  # noqa: S112 - a vanished instance is reported as not found
            continue
    return {"Reservations": reservations}


def _instances(resp: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for res in resp.get("Reservations") or []:
        yield from res.get("Instances") or []


def _fleet_instances(ec2: Any, fleet_id: str) -> list[str]:
    try:
        resp = ec2.describe_fleet_instances(FleetId=fleet_id)
    except Exception:
        return []
    return [str(i["InstanceId"]) for i in resp.get("ActiveInstances") or []]


def _ctx(d: Decision) -> dict[str, Any]:
    return {
        "decision_id": d.decision_id,
        "account_id": d.request.account_id,
        "event_id": d.request.event_id,
        "reasons": d.reason_codes,
    }
