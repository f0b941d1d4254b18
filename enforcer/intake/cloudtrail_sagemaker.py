"""SageMaker request shapes. SageMaker types read ``ml.p5.48xlarge``: the ``ml.`` prefix is stripped
into ``instance_type`` and the original spelling is kept in ``extra["original_instance_types"]``
keyed by the item's path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from enforcer.intake.fields import (
    MAX_COUNT,
    Parsed,
    alternatives,
    as_list,
    instance_type,
    largest,
    locate,
    objects,
    objp,
    opt_count,
    opt_text,
    ref_item,
    text,
)
from enforcer.intake.registry import shape
from enforcer.model import Ignored, InputError, LaunchItem

SAGEMAKER = "sagemaker.amazonaws.com"
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _add(out: Parsed, value: Any, path: str, n: int) -> None:
    original = instance_type(value, path)
    t = original[3:] if original.startswith("ml.") and len(original) > 3 else original
    out.items.append(LaunchItem(instance_type=t, count=min(n, MAX_COUNT), path=path))
    if t != original:
        out.extra.setdefault("original_instance_types", {})[path] = original


def _finish(out: Parsed) -> Parsed | Ignored:
    if not out.items:
        return Ignored("no instance type in request")
    return out


def _named(out: Parsed, p: Mapping[str, Any], at: str, key: str) -> None:
    v = opt_text(p, key, at, 256)
    if v is not None:
        out.extra[_CAMEL.sub("_", key).lower()] = v


def _required(p: Mapping[str, Any], key: str, at: str) -> tuple[Mapping[str, Any], str]:
    v, path = objp(p, key, at)
    if v is None:
        raise InputError(f"{path}: missing")
    return v, path


def _typed(out: Parsed, m: Mapping[str, Any], path: str, n: int) -> None:
    """Add ``m.instanceType`` x ``n`` (instanceType required)."""
    _add(out, *locate(m, "instanceType", path), n)


def _resource_config(out: Parsed, rc: Mapping[str, Any], path: str, mult: int = 1) -> None:
    t, tpath = locate(rc, "instanceType", path)
    if t is not None:
        _add(out, t, tpath, largest(opt_count(rc, "instanceCount", path)) * mult)
    for gpath, g in objects(*locate(rc, "instanceGroups", path)):
        _typed(out, g, gpath, largest(opt_count(g, "instanceCount", gpath)) * mult)


@shape(SAGEMAKER, "CreateTrainingJob")
def training_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``resourceConfig.instanceType`` x ``instanceCount``, ``instanceGroups[]``, rule evaluators."""
    out = Parsed()
    _named(out, p, at, "trainingJobName")
    rc, rpath = objp(p, "resourceConfig", at)
    if rc is not None:  # optional in the model; types elsewhere are read from the coverage table
        _resource_config(out, rc, rpath)
    for key in ("debugRuleConfigurations", "profilerRuleConfigurations"):
        for path, rule in objects(*locate(p, key, at)):
            t, tpath = locate(rule, "instanceType", path)
            if t is not None:
                _add(out, t, tpath, 1)
    return _finish(out)


@shape(SAGEMAKER, "CreateHyperParameterTuningJob")
def tuning_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Tuning job: each definition's resource config x ``maxParallelTrainingJobs``."""
    out = Parsed()
    _named(out, p, at, "hyperParameterTuningJobName")
    cfg, cpath = objp(p, "hyperParameterTuningJobConfig", at)
    limits, lpath = objp(cfg, "resourceLimits", cpath) if cfg is not None else (None, "")
    parallel = largest(opt_count(limits, "maxParallelTrainingJobs", lpath) if limits is not None else None)
    single, spath = locate(p, "trainingJobDefinition", at)
    defs = [(spath, d) for d in as_list(single)]
    defs += list(objects(*locate(p, "trainingJobDefinitions", at)))
    for path, d in defs:
        if not isinstance(d, dict):
            raise InputError(f"{path}: expected an object")
        rc, rpath = objp(d, "resourceConfig", path)
        if rc is not None:
            _resource_config(out, rc, rpath, parallel)
    return _finish(out)


