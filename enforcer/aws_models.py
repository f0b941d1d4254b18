"""Trimmed botocore service models, so a cold start does not parse 830 EC2 operations to call three.

Building an EC2 client parses botocore's EC2 model (0.55 MB gzipped, about 5 MB of JSON) and creates a
method for each of its 830 operations: the largest single cost of a guard's cold start. The guard calls
about fifteen of them. This module keeps, per listed service, a copy of botocore's own model reduced to
the operations in :data:`TRIMMED` and every shape they reach (plus every modelled exception), byte for
byte the same definitions, documentation removed; and botocore's endpoint data reduced to the services
the package uses (:data:`ENDPOINT_SERVICES`; the 1.25 MB file is otherwise parsed by the first client,
any service). :class:`enforcer.wiring.aws.ClientFactory` puts the directory first on its session's model
search path and builds clients of other services on the full session, and
:class:`enforcer.aws_lazy.LazyClient` answers any other operation, paginator or waiter with a client built
on botocore's full model, so trimming only ever changes speed, never what a call can do.

The copies are tied to the botocore release they were cut from (``manifest.json``); with any other
release installed they are ignored and every client uses the full model. ``constraints.txt`` pins that
release for ``make install``, and ``make package`` pins the artifact to the venv's versions. To upgrade
botocore: bump both lines of ``constraints.txt``, then ``python -m enforcer.aws_models``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The directory put first on the model search path (``<service>/<api version>/service-2.json``).
MODELS_DIR = Path(__file__).resolve().parent / "data" / "botocore"
MANIFEST = "manifest.json"

#: Operations kept per trimmed service: every operation of it the package calls (tests check the lists
#: against the source). EC2's model is by far the largest; DynamoDB's is next on the deny path.
TRIMMED: Mapping[str, tuple[str, ...]] = {
    "ec2": (
        "CreateFleet",
        "CreateLaunchTemplate",
        "CreateTags",
        "DescribeCapacityBlockOfferings",
        "DescribeCapacityReservationFleets",
        "DescribeCapacityReservations",
        "DescribeFleetInstances",
        "DescribeFleets",
        "DescribeInstanceTypes",
        "DescribeInstances",
        "DescribeLaunchTemplateVersions",
        "DescribeRegions",
        "RunInstances",
        "StartInstances",
        "StopInstances",
        "TerminateInstances",
    ),
    "dynamodb": (  # the directory, registry, audit chain, counters and ledger tables
        "BatchGetItem",
        "BatchWriteItem",
        "CreateTable",
        "DeleteItem",
        "DescribeEndpoints",  # the endpoint-discovery operation, should discovery be turned on
        "DescribeTable",
        "GetItem",
        "PutItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "TransactWriteItems",
        "UpdateContinuousBackups",
        "UpdateItem",
        "UpdateTimeToLive",
    ),
}


#: Services whose entries of botocore's ``endpoints.json`` (1.25 MB, every service) the trimmed sessions keep:
#: every service the package creates a client of (tests check the list against the source). A client of
#: any other service is built on the full-model session, which reads botocore's whole file.
ENDPOINT_SERVICES: tuple[str, ...] = (
    "account",
    "appstream",
    "athena",
    "autoscaling",
    "cloudformation",
    "codebuild",
    "deadline",
    "dynamodb",
    "ec2",
    "kms",
    "organizations",
    "s3",
    "sagemaker",
    "secretsmanager",
    "sns",
    "sts",
)
#: The reduced copy; not named ``endpoints.json``, so no loader search ever finds it in botocore's place.
ENDPOINTS_FILE = "endpoints.trimmed.json"
#: Model types whose list of services botocore's own data directory holds is kept in the manifest: every
#: client built lists the first and last, and the first paginator (the licence query on a deny) the middle
#: one (``Loader.list_available_services`` walks about 450 service folders per type, the largest part of
#: the first client's cost) only to check that the service exists.
LISTED_TYPES: tuple[str, ...] = ("endpoint-rule-set-1", "paginators-1", "service-2")


def _reachable(shapes: Mapping[str, Any], roots: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        stack.extend(shape[k]["shape"] for k in ("member", "key", "value") if k in shape)
        stack.extend(m["shape"] for m in shape.get("members", {}).values())
    return seen


def _strip_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_docs(v) for k, v in node.items() if k != "documentation"}
    if isinstance(node, list):
        return [_strip_docs(v) for v in node]
    return node


def trim_model(model: Mapping[str, Any], operations: Iterable[str]) -> dict[str, Any]:
    """botocore's ``model`` reduced to ``operations`` and the shapes they reach (documentation removed).

    Every shape marked ``exception`` is kept too, so ``client.exceptions`` names the same classes as
    a client on the full model.

    Raises
    ------
    KeyError
        When an operation is not in the model.
    """
    ops = {name: model["operations"][name] for name in sorted(set(operations))}
    shapes = model["shapes"]
    roots = [o[k]["shape"] for o in ops.values() for k in ("input", "output") if k in o]
    roots += [e["shape"] for o in ops.values() for e in o.get("errors", [])]
    roots += [n for n, s in shapes.items() if s.get("exception")]
    keep = _reachable(shapes, roots)
    out: dict[str, Any] = {k: v for k, v in model.items() if k not in ("operations", "shapes")}
    out["operations"] = ops
    out["shapes"] = {n: shapes[n] for n in sorted(keep)}
    trimmed: dict[str, Any] = _strip_docs(out)
    return trimmed


def trim_endpoints(endpoints: Mapping[str, Any], services: Iterable[str]) -> dict[str, Any]:
    """botocore's ``endpoints`` data with each partition's services reduced to ``services``.

    Partitions, regions and defaults stay as they are, and every kept service's entry is botocore's own,
    so the legacy resolver answers exactly as on the full data for those services.
    """
    keep = set(services)
    out: dict[str, Any] = dict(endpoints)
    out["partitions"] = [
        {**p, "services": {k: v for k, v in p["services"].items() if k in keep}}
        for p in endpoints["partitions"]
    ]
    return out


def write_models(out_dir: Path = MODELS_DIR) -> dict[str, Any]:
    """Cut the models of :data:`TRIMMED` from the installed botocore into ``out_dir``.

    Returns
    -------
    dict
        The manifest written beside them (botocore release, services, operations).
    """
    import botocore
    import botocore.loaders

    loader = botocore.loaders.Loader()
    manifest: dict[str, Any] = {"botocore": botocore.__version__, "services": {}}
    for service, operations in sorted(TRIMMED.items()):
        version = loader.determine_latest_version(service, "service-2")
        full = loader.load_service_model(service, "service-2", api_version=version)
        target = out_dir / service / version / "service-2.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(trim_model(full, operations), sort_keys=True, separators=(",", ":")))
        manifest["services"][service] = {"api_version": version, "operations": sorted(operations)}
    endpoints = trim_endpoints(loader.load_data("endpoints"), ENDPOINT_SERVICES)
    (out_dir / ENDPOINTS_FILE).write_text(json.dumps(endpoints, sort_keys=True, separators=(",", ":")))
    manifest["endpoint_services"] = sorted(ENDPOINT_SERVICES)
    manifest["listed"] = {t: _scan(loader, loader.BUILTIN_DATA_PATH, t) for t in LISTED_TYPES}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


@lru_cache(maxsize=1)
def _manifest() -> dict[str, Any] | None:
    """The manifest when it matches the installed botocore, else None (full models everywhere)."""
    import botocore

    try:
        manifest: dict[str, Any] = json.loads((MODELS_DIR / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("botocore") != botocore.__version__:
        logger.info(
            "trimmed service models are for botocore %s, %s is installed: using full models",
            manifest.get("botocore"),
            botocore.__version__,
        )
        return None
    return manifest


def trimmed_operations(service: str) -> frozenset[str] | None:
    """The client method names (``describe_instances`` ...) a trimmed ``service`` client has, or None
    when ``service`` is served from the full model."""
    manifest = _manifest()
    entry = manifest["services"].get(service) if manifest else None
    if entry is None:
        return None
    from botocore import xform_name

    return frozenset(xform_name(op) for op in entry["operations"])


def trimmed_endpoints(service: str) -> bool:
    """Whether a trimmed session's endpoint data holds ``service`` (else: build it on the full session)."""
    manifest = _manifest()
    return manifest is not None and service in manifest.get("endpoint_services", ())


