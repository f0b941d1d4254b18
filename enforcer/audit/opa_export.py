"""``enforcer audit export``: each audit record as an OPA decision-log event.

The event has exactly the shape OPA's ``decision_logs`` plugin uploads (``EventV1`` in OPA's
``v1/plugins/logs``; docs: https://www.openpolicyagent.org/docs/management-decision-logs):
``labels`` (string map: ``app``, ``id`` = the instance, ``version`` = the OPA *engine* version),
``decision_id``, ``bundles: {NAME: {revision}}`` (never the deprecated ``revision`` as well),
``path``, ``input``, ``result``, ``requested_by``, ``timestamp``, ``metrics``, and ``erased`` /
``masked`` only when non-empty (OPA omits empty members). Everything the enforcer adds (reasons
in words, the chain position and hashes, the trigger, the attestation ids, the action taken)
goes under one namespaced member, ``gpu_enforcer``; the evidence, screening and ledger figures
the policy saw stay where OPA has them, in ``input``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import uuid
from pathlib import Path
from typing import Any

#: The bundle name of our own policies (``enforcer policy bundle`` / ``push``).
BUNDLE_NAME = "gpu-launch-enforcer"
#: The one namespaced member holding the enforcer's additions.
EXTRA_KEY = "gpu_enforcer"
#: ``labels.app``.
APP = "gpu-launch-enforcer"
_MARKER = b"\tgithub.com/open-policy-agent/opa\tv"
_MAX_VERSION = 40
_CHUNK = 1 << 20
#: Record members copied under ``gpu_enforcer`` (as logged).
_EXTRA_MEMBERS = (
    "seq",
    "prev_hash",
    "hash",
    "trigger",
    "account_id",
    "region",
    "instance_ids",
    "chip_classes",
    "attestation",
    "action",
    "mode",
    "enforced",
    "fail_open",
)


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def go_module_version(binary: Path, marker: bytes = _MARKER) -> str | None:
    """The version of a Go dependency recorded in a Go binary's build info (``go version -m``).

    Parameters
    ----------
    binary
        A Go executable or c-shared library.
    marker
        ``\\t<module path>\\tv`` as written in the build info's ``dep`` lines.

    Returns
    -------
    str or None
        e.g. ``"1.20.2"``; None when the file cannot be read or does not record the module.
    """
    try:
        with binary.open("rb") as fh:
            tail = b""
            while chunk := fh.read(_CHUNK):
                buf = tail + chunk
                i = buf.find(marker)
                if i >= 0:
                    if len(buf) - i < len(marker) + _MAX_VERSION:
                        buf += fh.read(_MAX_VERSION)
                    raw = buf[i + len(marker) : i + len(marker) + _MAX_VERSION].split(b"\t", 1)[0]
                    text = raw.split(b"\n", 1)[0].decode("ascii", "replace")
                    return text if text and all(c.isalnum() or c in ".-+" for c in text) else None
                tail = buf[-len(marker) :]
    except OSError:
        return None
    return None


@functools.cache
def embedded_opa_version() -> str:
    """The OPA version compiled into the embedded engine (``opa-golib-python-bindings``), or ``unknown``."""
    spec = importlib.util.find_spec("opa_bindings")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for lib in sorted(Path(folder).glob("libopabridge*.so*")):
            version = go_module_version(lib)
            if version:
                return version
    return "unknown"


def engine_version(policy: dict[str, Any]) -> str:
    """The OPA version of the engine a record names (``labels.version``, never the enforcer's).

    A version the record carries (``policy.engine_version``) wins; the embedded engine is the OPA
    library installed here; an OPA server's version is ``unknown`` unless the record names it.
    """
    stated = policy.get("engine_version")
    if isinstance(stated, str) and stated:
        return stated[:_MAX_VERSION]
    if policy.get("engine") == "embedded":
        return embedded_opa_version()
    return "unknown"


def instance_id(source: str) -> str:
    """A stable ``labels.id`` for the enforcer instance that wrote a log (a UUID derived from where it is)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"gpu-launch-enforcer:{source}"))