@shape(SAGEMAKER, "CreateEndpointConfig")
def endpoint_config(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``productionVariants[]`` / ``shadowProductionVariants[]``: type x max(initial, managed max) count."""
    out = Parsed()
    _named(out, p, at, "endpointConfigName")
    for key in ("productionVariants", "shadowProductionVariants"):
        for path, v in objects(*locate(p, key, at)):
            t, tpath = locate(v, "instanceType", path)
            if t is None:
                continue  # serverless variant: no instances
            scaling, spath = objp(v, "managedInstanceScaling", path)
            top = opt_count(scaling, "maxInstanceCount", spath) if scaling is not None else None
            _add(out, t, tpath, largest(opt_count(v, "initialInstanceCount", path), top))
    return _finish(out)


@shape(SAGEMAKER, "CreateNotebookInstance")
def notebook_instance(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Notebook instance: ``instanceType``."""
    out = Parsed()
    _named(out, p, at, "notebookInstanceName")
    _typed(out, p, at, 1)
    return out


# HyperPod nodes run in SageMaker's account: no EC2 state change reaches the guard. A group that names
# no type (``InstanceType`` and ``InstanceRequirements`` are optional in the model) but a count becomes
# a ``sagemaker_cluster_group`` reference, resolved to the group's type by ``DescribeCluster``
# (enforcer.resolve.sagemaker); a group it cannot find stays unresolved and fails closed.


#: The service model's patterns for a HyperPod group and a cluster name or ARN: neither can hold a dot, so
#: no reference value can pass for an instance type and hide a typed entry from the table's walk.
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
_CLUSTER = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:cluster/[a-z0-9]{12}|[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
)


def _group_ref(cluster: Any, g: Mapping[str, Any], path: str, n: int, added: bool) -> LaunchItem:
    """The reference to the HyperPod group ``g`` names, at ``n`` nodes (``added``: an increment)."""
    group, gpath = locate(g, "instanceGroupName", path)
    group = text(group, gpath, 63)
    if not isinstance(cluster, str) or _CLUSTER.fullmatch(cluster) is None:
        raise InputError(f"{path}: a node count on a cluster the request does not name")
    if _GROUP_NAME.fullmatch(group) is None:
        raise InputError(f"{gpath}: not an instance group name")
    ref: dict[str, Any] = {"kind": "sagemaker_cluster_group", "cluster": cluster, "group": group}
    if added:
        ref["added"] = True
    return ref_item(ref, gpath, min(n, MAX_COUNT))


@shape(SAGEMAKER, "CreateCluster", "UpdateCluster")
def hyperpod_cluster(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """HyperPod: ``instanceGroups[]`` and ``restrictedInstanceGroups[]`` (type or requirement list); a
    group naming neither, at a count above zero, is a ``sagemaker_cluster_group`` reference."""
    out = Parsed()
    _named(out, p, at, "clusterName")
    for key in ("instanceGroups", "restrictedInstanceGroups"):
        for path, g in objects(*locate(p, key, at)):
            n = largest(opt_count(g, "instanceCount", path), opt_count(g, "targetCount", path))
            t, tpath = locate(g, "instanceType", path)
            if t is not None:
                _add(out, t, tpath, n)
            reqs, rpath = objp(g, "instanceRequirements", path)
            if reqs is not None:
                alts, apath = locate(reqs, "instanceTypes", rpath)
                start = len(out.items)
                for i, alt in enumerate(as_list(alts)):
                    _add(out, alt, f"{apath}[{i}]", n)
                alternatives(out, out.items[start:], apath)  # one group per requirement, not the cluster
            if t is None and reqs is None and n > 0:  # scaled by count alone (UpdateCluster); a requirement
                # naming no type is the table walk's selection
                out.items.append(_group_ref(out.extra.get("cluster_name"), g, path, n, added=False))
    return _finish(out)


@shape(SAGEMAKER, "BatchAddClusterNodes")
def hyperpod_add_nodes(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``NodesToAdd[]`` naming no ``InstanceTypes``: a ``sagemaker_cluster_group`` reference per group at
    ``IncrementTargetCountBy``. The increment, not the group's new total: the call launches that many
    nodes, the group's others were decided when they were launched (CreateCluster, UpdateCluster, earlier
    additions), and an entry naming its types counts the same increment (the table's walk, which reads
    those entries after this shape: ``cloudtrail_generic.complete``)."""
    out = Parsed()
    _named(out, p, at, "clusterName")
    for path, add in objects(*locate(p, "nodesToAdd", at)):
        if any(isinstance(t, str) and t for t in as_list(locate(add, "instanceTypes", path)[0])):
            continue  # the named types: the table's walk
        n = opt_count(add, "incrementTargetCountBy", path)
        if n is not None and n > 0:
            out.items.append(_group_ref(out.extra.get("cluster_name"), add, path, n, added=True))
    return _finish(out)


@shape(SAGEMAKER, "CreateProcessingJob")
def processing_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``processingResources.clusterConfig.{instanceType,instanceCount}``."""
    out = Parsed()
    _named(out, p, at, "processingJobName")
    pr, ppath = _required(p, "processingResources", at)
    cc, path = _required(pr, "clusterConfig", ppath)
    t, tpath = locate(cc, "instanceType", path)
    if t is not None:  # else instancePreferences: read from the coverage table
        _add(out, t, tpath, largest(opt_count(cc, "instanceCount", path)))
    return _finish(out)


@shape(SAGEMAKER, "CreateTransformJob")
def transform_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``transformResources.{instanceType,instanceCount}``."""
    out = Parsed()
    _named(out, p, at, "transformJobName")
    tr, path = _required(p, "transformResources", at)
    _typed(out, tr, path, largest(opt_count(tr, "instanceCount", path)))
    return out


@shape(SAGEMAKER, "CreateApp")
def studio_app(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Studio app: ``resourceSpec.instanceType``; without one, a compute app (JupyterLab, KernelGateway,
    Code Editor ...) runs on the space's, user's or domain's default resource spec, so it becomes a
    ``sagemaker_app_default`` reference (resolved by the resolver, else fails closed). The Jupyter
    Server system app and Canvas run on no instance of the account's choosing."""
    out = Parsed()
    spec, spath = objp(p, "resourceSpec", at)
    if spec is not None and (tf := locate(spec, "instanceType", spath))[0] is not None:
        _add(out, *tf, 1)
        return out
    app_type = opt_text(p, "appType", at, 64)
    if app_type is None or app_type not in STUDIO_DEFAULT_APPS:
        return Ignored("no instance type in request")
    ref: dict[str, Any] = {"kind": "sagemaker_app_default", "app_type": app_type}
    for key, name in (("domainId", "domain_id"), ("userProfileName", "user_profile"), ("spaceName", "space")):
        v = opt_text(p, key, at, 256)
        if v is not None:
            ref[name] = v
    out.items.append(LaunchItem(instance_type=None, count=1, ref=ref, path=f"{at}.resourceSpec"))
    return out


#: Studio app types that run on a default resource spec when the request names no instance type.
STUDIO_DEFAULT_APPS = frozenset(
    {"KernelGateway", "JupyterLab", "CodeEditor", "RStudioServerPro", "RSessionGateway", "TensorBoard"}
)


@shape(SAGEMAKER, "CreateTrainingPlan")
def training_plan(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """``CreateTrainingPlan`` reserves ml.p5/ml.trn2 capacity but names only the plan and an offering id:
    a ``sagemaker_training_plan`` reference by name, resolved by ``DescribeTrainingPlan``."""
    name, path = locate(p, "trainingPlanName", at)
    name = text(name, path, 64)
    out = Parsed([ref_item({"kind": "sagemaker_training_plan", "name": name}, path)])
    out.extra["training_plan_name"] = name
    _named(out, p, at, "trainingPlanOfferingId")
    return out


@shape(SAGEMAKER, "ExtendTrainingPlan")
def training_plan_extension(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed:
    """``ExtendTrainingPlan`` names only an extension offering id, and the response
    (``TrainingPlanExtensions[]``) no plan either: a ``sagemaker_training_plan_extension`` reference the
    resolver looks for in the account's plans' extension histories (else it fails closed)."""
    oid, path = locate(p, "trainingPlanExtensionOfferingId", at)
    oid = text(oid, path, 256)
    return Parsed([ref_item({"kind": "sagemaker_training_plan_extension", "id": oid}, path)])
