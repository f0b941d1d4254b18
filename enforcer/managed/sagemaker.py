"""SageMaker families: training, processing and transform jobs, endpoints, notebook instances,
HyperPod clusters and Studio apps. None of them shows up as an EC2 instance of the account, so the
EC2 state-change rule and the EC2 sweep never see them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from enforcer.managed.registry import Family, ManagedResource, ml_type, register

SERVICE = "sagemaker"


def _typed(res: ManagedResource, value: Any, n: Any) -> None:
    t = ml_type(value)
    if t is None:
        return
    res.items.append((t, int(n) if isinstance(n, int) and n > 0 else 1))
    res.original.append(str(value))


def _pages(client: Any, op: str, key: str, limit: int, **kwargs: Any) -> Iterator[Mapping[str, Any]]:
    seen = 0
    for page in client.get_paginator(op).paginate(**kwargs):
        for entry in page.get(key) or []:
            if seen >= limit:
                return
            seen += 1
            yield entry


# -- jobs ----------------------------------------------------------------------------------------------
def _training(client: Any, res: ManagedResource) -> ManagedResource | None:
    d = client.describe_training_job(TrainingJobName=res.name)
    out = ManagedResource(res.kind, res.name, d.get("TrainingJobArn"), status=d.get("TrainingJobStatus"))
    rc = d.get("ResourceConfig") or {}
    _typed(out, rc.get("InstanceType"), rc.get("InstanceCount"))
    for g in rc.get("InstanceGroups") or []:
        _typed(out, g.get("InstanceType"), g.get("InstanceCount"))
    return out


def _processing(client: Any, res: ManagedResource) -> ManagedResource | None:
    d = client.describe_processing_job(ProcessingJobName=res.name)
    out = ManagedResource(res.kind, res.name, d.get("ProcessingJobArn"), status=d.get("ProcessingJobStatus"))
    cc = (d.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    _typed(out, cc.get("InstanceType"), cc.get("InstanceCount"))
    return out


def _transform(client: Any, res: ManagedResource) -> ManagedResource | None:
    d = client.describe_transform_job(TransformJobName=res.name)
    out = ManagedResource(res.kind, res.name, d.get("TransformJobArn"), status=d.get("TransformJobStatus"))
    tr = d.get("TransformResources") or {}
    _typed(out, tr.get("InstanceType"), tr.get("InstanceCount"))
    return out


def _job_family(kind: str, noun: str, describe: Any, stop: str) -> Family:
    def sweep(client: Any, limit: int) -> Iterator[ManagedResource]:
        for s in _pages(
            client, f"list_{noun}_jobs", f"{noun.capitalize()}JobSummaries", limit, StatusEquals="InProgress"
        ):
            found = describe(client, ManagedResource(kind, str(s[f"{noun.capitalize()}JobName"])))
            if found is not None:
                yield found

    def remediate(client: Any, res: ManagedResource) -> str:
        getattr(client, stop)(**{f"{noun.capitalize()}JobName": res.name})
        return "stopped"

    return register(Family(kind, SERVICE, sweep, describe, remediate, f"sagemaker:{_camel(stop)}"))


def _camel(snake: str) -> str:
    return "".join(p.capitalize() for p in snake.split("_"))


TRAINING = _job_family("sagemaker:training-job", "training", _training, "stop_training_job")
PROCESSING = _job_family("sagemaker:processing-job", "processing", _processing, "stop_processing_job")
TRANSFORM = _job_family("sagemaker:transform-job", "transform", _transform, "stop_transform_job")


# -- endpoints -----------------------------------------------------------------------------------------
def _endpoint(client: Any, res: ManagedResource) -> ManagedResource | None:
    d = client.describe_endpoint(EndpointName=res.name)
    out = ManagedResource(res.kind, res.name, d.get("EndpointArn"), status=d.get("EndpointStatus"))
    current = {v.get("VariantName"): v for v in d.get("ProductionVariants") or []}
    cfg = client.describe_endpoint_config(EndpointConfigName=d["EndpointConfigName"])
    for v in (cfg.get("ProductionVariants") or []) + (cfg.get("ShadowProductionVariants") or []):
        if not v.get("InstanceType"):
            continue  # serverless variant
        now = current.get(v.get("VariantName")) or {}
        top = (v.get("ManagedInstanceScaling") or {}).get("MaxInstanceCount") or 0
        n = max(
            now.get("CurrentInstanceCount") or 0,
            now.get("DesiredInstanceCount") or 0,
            v.get("InitialInstanceCount") or 0,
            top,
        )
        _typed(out, v["InstanceType"], n)
    return out


def _sweep_endpoints(client: Any, limit: int) -> Iterator[ManagedResource]:
    for status in ("InService", "Updating", "Creating"):
        for s in _pages(client, "list_endpoints", "Endpoints", limit, StatusEquals=status):
            found = _endpoint(client, ManagedResource("sagemaker:endpoint", str(s["EndpointName"])))
            if found is not None:
                yield found


def _delete_endpoint(client: Any, res: ManagedResource) -> str:
    client.delete_endpoint(EndpointName=res.name)  # the endpoint config and model stay: it can be recreated
    return "deleted"


ENDPOINT = register(
    Family(
        "sagemaker:endpoint",
        SERVICE,
        _sweep_endpoints,
        _endpoint,
        _delete_endpoint,
        "sagemaker:DeleteEndpoint",
    )
)


# -- notebook instances --------------------------------------------------------------------------------
def _notebook(client: Any, res: ManagedResource) -> ManagedResource | None:
    d = client.describe_notebook_instance(NotebookInstanceName=res.name)
    out = ManagedResource(
        res.kind, res.name, d.get("NotebookInstanceArn"), status=d.get("NotebookInstanceStatus")
    )
    _typed(out, d.get("InstanceType"), 1)
    return out


def _sweep_notebooks(client: Any, limit: int) -> Iterator[ManagedResource]:
    for status in ("InService", "Pending", "Updating"):
        for s in _pages(client, "list_notebook_instances", "NotebookInstances", limit, StatusEquals=status):
            out = ManagedResource(
                "sagemaker:notebook-instance",
                str(s["NotebookInstanceName"]),
                s.get("NotebookInstanceArn"),
                status=s.get("NotebookInstanceStatus"),
            )
            _typed(out, s.get("InstanceType"), 1)
            yield out


def _stop_notebook(client: Any, res: ManagedResource) -> str:
    client.stop_notebook_instance(NotebookInstanceName=res.name)
    return "stopped"


NOTEBOOK = register(
    Family(
        "sagemaker:notebook-instance",
        SERVICE,
        _sweep_notebooks,
        _notebook,
        _stop_notebook,
        "sagemaker:StopNotebookInstance",
    )
)


# -- HyperPod clusters ---------------------------------------------------------------------------------
def _cluster(client: Any, res: ManagedResource) -> ManagedResource | None:
    d = client.describe_cluster(ClusterName=res.name)
    out = ManagedResource(res.kind, res.name, d.get("ClusterArn"), status=d.get("ClusterStatus"))
    for g in (d.get("InstanceGroups") or []) + (d.get("RestrictedInstanceGroups") or []):
        n = max(g.get("CurrentCount") or 0, g.get("TargetCount") or 0)
        _typed(out, g.get("InstanceType"), n)
    return out


def _sweep_clusters(client: Any, limit: int) -> Iterator[ManagedResource]:
    for s in _pages(client, "list_clusters", "ClusterSummaries", limit):
        if s.get("ClusterStatus") in ("Deleting", "Failed"):
            continue
        found = _cluster(client, ManagedResource("sagemaker:cluster", str(s["ClusterName"])))
        if found is not None:
            yield found


#: Fields of a described instance group that UpdateCluster takes back unchanged.
_GROUP_FIELDS = (
    "InstanceGroupName",
    "InstanceType",
    "LifeCycleConfig",
    "ExecutionRole",
    "ThreadsPerCore",
    "InstanceStorageConfigs",
    "OnStartDeepHealthChecks",
    "TrainingPlanArn",
    "OverrideVpcConfig",
)


def _scale_cluster(client: Any, res: ManagedResource) -> str:
    """Every instance group to 0 instances (UpdateCluster takes the whole group specification)."""
    d = client.describe_cluster(ClusterName=res.name)
    groups = [
        {**{k: g[k] for k in _GROUP_FIELDS if k in g}, "InstanceCount": 0}
        for g in d.get("InstanceGroups") or []
    ]
    if not groups:
        raise ValueError("cluster has no instance groups to scale")
    client.update_cluster(ClusterName=res.name, InstanceGroups=groups)
    restricted = [
        g for g in d.get("RestrictedInstanceGroups") or [] if g.get("CurrentCount") or g.get("TargetCount")
    ]
    return "partially_scaled" if restricted else "scaled_to_zero"  # restricted groups are left running


CLUSTER = register(
    Family(
        "sagemaker:cluster",
        SERVICE,
        _sweep_clusters,
        _cluster,
        _scale_cluster,
        "sagemaker:UpdateCluster (InstanceCount 0)",
    )
)


# -- Studio apps ---------------------------------------------------------------------------------------
def _app(s: Mapping[str, Any]) -> ManagedResource:
    ids = {k: str(s[k]) for k in ("DomainId", "AppType", "UserProfileName", "SpaceName") if s.get(k)}
    out = ManagedResource(
        "sagemaker:app", str(s["AppName"]), s.get("AppArn"), ids=ids, status=s.get("Status")
    )
    _typed(out, (s.get("ResourceSpec") or {}).get("InstanceType"), 1)
    return out


def _sweep_apps(client: Any, limit: int) -> Iterator[ManagedResource]:
    for s in _pages(client, "list_apps", "Apps", limit):
        if s.get("Status") in ("InService", "Pending"):
            res = _app(s)
            if res.items:  # apps without a resource spec run on no instance of their own
                yield res


def _delete_app(client: Any, res: ManagedResource) -> str:
    kwargs = {"DomainId": res.ids["DomainId"], "AppType": res.ids["AppType"], "AppName": res.name}
    for key in ("UserProfileName", "SpaceName"):
        if key in res.ids:
            kwargs[key] = res.ids[key]
    client.delete_app(**kwargs)
    return "deleted"


APP = register(Family("sagemaker:app", SERVICE, _sweep_apps, None, _delete_app, "sagemaker:DeleteApp"))
