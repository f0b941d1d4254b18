"""Parse the Consolidated Screening List as trade.gov publishes it: JSON or CSV.

JSON (the API and the ``consolidated.json`` download): ``{"results": [entry, ...], ...}`` (a bare
list is accepted too), each entry with ``id``, ``source``, ``entity_number``, ``type``,
``programs`` (list), ``name``, ``alt_names`` (list), ``addresses`` (list of objects with
``country``), ``start_date``, ``source_list_url`` ... CSV (``consolidated.csv``): the same fields as
columns (``_id,source,entity_number,type,programs,name,title,addresses,...,alt_names,...``), list
fields joined with ``"; "`` and an address's country last after a comma.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from enforcer.model import InputError

#: The largest list file read (the full CSL is ~30 MB as JSON).
MAX_LIST_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 200_000
MAX_ALIASES = 200
_FIELD_CHARS = 1024


@dataclass(slots=True)
class Entry:
    """One listed party: its names, the list it is on and where to read about it."""

    entry_id: str
    name: str
    source: str
    alt_names: list[str] = field(default_factory=list)
    type: str = ""
    programs: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    start_date: str = ""
    source_list_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _s(value: Any) -> str:
    return value.strip()[:_FIELD_CHARS] if isinstance(value, str) else ""


def _split(value: Any) -> list[str]:
    if isinstance(value, list):
        parts = [_s(v) for v in value]
    else:
        parts = [_s(p) for p in _s(value).split(";")] if isinstance(value, str) else []
    return [p for p in parts if p][:MAX_ALIASES]


def _json_countries(addresses: Any) -> list[str]:
    out = []
    for a in addresses if isinstance(addresses, list) else []:
        c = _s(a.get("country")) if isinstance(a, dict) else ""
        if c and c not in out:
            out.append(c)
    return out


def _csv_countries(addresses: Any) -> list[str]:
    out = []
    for a in _split(addresses):
        c = a.rsplit(",", 1)[-1].strip()
        if len(c) == 2 and c.isalpha() and c.upper() not in out:
            out.append(c.upper())
    return out


def _entry(raw: dict[str, Any], n: int, countries: list[str]) -> Entry | None:
    name = _s(raw.get("name"))
    if not name:
        return None
    entry_id = _s(raw.get("id")) or _s(raw.get("_id")) or _s(raw.get("entity_number")) or f"row-{n}"
    return Entry(
        entry_id=entry_id,
        name=name,
        source=_s(raw.get("source")) or "unknown list",
        alt_names=_split(raw.get("alt_names")),
        type=_s(raw.get("type")),
        programs=_split(raw.get("programs")),
        countries=countries,
        start_date=_s(raw.get("start_date")),
        source_list_url=_s(raw.get("source_list_url")),
    )


def parse_json(data: bytes) -> list[Entry]:
    """Entries of a CSL JSON document (``{"results": [...]}`` or a list)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"screening list: not JSON ({exc})", "BAD_SCREENING_LIST") from exc
    rows = doc.get("results") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise InputError("screening list: expected {'results': [...]} or a list", "BAD_SCREENING_LIST")
    out = []
    for n, raw in enumerate(rows[:MAX_ENTRIES]):
        if isinstance(raw, dict) and (e := _entry(raw, n, _json_countries(raw.get("addresses")))):
            out.append(e)
    return out


def parse_csv(data: bytes) -> list[Entry]:
    """Entries of a CSL CSV file (header row with at least ``name`` and ``source``)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("screening list: CSV is not UTF-8", "BAD_SCREENING_LIST") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not {"name", "source"} <= set(reader.fieldnames):
        raise InputError("screening list: CSV header lacks 'name' and 'source'", "BAD_SCREENING_LIST")
    out = []
    try:
        for n, raw in enumerate(reader):
            if n >= MAX_ENTRIES:
                break
            if e := _entry(raw, n, _csv_countries(raw.get("addresses"))):
                out.append(e)
    except csv.Error as exc:
        raise InputError(f"screening list: bad CSV ({exc})", "BAD_SCREENING_LIST") from exc
    return out


def parse_list(data: bytes) -> list[Entry]:
    """Parse a CSL file, JSON or CSV by its first character; refuses an empty list."""
    if len(data) > MAX_LIST_BYTES:
        raise InputError(f"screening list larger than {MAX_LIST_BYTES} bytes", "BAD_SCREENING_LIST")
    head = data.lstrip()[:1]
    entries = parse_json(data) if head in (b"{", b"[") else parse_csv(data)
    if not entries:
        raise InputError("screening list has no entry with a name", "BAD_SCREENING_LIST")
    return entries