def _endpoint_resolver() -> Any:
    from botocore.regions import EndpointResolver

    data = json.loads((MODELS_DIR / ENDPOINTS_FILE).read_text())
    # botocore's own data (reduced to the kept services): resolved as built-in data, so the endpoint
    # rule sets decide every endpoint exactly as with the full file
    return EndpointResolver(data, uses_builtin_data=True)


def use_trimmed_models(session: Any) -> bool:
    """Put the trimmed models first on the model search path of ``session`` (boto3 or botocore), and
    give it the trimmed endpoint data (:data:`ENDPOINT_SERVICES`), read when its first client is built.

    Returns False (and changes nothing) when they do not match the installed botocore.
    """
    if _manifest() is None:
        return False
    core = getattr(session, "_session", session)  # boto3.session.Session wraps a botocore session
    loader = core.get_component("data_loader")
    if str(MODELS_DIR) not in loader.search_paths:
        loader.search_paths.insert(0, str(MODELS_DIR))
    # botocore has no public hook for the resolver: its session keeps it as an internal component
    core._internal_components.lazy_register_component("endpoint_resolver", _endpoint_resolver)
    _list_from_manifest(loader, manifest_listed())
    return True


def _scan(loader: Any, path: str, type_name: str) -> list[str]:
    """The services under ``path`` with a ``type_name`` model in some API version: botocore's own walk
    (``Loader.list_available_services``) over one search path."""
    found: list[str] = []
    if not os.path.isdir(path):
        return found
    for service in sorted(os.listdir(path)):
        folder = os.path.join(path, service)
        if not os.path.isdir(folder):
            continue
        if any(loader.file_loader.exists(os.path.join(folder, v, type_name)) for v in os.listdir(folder)):
            found.append(service)
    return found


