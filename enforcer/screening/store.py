"""The loaded screening list under the state directory (``STATE/screening/list.json``).

``enforcer screening load FILE`` parses the published file once and keeps the entries with the
file's digest and load time, so every decision screens against a known version of the list.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from enforcer.model import InputError
from enforcer.screening.csl import MAX_LIST_BYTES, Entry, parse_list
from enforcer.screening.match import Screener

LIST_FILE = Path("screening") / "list.json"


def load_file(src: Path, state: Path, now: str) -> dict[str, Any]:
    """Parse the CSL file ``src`` and store it as the state's screening list; return its summary.

    Raises
    ------
    InputError
        When the file cannot be read, is too large, or holds no named entry.
    """
    try:
        with open(src, "rb") as fh:
            data = fh.read(MAX_LIST_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror}", "BAD_SCREENING_LIST") from exc
    entries = parse_list(data)
    meta = {
        "file": src.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "loaded_at": now,
        "entries": len(entries),
        "lists": sorted({e.source for e in entries}),
    }
    out = state / LIST_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".list-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "entries": [e.to_dict() for e in entries]}, fh, ensure_ascii=False)
    os.replace(tmp, out)
    return meta


def open_screener(path: Path) -> Screener | None:
    """The screener over a stored list (``STATE/screening/list.json``) or a raw CSL file.

    Returns None when no list exists at ``path``; a list that exists but cannot be read raises
    InputError (the caller reports screening as unavailable rather than screening nothing).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read screening list {path}: {exc.strerror}", "BAD_SCREENING_LIST") from exc
    try:
        doc = json.loads(data) if data.lstrip()[:1] == b"{" else None
    except ValueError as exc:
        raise InputError(f"screening list {path} is not JSON", "BAD_SCREENING_LIST") from exc
    if isinstance(doc, dict) and isinstance(doc.get("meta"), dict) and isinstance(doc.get("entries"), list):
        entries = [Entry(**e) for e in doc["entries"] if isinstance(e, dict)]
        return Screener(entries, version=str(doc["meta"].get("sha256", ""))[:16])
    return Screener(parse_list(data), version=hashlib.sha256(data).hexdigest()[:16])
