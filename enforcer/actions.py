"""Remediation after a reactive deny: stop (or terminate), tag, notify, within a blast-radius cap.

The guard sees launches seconds after they happen, so a deny there means undoing: the instances the
launch produced are stopped by default (terminated when configured), tagged with the decision id and
reason, and an SNS notification is sent. Safety rails:

- **mode**: in ``dryrun`` nothing is acted on, tagged or notified; the remediator only logs "would deny".
- **idempotency**: an outcome whose audit receipt is a duplicate (the trigger event was already
  decided: at-least-once delivery) is never acted on again.
- **blast radius**: at most ``max_per_invocation`` instances per invocation and ``max_per_hour`` per
  hour across invocations (a DynamoDB counter updated with a conditional ``ADD``). Beyond the cap, or
  when the counter cannot be read, the remediator only alerts.
- instances already stopped (or terminated) are not acted on again; they are tagged if untagged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from enforcer.aws_errors import error_code
from enforcer.dynamo import create_pk_table
from enforcer.model import Decision, InputError, LaunchRequest
from enforcer.pipeline import Outcome

if TYPE_CHECKING:
    from enforcer.act_state import AccountCaps

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


class HourlyCounter:
    """Blast-radius counter shared by all invocations: one DynamoDB item per hour.

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        Table with partition key ``pk`` (S); items expire through the ``expires_at`` TTL attribute.
    cap
        Most instances acted on per hour.
    clock
        Epoch-seconds clock (injected by tests).
    """

    def __init__(self, dynamodb: Any, table: str, cap: int, clock: Callable[[], float] = time.time) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.cap = cap
        self.clock = clock

    def key(self) -> str:
        """The counter item of the current hour."""
        return "actions#" + time.strftime("%Y-%m-%dT%H", time.gmtime(self.clock()))

    def acquire(self, n: int) -> bool:
        """Atomically add ``n`` when the hour's total stays within the cap; False when it would not.

        Raises
        ------
        botocore.exceptions.ClientError
            On any error other than the failed condition.
        """
        if n <= 0:
            return True
        if n > self.cap:
            return False
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"pk": {"S": self.key()}},
                UpdateExpression="ADD #n :k SET #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression="attribute_not_exists(#n) OR #n <= :room",
                ExpressionAttributeNames={"#n": "count", "#ttl": "expires_at"},
                ExpressionAttributeValues={
                    ":k": {"N": str(n)},
                    ":room": {"N": str(self.cap - n)},
                    ":ttl": {"N": str(int(self.clock()) + 2 * 3600)},
                },
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def used(self) -> int:
        """Instances acted on so far this hour."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"pk": {"S": self.key()}}, ConsistentRead=True
        )
        return int(item.get("Item", {}).get("count", {}).get("N", "0"))


def create_counter_table(dynamodb: Any, table: str) -> str:
    """Create the blast-radius counter table (pk ``pk``, on demand, TTL ``expires_at``) if missing.

    Parameters
    ----------
    dynamodb
        boto3 DynamoDB client.
    table
        Table name.
    """
    try:
        create_pk_table(dynamodb, table)
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    return table


@dataclass
class Budget:
    """What one invocation may still act on: the per-invocation cap, then the hourly counter.

    Parameters
    ----------
    max_per_invocation
        Instances this invocation may act on.
    hourly
        Shared hourly counter, or None for the per-invocation cap only.
    """

    max_per_invocation: int
    hourly: HourlyCounter | None = None
    used: int = 0
    errors: list[str] = field(default_factory=list)
    #: Per account and region hourly caps (``act_state.AccountCaps``); used by ``take_for``.
    caps: AccountCaps | None = None

    def take(self, n: int) -> int:
        """Grant up to ``n`` actions; 0 when a cap is reached or the counter fails (alert only)."""
        grant = max(0, min(n, self.max_per_invocation - self.used))
        if grant and self.hourly is not None:
            try:
                while grant and not self.hourly.acquire(grant):
                    grant = 0 if grant == 1 else grant // 2
            except Exception as exc:  # cannot check the cap: do not act, alert instead
                self.errors.append(f"blast-radius counter failed: {type(exc).__name__}")
                grant = 0
        self.used += grant
        return grant

    def invocation_room(self, n: int, legal: bool) -> int:
        """What the per-invocation cap lets through of ``n`` (all of it for a legal prohibition)."""
        return n if legal else max(0, min(n, self.max_per_invocation - self.used))

    def take_for(self, n: int, account: str, region: str, legal: bool) -> int:
        """Grant up to ``n`` actions in ``account``/``region``: legal denies are never capped.

        Non-legal denies pass the per-invocation cap, then the account's hourly counter (halving
        the request until it fits); a counter failure grants nothing (alert, backlog).
        """
        if legal:
            return n
        grant = self.invocation_room(n, False)
        if grant and self.caps is not None:
            try:
                while grant and not self.caps.acquire(account, region, grant):
                    grant = 0 if grant == 1 else grant // 2
            except Exception as exc:
                self.errors.append(f"blast-radius counter failed: {type(exc).__name__}")
                grant = 0
        elif grant and self.hourly is not None:
            return self.take(n)
        self.used += grant
        return grant


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


