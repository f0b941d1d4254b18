"""Reading the decision log back: iterate and filter (the OPA export is ``opa_export``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.chain import LineError, parse_line
from enforcer.audit.opa_export import opa_jsonl, to_opa_event

__all__ = [
    "LoggedRecord",
    "RecordFilter",
    "iter_records",
    "opa_jsonl",
    "parse_time",
    "record_country",
    "record_effect",
    "record_instance_types",
    "record_reasons",
    "to_opa_event",
]

#: Where the account's origin country may sit in a policy input document, first match wins.
_COUNTRY_PATHS = (("account", "country"), ("origin", "country"), ("account_origin", "country"))


@dataclass(slots=True)
class LoggedRecord:
    """One record as read from the log, with where it was found."""

    file: str
    line: int
    record: dict[str, Any]
    #: sha256 of the record's bytes as stored, when the reader had them (None: recompute from ``record``).
    computed: str | None = None


def iter_records(directory: str | Path, errors: list[str] | None = None) -> Iterator[LoggedRecord]:
    """Yield the records of a local log in chain order.

    Parameters
    ----------
    directory
        The log directory.
    errors
        When given, unreadable lines are described here (and skipped) instead of silently skipped.
        Use ``open_verify`` to check integrity; this only reads.
    """
    for _num, path in layout.segment_files(Path(directory)):
        with path.open("rb") as fh:
            for n, raw in layout.bounded_lines(fh):
                try:
                    rec, computed, stated = parse_line(raw)
                except LineError as exc:
                    if errors is not None:
                        errors.append(f"{path.name}:{n}: {exc}")
                    continue
                rec["hash"] = stated
                yield LoggedRecord(path.name, n, rec, computed)


def parse_time(value: Any) -> float | None:
    """Parse an RFC 3339 timestamp into epoch seconds (None when absent or malformed)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _dig(doc: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(p)
    return doc


def record_country(record: dict[str, Any]) -> str:
    """Return the account's origin country recorded in the policy input, or ``"unknown"``."""
    inp = record.get("input")
    for path in _COUNTRY_PATHS:
        v = _dig(inp, path)
        if isinstance(v, str) and v:
            return v
    return "unknown"


def record_effect(record: dict[str, Any]) -> str:
    """Return the record's effect (``allow``/``deny``/``audit``, or ``unknown``)."""
    v = _dig(record, ("result", "effect"))
    return v if isinstance(v, str) else "unknown"


def record_reasons(record: dict[str, Any]) -> list[str]:
    """Return the reason codes of a record."""
    reasons = _dig(record, ("result", "reasons"))
    if not isinstance(reasons, list):
        return []
    return [str(r.get("code")) for r in reasons if isinstance(r, dict) and r.get("code")]


def record_instance_types(record: dict[str, Any]) -> list[str]:
    """Return the instance types requested, as recorded in the input."""
    items = _dig(record, ("input", "request", "items"))
    if not isinstance(items, list):
        return []
    return [str(i.get("instance_type")) for i in items if isinstance(i, dict) and i.get("instance_type")]


@dataclass(slots=True)
class RecordFilter:
    """Conditions for ``enforcer audit query``; None means "any"."""

    account: str | None = None
    effect: str | None = None
    reason: str | None = None
    chip_class: str | None = None
    since: float | None = None
    until: float | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """Return True when ``record`` satisfies every set condition."""
        if self.account is not None and record.get("account_id") != self.account:
            return False
        if self.effect is not None and record_effect(record) != self.effect:
            return False
        if self.reason is not None and self.reason not in record_reasons(record):
            return False
        if self.chip_class is not None:
            classes = record.get("chip_classes")
            if not isinstance(classes, list) or self.chip_class not in classes:
                return False
        if self.since is not None or self.until is not None:
            t = parse_time(record.get("timestamp"))
            if t is None:
                return False
            if self.since is not None and t < self.since:
                return False
            if self.until is not None and t > self.until:
                return False
        return True
