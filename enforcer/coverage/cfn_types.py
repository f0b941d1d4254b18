"""CloudFormation resource types whose properties carry an instance type, from cfn-lint's resource schemas.

cfn-lint ships the CloudFormation registry schemas (``cfnlint/data/schemas``): a provider index per
region (``providers/us-east-1.json``: type -> schema file) and the schemas themselves. A type is
*launch-bearing* when any property, at any depth (``$ref`` definitions followed), is named like an
instance type (``InstanceType``, ``InstanceTypes``, ``DeploymentInstanceType`` ...) and is not an
exclusion or declaration (``ExcludedInstanceTypes``, ``SupportedInstanceTypes``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from enforcer.coverage.walker import METADATA_NAME, TYPE_NAME

_MAX_DEPTH = 24


def _schemas_root() -> Any:
    return resources.files("cfnlint").joinpath("data", "schemas")


def _is_text(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    schema = _deref(schema, defs)
    kind = schema.get("type")
    if kind == "array":
        return _is_text(schema.get("items", {}), defs)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and not any("." in str(v) for v in enum):
        return False  # an option such as SpotInstanceType = one-time|persistent, not a type
    if isinstance(kind, list):
        return "string" in kind
    return kind == "string" or (enum is not None and kind is None)


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return dict(defs.get(ref.rsplit("/", 1)[-1], {}))
    return schema


def _walk(
    schema: dict[str, Any], defs: dict[str, Any], path: str, seen: frozenset[str], depth: int
) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return
        seen = seen | {ref}
        schema = _deref(schema, defs)
    if schema.get("type") == "array" or "items" in schema:
        yield from _walk(schema.get("items", {}), defs, f"{path}[]", seen, depth + 1)
        return
    for combo in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(combo, []) or []:
            if isinstance(sub, dict):
                yield from _walk(sub, defs, path, seen, depth + 1)
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        p = f"{path}.{name}" if path else name
        if TYPE_NAME.match(name) and not METADATA_NAME.match(name) and _is_text(sub, defs):
            yield p
        else:
            yield from _walk(sub, defs, p, seen, depth + 1)


def schema_paths(schema: dict[str, Any]) -> list[str]:
    """Instance-type property paths of one resource schema (``Properties`` paths)."""
    defs = schema.get("definitions", {}) or {}
    return sorted(set(_walk({"properties": schema.get("properties", {})}, defs, "", frozenset(), 0)))


@cache
def launch_resource_types(region: str = "us-east-1") -> dict[str, tuple[str, ...]]:
    """Every CloudFormation resource type with an instance-type property, with the property paths.

    Parameters
    ----------
    region
        The provider index to read (resource types differ slightly by region).
    """
    root = _schemas_root()
    index: dict[str, str] = json.loads(root.joinpath("providers", f"{region}.json").read_text("utf-8"))
    out: dict[str, tuple[str, ...]] = {}
    for rtype, digest in sorted(index.items()):
        try:
            schema = json.loads(root.joinpath("resources", f"{digest}.json").read_text("utf-8"))
        except (OSError, ValueError):
            continue
        paths = schema_paths(schema)
        if paths:
            out[rtype] = tuple(paths)
    return out


#: CloudFormation namespaces whose botocore service name differs from the namespace.
CFN_SERVICE_ALIASES = {
    "amazonmq": "mq",
    "msk": "kafka",
    "opensearchservice": "opensearch",
    "elasticsearch": "es",
    "timestream": "timestream-influxdb",
    "bedrockagentcore": "bedrock-agentcore-control",
    "workspacesinstances": "workspaces-instances",
}


def botocore_service(resource_type: str) -> str | None:
    """The botocore service of a CloudFormation type (``AWS::AmazonMQ::Broker`` -> ``mq``), or None."""
    from enforcer.coverage.table import load_table

    parts = resource_type.split("::")
    if len(parts) != 3:
        return None
    ns = parts[1].lower()
    if ns in CFN_SERVICE_ALIASES:
        return CFN_SERVICE_ALIASES[ns]
    for service in {e.service for e in load_table()}:
        if service.replace("-", "") == ns:
            return service
    return None


@cache
def hook_resource_types() -> tuple[str, ...]:
    """Launch-bearing types of services that have a decided call (out-of-scope services left out)."""
    from enforcer.coverage.table import load_table

    deciding = {e.service for e in load_table() if e.status != "out-of-scope"}
    out = []
    for rtype in launch_resource_types():
        service = botocore_service(rtype)
        if service is None or service in deciding:  # unknown namespace: keep (conservative)
            out.append(rtype)
    return tuple(out)


def is_launch_resource_type(resource_type: str) -> bool:
    """Whether a CloudFormation resource type can put an instance type to work (the hook must decide it).

    True for types whose schema has an instance-type property (cfn-lint's registry schemas) and
    whose service is not out of scope in the coverage table (MSK brokers, OpenSearch domains ... are
    not launch-bearing); everything else can be answered ``SUCCESS`` at once.

    Parameters
    ----------
    resource_type
        e.g. ``AWS::SageMaker::EndpointConfig``.
    """
    return resource_type in hook_resource_types()