def launch_tags(decision: Decision, request: LaunchRequest) -> list[dict[str, str]]:
    """Tags the broker puts on what it launches: decision id, attestation id, requester (<= 256 chars)."""
    tags = [
        {"Key": f"{TAG_PREFIX}:decision-id", "Value": decision.decision_id[:MAX_TAG_VALUE]},
        {"Key": f"{TAG_PREFIX}:launched-by", "Value": "broker"},
    ]
    if request.attestation_ref:
        tags.append({"Key": "gpu-attestation", "Value": request.attestation_ref[:MAX_TAG_VALUE]})
    if request.principal:
        tags.append({"Key": f"{TAG_PREFIX}:requested-by", "Value": request.principal[:MAX_TAG_VALUE]})
    return tags


def broker_launch(ec2: Any, request: LaunchRequest, decision: Decision) -> list[str]:
    """Launch exactly what was decided for a broker request, tagged with the decision id.

    The decided instance type is passed explicitly, so a launch template edited between the decision
    and the launch cannot change it; ``ClientToken`` makes a retried request idempotent.

    Parameters
    ----------
    ec2
        EC2 client acting as the broker role in the caller's account.
    request
        The broker request (its validated body is ``request.extra["launch"]``).
    decision
        The allow (or audit) decision.

    Returns
    -------
    list of str
        Instance ids launched.

    Raises
    ------
    InputError
        When the body cannot be launched as given (e.g. a fleet without a launch template).
    """
    body = request.extra.get("launch") or {}
    count = int(body.get("count", 1))
    types = [i.instance_type for i in request.items if i.instance_type is not None]
    tag_spec = [{"ResourceType": "instance", "Tags": launch_tags(decision, request)}]
    token = str(body.get("clientToken") or request.event_id or decision.decision_id)[:64]
    lt_body = body.get("launchTemplate")
    template: dict[str, str] | None = None
    if isinstance(lt_body, dict):
        template = {"Version": str(lt_body.get("version", "$Default"))}
        if lt_body.get("id"):
            template["LaunchTemplateId"] = str(lt_body["id"])
        else:
            template["LaunchTemplateName"] = str(lt_body.get("name"))
    fleet = body.get("fleet")
    if isinstance(fleet, dict):
        if template is None or fleet.get("type", "instant") != "instant":
            raise InputError("the broker launches instant fleets with a launchTemplate only", "BAD_LAUNCH")
        resp = ec2.create_fleet(
            Type="instant",
            ClientToken=token,
            LaunchTemplateConfigs=[
                {"LaunchTemplateSpecification": template, "Overrides": [{"InstanceType": t} for t in types]}
            ],
            TargetCapacitySpecification={
                "TotalTargetCapacity": count,
                "DefaultTargetCapacityType": "on-demand",
            },
            TagSpecifications=tag_spec,
        )
        return [i for inst in resp.get("Instances") or [] for i in inst.get("InstanceIds") or []]
    kwargs: dict[str, Any] = {
        "MinCount": count,
        "MaxCount": count,
        "ClientToken": token,
        "TagSpecifications": tag_spec,
    }
    if types:
        kwargs["InstanceType"] = types[0]
    if template is not None:
        kwargs["LaunchTemplate"] = template
    if body.get("imageId"):
        kwargs["ImageId"] = str(body["imageId"])
    if body.get("subnetId"):
        kwargs["SubnetId"] = str(body["subnetId"])
    if "ImageId" not in kwargs and template is None:
        raise InputError("imageId or launchTemplate is required to launch", "BAD_LAUNCH")
    resp = ec2.run_instances(**kwargs)
    return [str(i["InstanceId"]) for i in resp.get("Instances") or []]


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
