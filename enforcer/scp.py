"""Service control policies generated from the chip catalogue: the preventive control for direct calls.

The policies deny every instance type whose chip class is controlled (``model.CONTROLLED_CLASSES``)
on the paths that carry a type condition key, to everyone but the broker role:

- ``ec2:RunInstances`` (``ec2:InstanceType``; also the caller-side check of instant EC2 Fleets and of
  Auto Scaling's launch-template validation),
- ``ec2:ModifyInstanceAttribute`` resizes (``ec2:Attribute/InstanceType``),
- Auto Scaling group and launch-configuration calls (``autoscaling:InstanceTypes``),
- SageMaker jobs, endpoints, notebooks and apps (``sagemaker:InstanceTypes``, ``ml.`` prefixed),
- ``ec2:PurchaseCapacityBlock`` (and its extension), which names no type, outright;
- ``sagemaker:CreateTrainingPlan`` and ``sagemaker:ExtendTrainingPlan`` (SageMaker's reserved ml.p5/ml.trn2
  capacity, named only by an offering id), outright;
- every other decided call of the coverage table whose IAM action has an instance-type condition
  key (``enforcer.coverage.table.iam_conditions``: ``ec2:StartInstances``, ``ec2:CreateFleet``,
  ``cloud9:InstanceType``, ``codebuild:...instanceType`` ...), one family per key.

Types are listed explicitly (no ``p*`` wildcards, which both over-block and go stale). Every
document is kept under the 5,120-character SCP limit (minified JSON) and the statements are split
over several documents when needed. SCPs do not bind service-linked roles or the management
account; the guard covers those (see docs/design.md, "Honest enforcement points").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enforcer.chips import ChipCatalog
from enforcer.model import CONTROLLED_CLASSES, InputError

#: AWS Organizations' limit on an SCP document, in characters.
SCP_MAX_CHARS = 5120
#: Organizations allows five SCPs per target; one is usually FullAWSAccess.
MAX_POLICIES_PER_TARGET = 4
DEFAULT_BROKER_ROLE = "GpuLaunchBroker"
DEFAULT_GUARD_ROLE = "GpuEnforcerGuard"
#: The roles that deploy infra/member-account.yaml: service-managed StackSets (``stacksets-exec-*``) and
#: self-managed ones (``AWSCloudFormationStackSetExecutionRole``).
DEPLOYER_ROLES = ("stacksets-exec-*", "AWSCloudFormationStackSetExecutionRole")
#: Every IAM call that creates, deletes, re-trusts or re-permissions a role, or lets another service use it.
ROLE_CHANGES = (
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
)

ASG_ACTIONS = (
    "autoscaling:CreateAutoScalingGroup",
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:CreateLaunchConfiguration",
)
SAGEMAKER_ACTIONS = (
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateHyperParameterTuningJob",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateTransformJob",
    "sagemaker:CreateApp",
    "sagemaker:CreateCluster",
    "sagemaker:UpdateCluster",
)


@dataclass(frozen=True, slots=True)
class _Family:
    """One statement shape whose value list may be split over several statements."""

    sid: str
    action: str | tuple[str, ...]
    resource: str
    operator: str
    key: str
    prefix: str = ""


def controlled_types(catalog: ChipCatalog | None = None) -> list[str]:
    """Every known instance type whose chip class is controlled, sorted.

    Parameters
    ----------
    catalog
        The catalogue to classify with (the bundled one when None).
    """
    cat = catalog or ChipCatalog()
    return [t for t in cat.known_types() if cat.classify(t).chip_class in CONTROLLED_CLASSES]


def _minified(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


#: Families written by hand above; the coverage table's other (action, key) pairs join them or form their own.
_KNOWN_KEYS = {
    "sagemaker:InstanceTypes": "DenyControlledSageMaker",
    "autoscaling:InstanceTypes": "DenyControlledAutoScaling",
}


def _model_families() -> list[_Family]:
    """Families for the instance-type condition keys of decided calls (coverage table, from IAM data)."""
    from enforcer.coverage.table import iam_conditions

    by_key: dict[str, list[str]] = {}
    for action, key in iam_conditions():
        if key == "ec2:InstanceType" and action in ("ec2:RunInstances", "ec2:ModifyInstanceAttribute"):
            continue  # hand-written families: RunInstances (instance resources), resizes (the new type)
        by_key.setdefault(key, []).append(action)
    out = []
    for key, actions in sorted(by_key.items()):
        if key in _KNOWN_KEYS:
            continue
        sid = "DenyControlled" + "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", key) if p)
        op = "ForAnyValue:StringEquals" if key.endswith("s") else "StringEquals"
        out.append(_Family(sid, tuple(sorted(set(actions))), "*", op, key))
    return out


def _known_actions(key: str, hand: tuple[str, ...]) -> tuple[str, ...]:
    from enforcer.coverage.table import iam_conditions

    return tuple(sorted(set(hand) | {a for a, k in iam_conditions() if k == key}))


def _families(partition: str) -> list[_Family]:
    instance = f"arn:{partition}:ec2:*:*:instance/*"
    return [
        _Family(
            "DenyControlledRunInstances", "ec2:RunInstances", instance, "StringEquals", "ec2:InstanceType"
        ),
        _Family(
            "DenyControlledResize",
            "ec2:ModifyInstanceAttribute",
            instance,
            "StringEquals",
            "ec2:Attribute/InstanceType",
        ),
        _Family(
            "DenyControlledAutoScaling",
            _known_actions("autoscaling:InstanceTypes", ASG_ACTIONS),
            "*",
            "ForAnyValue:StringEquals",
            "autoscaling:InstanceTypes",
        ),
        _Family(
            "DenyControlledSageMaker",
            _known_actions("sagemaker:InstanceTypes", SAGEMAKER_ACTIONS),
            "*",
            "ForAnyValue:StringEquals",
            "sagemaker:InstanceTypes",
            prefix="ml.",
        ),
        *_model_families(),
    ]


def _statement(
    sid: str, action: str | Sequence[str], resource: str | Sequence[str], condition: dict[str, Any]
) -> dict[str, Any]:
    act: str | list[str] = action if isinstance(action, str) else list(action)
    res: str | list[str] = resource if isinstance(resource, str) else list(resource)
    return {"Sid": sid, "Effect": "Deny", "Action": act, "Resource": res, "Condition": condition}


def _split(fam: _Family, values: list[str], exempt: dict[str, Any], budget: int) -> list[dict[str, Any]]:
    """Statements of ``fam`` over ``values``, each at most ``budget`` characters minified."""
    out: list[dict[str, Any]] = []
    chunk: list[str] = []

    def build(vals: list[str], n: int) -> dict[str, Any]:
        cond = {fam.operator: {fam.key: vals}, **exempt}
        return _statement(f"{fam.sid}{n}", fam.action, fam.resource, cond)

    for v in values:
        trial = [*chunk, v]
        if chunk and len(_minified(build(trial, len(out) + 1))) > budget:
            out.append(build(chunk, len(out) + 1))
            trial = [v]
        if len(_minified(build(trial, len(out) + 1))) > budget:
            raise InputError(f"{fam.sid}: one value does not fit the SCP size limit", "SCP_TOO_LARGE")
        chunk = trial
    if chunk:
        out.append(build(chunk, len(out) + 1))
    return out


def _protect_roles(partition: str, roles: Sequence[str]) -> dict[str, Any]:
    """Deny changing the enforcer's roles to all but their deployers: the broker role's exemption is
    matched by name in every account, so a member administrator who could create or re-trust a role of
    that name could launch (or buy a training plan, which nothing can cancel) past every deny."""
    deployers = [f"arn:{partition}:iam::*:role/{r}" for r in DEPLOYER_ROLES]
    # The deployers are protected too (else a member could create a role of a deployer's name and act as
    # one), and every path of each name (a role name is unique whatever its path: a pre-created
    # /x/GpuLaunchBroker would keep the StackSet from creating the real one).
    names = [*roles, *DEPLOYER_ROLES]
    arns = [f"arn:{partition}:iam::*:role/{p}{r}" for r in names for p in ("", "*/")]
    return _statement(
        "ProtectEnforcerRoles", ROLE_CHANGES, arns, {"ArnNotLike": {"aws:PrincipalArn": deployers}}
    )


def generate_scps(
    types: Iterable[str] | None = None,
    *,
    broker_role: str = DEFAULT_BROKER_ROLE,
    guard_role: str = DEFAULT_GUARD_ROLE,
    partition: str = "aws",
    max_chars: int = SCP_MAX_CHARS,
) -> list[dict[str, Any]]:
    """Build the SCP documents denying ``types`` to everyone but ``broker_role``.

    Parameters
    ----------
    types
        Controlled instance types (default: :func:`controlled_types` of the bundled catalogue).
    broker_role
        Name of the role allowed to launch controlled types (matched in every account).
    guard_role
        Name of the role the guard assumes in member accounts; it and the broker role can be changed
        only by the StackSet execution roles that deploy them (``ProtectEnforcerRoles``).
    partition
        ARN partition (``aws``, ``aws-us-gov``, ``aws-cn``).
    max_chars
        Size limit of one minified document.

    Returns
    -------
    list of dict
        Policy documents, each at most ``max_chars`` characters when minified.

    Raises
    ------
    InputError
        When the list is empty or a single statement cannot fit the limit.
    """
    values = sorted(
        {t.strip().lower() for t in (controlled_types() if types is None else types) if t.strip()}
    )
    if not values:
        raise InputError("no controlled instance types to deny", "SCP_EMPTY")
    exempt = {"ArnNotLike": {"aws:PrincipalArn": f"arn:{partition}:iam::*:role/{broker_role}"}}
    shell = {"Version": "2012-10-17", "Statement": []}
    budget = max_chars - len(_minified(shell))
    statements: list[dict[str, Any]] = []
    for fam in _families(partition):
        statements += _split(fam, [fam.prefix + v for v in values], exempt, budget)
    statements.append(_protect_roles(partition, (broker_role, guard_role)))
    blocks = ("ec2:PurchaseCapacityBlock", "ec2:PurchaseCapacityBlockExtension")
    statements.append(_statement("DenyCapacityBlocks", blocks, "*", exempt))
    plans = ("sagemaker:CreateTrainingPlan", "sagemaker:ExtendTrainingPlan")
    statements.append(_statement("DenyTrainingPlans", plans, "*", exempt))
    docs: list[dict[str, Any]] = []
    for st in statements:  # first fit, in order, so related statements stay together
        for doc in docs:
            if len(_minified({**doc, "Statement": [*doc["Statement"], st]})) <= max_chars:
                doc["Statement"].append(st)
                break
        else:
            docs.append({"Version": "2012-10-17", "Statement": [st]})
    return docs


def policy_name(index: int, total: int) -> str:
    """File and policy name of document ``index`` (0-based) of ``total``."""
    return "gpu-launch-guard" if total == 1 else f"gpu-launch-guard-{index + 1}"


def write_scps(docs: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write each document minified to ``out_dir/<name>.json`` and return the paths.

    Parameters
    ----------
    docs
        Documents from :func:`generate_scps`.
    out_dir
        Directory (created when missing); stale ``gpu-launch-guard*.json`` files are removed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("gpu-launch-guard*.json"):
        old.unlink()
    paths = []
    for i, doc in enumerate(docs):
        path = out_dir / f"{policy_name(i, len(docs))}.json"
        path.write_text(_minified(doc) + "\n")
        paths.append(path)
    return paths


def covered_types(docs: Iterable[dict[str, Any]], key: str = "ec2:InstanceType") -> set[str]:
    """Every value listed under condition ``key`` in ``docs`` (for checks and tests)."""
    found: set[str] = set()
    for doc in docs:
        for st in doc["Statement"]:
            for block in st.get("Condition", {}).values():
                found.update(block.get(key, []))
    return found
