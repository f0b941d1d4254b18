"""Managed GPU fleets of other services: AppStream 2.0, Deadline Cloud, WorkSpaces, CodeBuild and
Lambda managed instances. Each service names its GPU capacity its own way; the mapping to EC2 types
below keeps the chip (the catalogue classifies the EC2 type). A name that maps to no known type is
kept as the service spells it, which the catalogue classifies ``unknown`` (treated as controlled)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from enforcer.chips import EC2_TYPE as _EC2_TYPE
from enforcer.chips import appstream_type
from enforcer.managed.registry import Family, ManagedResource, register


def _pages(client: Any, op: str, key: str, limit: int, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
    seen = 0
    if client.can_paginate(op):
        pages: Any = client.get_paginator(op).paginate(**kwargs)
    else:
        pages = [getattr(client, op)(**kwargs)]
    for page in pages:
        for entry in page.get(key) or []:
            if seen >= limit:
                return
            seen += 1
            yield entry


# -- AppStream 2.0 ---------------------------------------------------------------------------------------
def _sweep_appstream(client: Any, limit: int) -> Iterator[ManagedResource]:
    for f in _pages(client, "describe_fleets", "Fleets", limit):
        if f.get("State") not in ("RUNNING", "STARTING"):
            continue
        t = appstream_type(str(f.get("InstanceType") or ""))
        if t is None:
            continue
        cap = f.get("ComputeCapacityStatus") or {}
        n = max(cap.get("Running") or 0, cap.get("Desired") or 0, 1)
        yield ManagedResource(
            "appstream:fleet",
            str(f["Name"]),
            f.get("Arn"),
            [(t, n)],
            [str(f["InstanceType"])],
            status=f.get("State"),
        )


def _stop_appstream(client: Any, res: ManagedResource) -> str:
    client.stop_fleet(Name=res.name)
    return "stopped"


APPSTREAM = register(
    Family("appstream:fleet", "appstream", _sweep_appstream, None, _stop_appstream, "appstream:StopFleet")
)


_BUILDER_OFF = frozenset({"STOPPING", "STOPPED", "DELETING", "FAILED"})


def _sweep_image_builders(client: Any, limit: int) -> Iterator[ManagedResource]:
    for b in _pages(client, "describe_image_builders", "ImageBuilders", limit):
        t = appstream_type(str(b.get("InstanceType") or ""))
        if t is None or b.get("State") in _BUILDER_OFF:
            continue
        yield ManagedResource(
            "appstream:image-builder",
            str(b["Name"]),
            b.get("Arn"),
            [(t, 1)],
            [str(b["InstanceType"])],
            status=b.get("State"),
        )


def _stop_image_builder(client: Any, res: ManagedResource) -> str:
    client.stop_image_builder(Name=res.name)
    return "stopped"


APPSTREAM_BUILDER = register(
    Family(
        "appstream:image-builder",
        "appstream",
        _sweep_image_builders,
        None,
        _stop_image_builder,
        "appstream:StopImageBuilder",
    )
)


# -- Deadline Cloud (service-managed EC2 fleets) -----------------------------------------------------------
#: Deadline accelerator selection names -> the smallest EC2 type with that GPU.
DEADLINE_ACCELERATORS = {"t4": "g4dn.xlarge", "a10g": "g5.xlarge", "l4": "g6.xlarge", "l40s": "g6e.xlarge"}


def _deadline_fleet(fleet: Mapping[str, Any]) -> ManagedResource | None:
    smec2 = (fleet.get("configuration") or {}).get("serviceManagedEc2")
    if not isinstance(smec2, Mapping):
        return None  # customer-managed fleets run on the account's own EC2 instances (EC2 paths cover them)
    caps = smec2.get("instanceCapabilities") or {}
    acc = caps.get("acceleratorCapabilities") or {}
    names = [str(s.get("name")) for s in acc.get("selections") or [] if s.get("name")]
    allowed = [str(t).lower() for t in caps.get("allowedInstanceTypes") or []]
    if not names and not any(_EC2_TYPE.fullmatch(t) and t[0] in "gp" for t in allowed):
        return None  # no accelerators asked for
    n = max(fleet.get("maxWorkerCount") or 0, fleet.get("workerCount") or 0, 1)
    types = allowed or [DEADLINE_ACCELERATORS.get(x, f"deadline.{x}") for x in names]
    res = ManagedResource(
        "deadline:fleet",
        str(fleet["fleetId"]),
        None,
        [(t, n) for t in dict.fromkeys(types)],
        names,
        ids={"farmId": str(fleet["farmId"])},
        status=fleet.get("status"),
        alternatives=True,
    )
    return res


def _sweep_deadline(client: Any, limit: int) -> Iterator[ManagedResource]:
    seen = 0
    for farm in _pages(client, "list_farms", "farms", limit):
        for summary in _pages(client, "list_fleets", "fleets", limit, farmId=farm["farmId"]):
            if seen >= limit:
                return
            fleet = client.get_fleet(farmId=farm["farmId"], fleetId=summary["fleetId"])
            res = _deadline_fleet(fleet)
            if res is not None and (fleet.get("maxWorkerCount") or fleet.get("workerCount")):
                seen += 1
                yield res


def _zero_deadline(client: Any, res: ManagedResource) -> str:
    client.update_fleet(farmId=res.ids["farmId"], fleetId=res.name, minWorkerCount=0, maxWorkerCount=0)
    return "scaled_to_zero"


DEADLINE = register(
    Family(
        "deadline:fleet",
        "deadline",
        _sweep_deadline,
        None,
        _zero_deadline,
        "deadline:UpdateFleet (maxWorkerCount 0)",
    )
)


# -- WorkSpaces ------------------------------------------------------------------------------------------
_WORKSPACES_LEGACY = {
    "GRAPHICS": "g2.2xlarge",
    "GRAPHICSPRO": "g3.4xlarge",
    "GRAPHICS_G4DN": "g4dn.xlarge",
    "GRAPHICSPRO_G4DN": "g4dn.16xlarge",
}


def workspaces_type(compute: str) -> str | None:
    """``GRAPHICS_G6_4XLARGE`` -> ``g6.4xlarge``; None for compute types without a GPU."""
    c = compute.upper()
    if c in _WORKSPACES_LEGACY:
        return _WORKSPACES_LEGACY[c]
    if not c.startswith("GRAPHICS"):
        return None
    rest = c.removeprefix("GRAPHICSPRO_").removeprefix("GRAPHICS_").lower().replace("_", ".", 1)
    return rest if _EC2_TYPE.fullmatch(rest) else compute.lower()


def _sweep_workspaces(client: Any, limit: int) -> Iterator[ManagedResource]:
    for w in _pages(client, "describe_workspaces", "Workspaces", limit):
        if w.get("State") in ("STOPPED", "TERMINATED", "TERMINATING", "SUSPENDED", "ERROR"):
            continue
        compute = str((w.get("WorkspaceProperties") or {}).get("ComputeTypeName") or "")
        t = workspaces_type(compute)
        if t is None:
            continue
        yield ManagedResource(
            "workspaces:workspace", str(w["WorkspaceId"]), None, [(t, 1)], [compute], status=w.get("State")
        )


def _stop_workspace(client: Any, res: ManagedResource) -> str:
    resp = client.stop_workspaces(StopWorkspaceRequests=[{"WorkspaceId": res.name}])
    failed = resp.get("FailedRequests") or []
    if failed:  # AlwaysOn workspaces cannot be stopped
        raise RuntimeError(f"StopWorkspaces refused: {failed[0].get('ErrorCode') or 'unknown'}")
    return "stopped"


WORKSPACES = register(
    Family(
        "workspaces:workspace",
        "workspaces",
        _sweep_workspaces,
        None,
        _stop_workspace,
        "workspaces:StopWorkspaces",
    )
)


# -- CodeBuild reserved-capacity fleets -------------------------------------------------------------------
def _sweep_codebuild(client: Any, limit: int) -> Iterator[ManagedResource]:
    arns = list(_pages(client, "list_fleets", "fleets", limit))
    for start in range(0, len(arns), 100):
        for f in client.batch_get_fleets(names=arns[start : start + 100]).get("fleets") or []:
            cfg = f.get("computeConfiguration") or {}
            t = str(cfg.get("instanceType") or "").lower()
            gpu = f.get("environmentType") == "LINUX_GPU_CONTAINER"
            if not gpu and not (t and t[0] in "gp"):
                continue
            if not t:
                t = f"codebuild.gpu.{str(f.get('computeType') or 'unknown').lower()}"
            n = max(f.get("baseCapacity") or 0, 1)
            yield ManagedResource(
                "codebuild:fleet",
                str(f["name"]),
                f.get("arn"),
                [(t, n)],
                [t],
                status=(f.get("status") or {}).get("statusCode"),
            )


CODEBUILD = register(
    Family(
        "codebuild:fleet",
        "codebuild",
        _sweep_codebuild,
        None,
        None,
        "none: a fleet keeps at least one instance; alert only",
    )
)


# -- Lambda managed instances ----------------------------------------------------------------------------
def _sweep_lambda(client: Any, limit: int) -> Iterator[ManagedResource]:
    for cp in _pages(client, "list_capacity_providers", "CapacityProviders", limit):
        allowed = [
            str(t).lower() for t in (cp.get("InstanceRequirements") or {}).get("AllowedInstanceTypes") or []
        ]
        gpu = [t for t in allowed if t[:1] in ("g", "p") or t.startswith(("trn", "inf", "dl"))]
        if not gpu:
            continue
        arn = str(cp["CapacityProviderArn"])
        yield ManagedResource(
            "lambda:capacity-provider",
            arn.rsplit(":", 1)[-1],
            arn,
            [(t, 1) for t in gpu],
            gpu,
            status=cp.get("State"),
            alternatives=True,
        )


LAMBDA = register(
    Family(
        "lambda:capacity-provider",
        "lambda",
        _sweep_lambda,
        None,
        None,
        "none: no scale-to-zero call; alert only",
    )
)


# -- Braket hybrid jobs (classical compute on ml.* instances, p4d and g6e included) -------------------------
def _braket_job(client: Any, arn: str) -> ManagedResource:
    job = client.get_job(jobArn=arn)
    cfg = job.get("instanceConfig") or {}
    raw = str(cfg.get("instanceType") or "")
    t = raw.lower().removeprefix("ml.") or None
    n = max(cfg.get("instanceCount") or 0, 1)
    return ManagedResource(
        "braket:job",
        str(job.get("jobName") or arn.rsplit("/", 1)[-1]),
        arn,
        [(t, n)],
        [raw],
        status=job.get("status"),
    )


def _sweep_braket(client: Any, limit: int) -> Iterator[ManagedResource]:
    running = [{"name": "status", "values": ["RUNNING", "QUEUED"], "operator": "EQUAL"}]
    for s in _pages(client, "search_jobs", "jobs", limit, filters=running):
        yield _braket_job(client, str(s["jobArn"]))


def _cancel_braket(client: Any, res: ManagedResource) -> str:
    client.cancel_job(jobArn=res.arn or res.name)
    return "stopped"


BRAKET = register(Family("braket:job", "braket", _sweep_braket, None, _cancel_braket, "braket:CancelJob"))