def manifest_listed() -> Mapping[str, list[str]]:
    """The manifest's services per model type in botocore's data directory (empty without a manifest)."""
    manifest = _manifest()
    listed: Mapping[str, list[str]] = (manifest or {}).get("listed", {})
    return listed


def _list_from_manifest(loader: Any, listed: Mapping[str, list[str]]) -> None:
    """Answer ``loader.list_available_services`` for :data:`LISTED_TYPES` from ``listed`` (botocore's data
    directory, whose release the manifest matches) plus a walk of the other search paths, which are small
    (this package's trimmed models, ``~/.aws/models`` when it exists): the same sorted list, without walking
    botocore's 450 folders. Other types, and a loader whose path lacks botocore's directory, walk as before.
    """
    if not listed or getattr(loader, "_enforcer_listing", False):
        return
    walk = loader.list_available_services  # the bound, instance-cached original
    builtin = loader.BUILTIN_DATA_PATH
    cache: dict[str, list[str]] = {}

    def list_available_services(type_name: str) -> list[str]:
        known = listed.get(type_name)
        if known is None or builtin not in loader.search_paths:
            result: list[str] = walk(type_name)
            return result
        if type_name not in cache:
            services = set(known)
            for path in loader.search_paths:
                if path != builtin:
                    services.update(_scan(loader, path, type_name))
            cache[type_name] = sorted(services)
        return cache[type_name]

    loader.list_available_services = list_available_services
    loader._enforcer_listing = True


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else MODELS_DIR
    print(json.dumps(write_models(out), indent=1))
