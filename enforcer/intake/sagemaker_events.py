"""SageMaker state-change events that SageMaker sends to EventBridge (``source: aws.sagemaker``).

SageMaker compute never produces an EC2 state change, so these events are its reactive backstop.
Detail types handled (spelled as in the SageMaker developer guide's EventBridge page):

=========================================  ===========================  =====================================
detail-type                                decided in states            instance type in the event
=========================================  ===========================  =====================================
SageMaker Training Job State Change        InProgress                   ``ResourceConfig`` (not always sent)
SageMaker Processing Job State Change      InProgress                   ``ProcessingResources.ClusterConfig``
SageMaker Transform Job State Change       InProgress                   ``TransformResources``
SageMaker Endpoint State Change            IN_SERVICE/Creating/Updating never: looked up (endpoint config)
SageMaker Notebook Instance State Change   Pending/InService/Updating   ``InstanceType``
SageMaker HyperPod Cluster State Change    Creating/InService/Updating  ``InstanceGroups`` when sent
=========================================  ===========================  =====================================

Where the event lacks the type, the item is a ``managed_resource`` ref that the guard resolves with
the service's describe call (``enforcer.managed``); unresolved, the policy denies it. Other SageMaker
detail types (models, pipelines, tuning jobs whose training jobs have their own events) are Ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake.cloudtrail import account_id, region
from enforcer.intake.fields import get, instance_type, kind, opt_count, text
from enforcer.intake.registry import detector
from enforcer.model import Ignored, InputError, LaunchItem, LaunchRequest

SOURCE = "aws.sagemaker"
_REF = "managed_resource"  # = enforcer.managed.registry.MANAGED_REF (intake stays import-light)


#: detail-type -> (managed kind, name field, status field, states decided, where the types sit)
EVENTS: dict[str, tuple[str, str, str, frozenset[str], tuple[str, ...]]] = {
    "SageMaker Training Job State Change": (
        "sagemaker:training-job",
        "TrainingJobName",
        "TrainingJobStatus",
        frozenset({"inprogress"}),
        ("ResourceConfig", "ResourceConfig.InstanceGroups"),
    ),
    "SageMaker Processing Job State Change": (
        "sagemaker:processing-job",
        "ProcessingJobName",
        "ProcessingJobStatus",
        frozenset({"inprogress"}),
        ("ProcessingResources.ClusterConfig",),
    ),
    "SageMaker Transform Job State Change": (
        "sagemaker:transform-job",
        "TransformJobName",
        "TransformJobStatus",
        frozenset({"inprogress"}),
        ("TransformResources",),
    ),
    "SageMaker Endpoint State Change": (
        "sagemaker:endpoint",
        "EndpointName",
        "EndpointStatus",
        frozenset({"in_service", "inservice", "creating", "updating", "systemupdating"}),
        (),
    ),
    "SageMaker Notebook Instance State Change": (
        "sagemaker:notebook-instance",
        "NotebookInstanceName",
        "NotebookInstanceStatus",
        frozenset({"pending", "inservice", "updating"}),
        ("",),
    ),
    "SageMaker HyperPod Cluster State Change": (
        "sagemaker:cluster",
        "ClusterName",
        "ClusterStatus",
        frozenset({"creating", "inservice", "updating"}),
        ("InstanceGroups",),
    ),
}


def _is_sagemaker_state_change(e: Mapping[str, Any]) -> bool:
    dt = e.get("detail-type")  # predicates never raise: a list here is someone else's malformed event
    return e.get("source") == SOURCE and isinstance(dt, str) and dt in EVENTS


def _walk(detail: Mapping[str, Any], dotted: str) -> tuple[Any, str]:
    node: Any = detail
    path = "detail"
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(node, Mapping):
            return None, path
        node, path = get(node, part), f"{path}.{part}"
    return node, path


def _items(
    detail: Mapping[str, Any], where: tuple[str, ...], res_kind: str
) -> tuple[list[LaunchItem], dict[str, str]]:
    items: list[LaunchItem] = []
    original: dict[str, str] = {}
    for dotted in where:
        node, path = _walk(detail, dotted)
        groups = node if isinstance(node, list) else [node]
        for i, g in enumerate(groups):
            if not isinstance(g, Mapping):
                continue
            gpath = f"{path}[{i}]" if isinstance(node, list) else path
            t = g.get("InstanceType")
            if t is None:
                continue
            raw = instance_type(t, f"{gpath}.InstanceType")
            n = max(
                opt_count(g, "InstanceCount", gpath) or 0,
                opt_count(g, "TargetCount", gpath) or 0,
                opt_count(g, "CurrentCount", gpath) or 0,
                1,
            )
            norm = raw[3:] if raw.startswith("ml.") and len(raw) > 3 else raw
            items.append(LaunchItem(norm, n, path=f"{gpath}.InstanceType"))
            original[f"{gpath}.InstanceType"] = raw
    if not items:
        items = [LaunchItem(None, 1, ref={"kind": _REF, "resource": res_kind}, path="detail")]
    return items, original


@detector("sagemaker_state_change", _is_sagemaker_state_change)
def from_sagemaker_state_change(event: Mapping[str, Any], now: str | None) -> LaunchRequest | Ignored:
    """A SageMaker state change -> a request naming the resource (``extra["managed"]``).

    Raises
    ------
    InputError
        Malformed envelope or detail.
    """
    dt = str(event["detail-type"])
    res_kind, name_key, status_key, live, where = EVENTS[dt]
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise InputError(f"detail: expected an object, got {kind(detail)}")
    eid = event.get("id")
    event_id = text(eid, "id", 128) if eid is not None else None
    action = f"sagemaker:{dt.removeprefix('SageMaker ').replace(' ', '')}"
    status = text(get(detail, status_key), f"detail.{status_key}", 64)
    if status.replace(" ", "").lower() not in live:
        return Ignored(f"{res_kind} status {status}", event_id, action)
    name = text(get(detail, name_key), f"detail.{name_key}", 256)
    acct = account_id(event.get("account"), "account")
    reg = region(event.get("region"), "region")
    items, original = _items(detail, where, res_kind)
    managed: dict[str, Any] = {"kind": res_kind, "name": name}
    arn = get(detail, name_key.removesuffix("Name") + "Arn")  # TrainingJobArn, EndpointArn ...
    if isinstance(arn, str) and len(arn) <= 2048:
        managed["arn"] = arn
    extra: dict[str, Any] = {"managed": managed, "status": status}
    if original:
        extra["original_instance_types"] = original
    when = event.get("time")
    return LaunchRequest(
        source="state_change",
        action=action,
        account_id=acct,
        region=reg,
        items=items,
        event_id=event_id,
        event_time=text(when, "time", 64) if isinstance(when, str) else now,
        extra=extra,
    )
