"""SageMaker request shapes. SageMaker types read ``ml.p5.48xlarge``: the ``ml.`` prefix is stripped
into ``instance_type`` and the original spelling is kept in ``extra["original_instance_types"]``
keyed by the item's path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.intake._registry import shape
from enforcer.intake._util import (
    MAX_COUNT,
    Parsed,
    as_list,
    get,
    instance_type,
    largest,
    obj,
    objects,
    opt_count,
    opt_text,
)
from enforcer.model import Ignored, InputError, LaunchItem

SAGEMAKER = "sagemaker.amazonaws.com"


def _add(out: Parsed, value: Any, path: str, n: int) -> None:
    original = instance_type(value, path)
    t = original[3:] if original.startswith("ml.") and len(original) > 3 else original
    out.items.append(LaunchItem(instance_type=t, count=n, path=path))
    if t != original:
        out.extra.setdefault("original_instance_types", {})[path] = original


def _finish(out: Parsed) -> Parsed | Ignored:
    if not out.items:
        return Ignored("no instance type in request")
    return out


def _resource_config(out: Parsed, rc: Mapping[str, Any], path: str, mult: int = 1) -> None:
    t = get(rc, "instanceType")
    if t is not None:
        n = min(largest(opt_count(rc, "instanceCount", path)) * mult, MAX_COUNT)
        _add(out, t, f"{path}.instanceType", n)
    for gpath, g in objects(get(rc, "instanceGroups"), f"{path}.instanceGroups"):
        n = min(largest(opt_count(g, "instanceCount", gpath)) * mult, MAX_COUNT)
        _add(out, get(g, "instanceType"), f"{gpath}.instanceType", n)


def _rules(out: Parsed, p: Mapping[str, Any], at: str) -> None:
    for key in ("debugRuleConfigurations", "profilerRuleConfigurations"):
        for path, rule in objects(get(p, key), f"{at}.{key}"):
            t = get(rule, "instanceType")
            if t is not None:
                _add(out, t, f"{path}.instanceType", 1)


def _named(out: Parsed, p: Mapping[str, Any], at: str, *keys: str) -> None:
    for key in keys:
        v = opt_text(p, key, at, 256)
        if v is not None:
            out.extra[key] = v


@shape(SAGEMAKER, "CreateTrainingJob")
def training_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``resourceConfig.instanceType`` x ``instanceCount``, ``instanceGroups[]``, rule evaluators."""
    out = Parsed()
    _named(out, p, at, "trainingJobName")
    rc = obj(p, "resourceConfig", at)
    if rc is None:
        raise InputError(f"{at}.resourceConfig: missing")
    _resource_config(out, rc, f"{at}.resourceConfig")
    _rules(out, p, at)
    return _finish(out)


@shape(SAGEMAKER, "CreateHyperParameterTuningJob")
def tuning_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Tuning job: each definition's resource config x ``maxParallelTrainingJobs``."""
    out = Parsed()
    _named(out, p, at, "hyperParameterTuningJobName")
    cfg = obj(p, "hyperParameterTuningJobConfig", at)
    limits = obj(cfg, "resourceLimits", f"{at}.hyperParameterTuningJobConfig") if cfg else None
    lpath = f"{at}.hyperParameterTuningJobConfig.resourceLimits"
    parallel = largest(opt_count(limits, "maxParallelTrainingJobs", lpath) if limits else None)
    defs = [(f"{at}.trainingJobDefinition", d) for d in as_list(get(p, "trainingJobDefinition"))]
    defs += list(objects(get(p, "trainingJobDefinitions"), f"{at}.trainingJobDefinitions"))
    for path, d in defs:
        if not isinstance(d, Mapping):
            raise InputError(f"{path}: expected an object")
        rc = obj(d, "resourceConfig", path)
        if rc is not None:
            _resource_config(out, rc, f"{path}.resourceConfig", parallel)
    return _finish(out)


@shape(SAGEMAKER, "CreateEndpointConfig")
def endpoint_config(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``productionVariants[]`` / ``shadowProductionVariants[]``: type x max(initial, managed max) count."""
    out = Parsed()
    _named(out, p, at, "endpointConfigName")
    for key in ("productionVariants", "shadowProductionVariants"):
        for path, v in objects(get(p, key), f"{at}.{key}"):
            t = get(v, "instanceType")
            if t is None:
                continue  # serverless variant: no instances
            scaling = obj(v, "managedInstanceScaling", path)
            spath = f"{path}.managedInstanceScaling"
            top = opt_count(scaling, "maxInstanceCount", spath) if scaling else None
            _add(out, t, f"{path}.instanceType", largest(opt_count(v, "initialInstanceCount", path), top))
    return _finish(out)


@shape(SAGEMAKER, "CreateNotebookInstance")
def notebook_instance(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Notebook instance: ``instanceType``."""
    out = Parsed()
    _named(out, p, at, "notebookInstanceName")
    _add(out, get(p, "instanceType"), f"{at}.instanceType", 1)
    return out


@shape(SAGEMAKER, "CreateCluster", "UpdateCluster")
def hyperpod_cluster(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """HyperPod: ``instanceGroups[]`` and ``restrictedInstanceGroups[]`` (type or requirement list)."""
    out = Parsed()
    _named(out, p, at, "clusterName")
    for key in ("instanceGroups", "restrictedInstanceGroups"):
        for path, g in objects(get(p, key), f"{at}.{key}"):
            n = largest(opt_count(g, "instanceCount", path), opt_count(g, "targetCount", path))
            t = get(g, "instanceType")
            if t is not None:
                _add(out, t, f"{path}.instanceType", n)
            reqs = obj(g, "instanceRequirements", path)
            if reqs is not None:
                rpath = f"{path}.instanceRequirements.instanceTypes"
                for i, alt in enumerate(as_list(get(reqs, "instanceTypes"))):
                    _add(out, alt, f"{rpath}[{i}]", n)
                    out.extra["alternatives"] = True
    return _finish(out)


@shape(SAGEMAKER, "CreateProcessingJob")
def processing_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``processingResources.clusterConfig.{instanceType,instanceCount}``."""
    out = Parsed()
    _named(out, p, at, "processingJobName")
    pr = obj(p, "processingResources", at)
    cc = obj(pr, "clusterConfig", f"{at}.processingResources") if pr is not None else None
    if cc is None:
        raise InputError(f"{at}.processingResources.clusterConfig: missing")
    path = f"{at}.processingResources.clusterConfig"
    _add(out, get(cc, "instanceType"), f"{path}.instanceType", largest(opt_count(cc, "instanceCount", path)))
    return out


@shape(SAGEMAKER, "CreateTransformJob")
def transform_job(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """``transformResources.{instanceType,instanceCount}``."""
    out = Parsed()
    _named(out, p, at, "transformJobName")
    tr = obj(p, "transformResources", at)
    if tr is None:
        raise InputError(f"{at}.transformResources: missing")
    path = f"{at}.transformResources"
    _add(out, get(tr, "instanceType"), f"{path}.instanceType", largest(opt_count(tr, "instanceCount", path)))
    return out


@shape(SAGEMAKER, "CreateApp")
def studio_app(p: Mapping[str, Any], at: str, resp: Mapping[str, Any] | None) -> Parsed | Ignored:
    """Studio app: ``resourceSpec.instanceType`` (absent for the default system app)."""
    out = Parsed()
    spec = obj(p, "resourceSpec", at)
    if spec is not None and (t := get(spec, "instanceType")) is not None:
        _add(out, t, f"{at}.resourceSpec.instanceType", 1)
    return _finish(out)
