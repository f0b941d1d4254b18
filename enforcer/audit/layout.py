"""File layout of the local audit store (``STATE/audit/``).

- ``segment-000001.jsonl``, ``segment-000002.jsonl`` …: the records, one per line, in chain order;
  a new segment starts when the current one would pass ``segment_max_bytes``.
- ``checkpoints.jsonl``: signed checkpoints, one JSON object per line.
- ``index.tsv``: write-side cache (seq, segment, end offset, hash, event-key digest, decision id)
  used for idempotency and to find the chain head fast. It is not trusted by the verifier and is
  rebuilt from the segments when missing or damaged.
- ``.lock``: ``fcntl.flock`` lock file serialising writers across processes.
- ``.salt``: the masking salt when none is passed in (mode 0600).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

SEGMENT_RE = re.compile(r"^segment-(\d{6,})\.jsonl$")
CHECKPOINTS = "checkpoints.jsonl"
INDEX = "index.tsv"
LOCK = ".lock"
SALT = ".salt"
#: Longest line a reader accepts (a record is at most 256 KiB; the rest is slack).
MAX_LINE_BYTES = 512 * 1024


def segment_name(number: int) -> str:
    """Return the file name of segment ``number`` (from 1)."""
    return f"segment-{number:06d}.jsonl"


def segment_files(directory: Path) -> list[tuple[int, Path]]:
    """Return the segments in ``directory`` as ``(number, path)`` sorted by number."""
    out: list[tuple[int, Path]] = []
    if not directory.is_dir():
        return out
    for p in directory.iterdir():
        m = SEGMENT_RE.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    out.sort()
    return out


def stray_files(directory: Path) -> list[str]:
    """Return ``*.jsonl`` files in ``directory`` that are neither segments nor the checkpoints file."""
    if not directory.is_dir():
        return []
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.endswith(".jsonl") and p.name != CHECKPOINTS and not SEGMENT_RE.match(p.name)
    )


def bounded_lines(fh: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, line)`` from a binary file, never reading more than ``limit`` bytes
    into one line: an over-long line is yielded cut at ``limit`` (without its newline, so it
    reads as malformed) and the rest of it is skipped.
    """
    n = 0
    while True:
        raw = fh.readline(limit)
        if not raw:
            return
        n += 1
        if len(raw) == limit and not raw.endswith(b"\n"):
            while True:  # skip the rest of the over-long line
                more = fh.readline(limit)
                if not more or more.endswith(b"\n"):
                    break
        yield n, raw