def bundles(revision: Any) -> dict[str, dict[str, str]]:
    """``bundles`` from a logged revision (``name=rev,name2=rev2`` for several, as ingest writes it)."""
    if not isinstance(revision, str) or not revision or revision == "unknown":
        return {}
    parts = revision.split(",")
    # Several bundles are written ``name=rev,name2=rev2`` (never one: a lone revision may end in "=").
    if len(parts) > 1 and all(p.partition("=")[0] and p.partition("=")[1] for p in parts):
        named = dict(p.split("=", 1) for p in parts)
        if len(named) == len(parts):
            return {name: {"revision": rev} for name, rev in named.items()}
    return {BUNDLE_NAME: {"revision": revision}}


def _requested_by(record: dict[str, Any]) -> str:
    """Who asked for the decision: the AWS principal, else the caller's address, else the trigger source."""
    inp = _d(record.get("input"))
    principal = _d(inp.get("request")).get("principal")
    if isinstance(principal, str) and principal:
        return principal
    ip = _d(_d(inp.get("evidence")).get("caller")).get("ip")
    if isinstance(ip, str) and ip:
        return ip
    return str(_d(record.get("trigger")).get("source") or "")


def _metrics(record: dict[str, Any]) -> dict[str, int | float]:
    out: dict[str, int | float] = {}
    for k, v in _d(record.get("metrics")).items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[str(k)] = int(v) if isinstance(v, float) and v.is_integer() else v
    return out


def _pointers(values: Any) -> list[str]:
    """JSON pointers into the event: those into the record's side members move under ``gpu_enforcer``."""
    out = []
    for p in values if isinstance(values, list) else []:
        s = str(p)
        out.append(s if s.startswith(("/input", "/result")) else f"/{EXTRA_KEY}{s}")
    return out


def to_opa_event(
    record: dict[str, Any], *, labels_id: str | None = None, failure: str | None = None
) -> dict[str, Any]:
    """Return one audit record as an OPA decision-log event.

    Parameters
    ----------
    record
        A logged record (with its chain fields).
    labels_id
        ``labels.id``: the enforcer instance that wrote the log (``instance_id(source)``).
    failure
        Why the record fails verification (``row_check``), exported as
        ``gpu_enforcer.verification_failure``; None for a record that verifies.

    Returns
    -------
    dict
        The event; OPA's members at the top, the enforcer's under ``gpu_enforcer``.
    """
    policy = _d(record.get("policy"))
    result = record.get("result")
    inp = record.get("input")
    event: dict[str, Any] = {
        "labels": {
            "app": APP,
            "id": labels_id or instance_id("unknown"),
            "version": engine_version(policy),
        },
        "decision_id": str(record.get("decision_id") or ""),
        "path": str(record.get("path") or ""),
        "requested_by": _requested_by(record),
        "timestamp": str(record.get("timestamp") or ""),
    }
    for key, value in (("input", inp), ("result", result)):
        if value is not None:  # OPA omits them when absent (never null)
            event[key] = value
    found = bundles(policy.get("revision"))
    if found:
        event["bundles"] = found
    metrics = _metrics(record)
    if metrics:
        event["metrics"] = metrics
    for key in ("erased", "masked"):
        pointers = _pointers(record.get(key))
        if pointers:
            event[key] = pointers
    extra: dict[str, Any] = {k: record.get(k) for k in _EXTRA_MEMBERS}
    extra["engine"] = policy.get("engine")
    extra["policy_revision"] = policy.get("revision")
    extra["reasons"] = [
        {"code": r.get("code"), "message": r.get("message"), "severity": r.get("severity")}
        for r in (_d(result).get("reasons") or [])
        if isinstance(r, dict)
    ]
    if failure is not None:
        extra["verification_failure"] = failure
    event[EXTRA_KEY] = extra
    return event


def opa_jsonl(record: dict[str, Any], *, labels_id: str | None = None, failure: str | None = None) -> str:
    """Return one OPA decision-log JSON line (no trailing newline)."""
    event = to_opa_event(record, labels_id=labels_id, failure=failure)
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
