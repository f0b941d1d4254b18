"""What the broker launches for an allowed request: exactly what was decided, tagged with the decision.

The decided instance type is passed explicitly, so a launch template edited between the decision
and the launch cannot change it; ``ClientToken`` makes a retried request idempotent.
"""

from __future__ import annotations

from typing import Any

from enforcer.actions import MAX_TAG_VALUE, TAG_PREFIX
from enforcer.model import Decision, InputError, LaunchRequest


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
