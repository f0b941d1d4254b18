"""Replay past launches through the current policy (a what-if: nothing is logged or acted on).

Sources: CloudTrail log files (``{"Records": [...]}``, gzipped or not, or a directory of them as
CloudTrail writes to S3), EventBridge events (JSON, a JSON list, or JSONL), and ``s3://bucket/prefix``.
Events are streamed one file at a time, so memory stays flat however long the history is.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from enforcer.intake import normalise
from enforcer.intake.malformed import malformed_launch
from enforcer.model import CONTROLLED_CLASSES, Decision, Ignored, InputError
from enforcer.pipeline import Enforcer
from enforcer.replay_filter import Skipped, dumps_line, loads, skippable, split_log_file

MAX_FILE_BYTES = 512 * 1024 * 1024
SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".gz")


@dataclass(slots=True)
class ReplaySummary:
    """Counts over one replay run."""

    events: int = 0
    decided: int = 0
    ignored: int = 0
    errors: int = 0
    changed: int = 0
    by_effect: Counter[str] = field(default_factory=Counter)
    by_account: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_chip_class: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, decision: Decision, baseline: str | None) -> None:
        """Count one decision (and the baseline policy's effect, when diffing two policies)."""
        self.decided += 1
        eff = decision.effect
        self.by_effect[eff] += 1
        self.by_account[(decision.request.account_id, eff)] += 1
        for cls in {i.chip_class or "unknown" for i in decision.request.items}:
            self.by_chip_class[(cls, eff)] += 1
        for r in decision.reasons:
            self.by_reason[r.code] += 1
        if baseline is not None and baseline != eff:
            self.changed += 1
            self.transitions[(baseline, eff)] += 1


def read_file(path: Path) -> tuple[bytes, str | None]:
    """A local file's bytes, gunzipped when it is gzip (every member), and what was wrong at its end.

    Returns
    -------
    tuple
        ``(data, problem)``: ``problem`` names bytes after the last whole gzip member that are not
        another member (they are left out; the members before them are read), else None.

    Raises
    ------
    InputError
        Beyond ``MAX_FILE_BYTES`` (on disk or gunzipped), or a first gzip member that is corrupt
        or truncated.
    """
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB", "BAD_INPUT")
    return gunzip(path.read_bytes(), str(path))


def gunzip(data: bytes, label: str) -> tuple[bytes, str | None]:
    """``data`` gunzipped when it is gzip (every member), else as it is: see :func:`read_file`."""
    limit, path = MAX_FILE_BYTES, label
    if data[:2] != b"\x1f\x8b":
        return data, None
    out: list[bytes] = []
    size = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            if not out:
                raise InputError(f"{path}: bad gzip ({exc})", "BAD_INPUT") from exc
            return b"".join(out), f"{len(data)} bytes after the last gzip member are not gzip ({exc})"
        size += len(chunk)
        if size > limit or d.unconsumed_tail:
            raise InputError(f"{path}: larger than {limit >> 20} MB gunzipped", "BAD_INPUT")
        if not d.eof:
            if not out:
                raise InputError(f"{path}: truncated gzip", "BAD_INPUT")
            return b"".join(out), f"a truncated gzip member of {len(data)} bytes after the last whole one"
        out.append(chunk)
        data = d.unused_data.lstrip(b"\x00")  # the next gzip member, if any (zero padding allowed)
    return b"".join(out), None


def events_of_file(path: Path, prefilter: bool = True) -> Iterator[tuple[str, Any]]:
    """``(label, event)`` of one local file (see :func:`iter_events`); unreadable: one InputError."""
    try:
        body, problem = read_file(path)
    except InputError as exc:
        yield str(path), exc
        return
    except OSError as exc:
        yield str(path), InputError(f"{path}: {exc.strerror or exc}", "BAD_INPUT")
        return
    yield from _events_from_bytes(body, str(path), prefilter)
    if problem is not None:  # the members before it were read; the rest is reported, never dropped silently
        yield f"{path}#end", InputError(f"{path}: {problem}", "BAD_INPUT")


def _from_log_file(items: list[Any], label: str) -> Iterator[tuple[str, Any]]:
    i = 0
    for item in items:
        if type(item) is Skipped:
            yield f"{label}#{i}", item
            i += item.n
            continue
        if isinstance(item, json.JSONDecodeError):
            item = InputError(f"{label}#{i}: bad JSON ({item.msg})", "BAD_INPUT")
        yield f"{label}#{i}", item
        i += 1


def _events_from_bytes(data: bytes, label: str, prefilter: bool) -> Iterator[tuple[str, Any]]:
    i, n = 0, len(data)
    while i < n and data[i] in b" \t\n\r\x0b\x0c":
        i += 1
    if i == n:
        return
    body = data[i:] if i else data
    first = body[:1]
    if prefilter and first == b"{":
        items = split_log_file(body)
        if items is not None:
            yield from _from_log_file(items, label)
            return
    if first == b"[" or first == b"{":
        try:
            doc = loads(body)
        except json.JSONDecodeError:
            # JSON lines: several objects, one per line
            yield from _jsonl(body.decode("utf-8", "replace").splitlines(), label)
            return
        if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
            for i, rec in enumerate(doc["Records"]):
                yield f"{label}#{i}", rec
        elif isinstance(doc, list):
            for i, ev in enumerate(doc):
                yield f"{label}#{i}", ev
        else:
            yield label, doc
        return
    yield label, InputError(f"{label}: not JSON", "BAD_INPUT")


def _jsonl(lines: Iterable[str], label: str) -> Iterator[tuple[str, Any]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield f"{label}:{n}", loads(line)
        except json.JSONDecodeError as exc:
            yield f"{label}:{n}", InputError(f"{label}:{n}: bad JSON ({exc.msg})", "BAD_INPUT")


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.name.endswith(SUFFIXES):
                yield p
    else:
        yield path


def iter_events(
    sources: Iterable[str], s3_client: Any = None, athena_client: Any = None, prefilter: bool = True
) -> Iterator[tuple[str, Any]]:
    """Yield ``(label, event)`` for every event under ``sources``; unreadable items yield an InputError.

    With ``prefilter`` (the default), runs of a log file's records that normalise would ignore
    come as one :class:`enforcer.replay_filter.Skipped` (undecoded; :func:`replay` counts them).

    Parameters
    ----------
    sources
        Files, directories, ``s3://bucket/prefix`` URLs (these need ``s3_client``),
        ``athena://DB.TABLE?workgroup=...&since=...`` (needs ``athena_client``) or ``duckdb:GLOB``:
        the launch filter runs in SQL there (:mod:`enforcer.replay_sql`).
    prefilter
        Skip the records normalise would ignore without decoding them (False: decode every one).
    """
    for src in sources:
        if src.startswith("s3://"):
            yield from _iter_s3(src, s3_client, prefilter)
            continue
        if src.startswith(("athena://", "duckdb:")):  # the launch filter runs in SQL (replay_sql)
            from enforcer.replay_sql import iter_athena, iter_duckdb

            if src.startswith("duckdb:"):
                yield from iter_duckdb(src.removeprefix("duckdb:"))
            else:
                yield from iter_athena(src, athena_client)
            continue
        path = Path(src)
        if not path.exists():
            yield src, InputError(f"{src}: no such file or directory", "BAD_INPUT")
            continue
        for f in _files(path):
            yield from events_of_file(f, prefilter)


def _iter_s3(url: str, s3: Any, prefilter: bool = True) -> Iterator[tuple[str, Any]]:
    if s3 is None:
        yield url, InputError("an S3 client is needed for s3:// sources", "BAD_INPUT")
        return
    bucket, _, prefix = url[5:].partition("/")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            label = f"s3://{bucket}/{obj['Key']}"
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read(MAX_FILE_BYTES + 1)
            try:
                if len(body) > MAX_FILE_BYTES:
                    raise InputError(f"{label}: larger than {MAX_FILE_BYTES >> 20} MB", "BAD_INPUT")
                data, problem = gunzip(body, label)
            except InputError as exc:
                yield label, exc
                continue
            yield from _events_from_bytes(data, label, prefilter)
            if problem is not None:
                yield f"{label}#end", InputError(f"{label}: {problem}", "BAD_INPUT")


def replay(
    events: Iterable[tuple[str, Any]],
    enforcer: Enforcer,
    out: IO[str],
    baseline: Enforcer | None = None,
    now: float | None = None,
    on_event: Any = None,
    book: Any = None,
) -> ReplaySummary:
    """Decide every event with ``enforcer`` (and ``baseline``) and write one JSON line per decision.

    Nothing is logged to the audit trail. Malformed events are counted, written as error lines, and
    skipped; they never stop the run. A launch call whose record the intake rejects is counted as an
    error too and, as the guard does, decided as the fail-closed request of
    :func:`enforcer.intake.malformed.malformed_launch` (its line carries ``malformed``).
    ``book`` (``enforcer.ledger.book.LedgerBook``) builds the
    compute ledger over the history: each decision books its launch, stop/terminate events release.
    CloudTrail records of calls the intake does not decide are counted as ignored without being
    normalised (:func:`enforcer.replay_filter.skippable`; releases are EventBridge events, never skipped);
    runs of them the reader already left undecoded come as one ``Skipped(n)``.
    """
    summary = ReplaySummary()
    for label, event in events:
        if type(event) is Skipped:
            summary.events += event.n
            summary.ignored += event.n
            if on_event is not None:
                for _ in range(event.n):
                    on_event()
            continue
        summary.events += 1
        if on_event is not None:
            on_event()
        if skippable(event):
            summary.ignored += 1
            continue
        malformed: dict[str, str] | None = None
        try:
            if isinstance(event, InputError):
                raise event
            request = normalise(event)
        except InputError as exc:
            # as the guard does: a launch call whose record cannot be read is decided (denied
            # REQUEST_UNRESOLVED), not skipped, so a preview shows what the guard stopped
            launch = None if isinstance(event, InputError) else malformed_launch(event, exc)
            summary.errors += 1
            summary.error_codes[exc.code] += 1
            if launch is None:
                out.write(dumps_line({"source": label, "error": exc.code, "message": str(exc)}))
                continue
            request, malformed = launch, {"error": exc.code, "message": str(exc)}
        if isinstance(request, Ignored):
            summary.ignored += 1
            if book is not None:
                book.release(event, now)
            continue
        decision = enforcer.decide(request, now)
        if book is not None:
            book.book(decision)
        base = None
        if baseline is not None and decision.input is not None:
            # same input, other policy: no second resolve, classification or registry look-up
            controlled = any(i.chip_class in CONTROLLED_CLASSES for i in request.items)
            base = baseline.evaluate(decision.input, controlled)[0]
        summary.add(decision, base)
        line = decision.to_dict()
        line["source"] = label
        if malformed is not None:
            line["malformed"] = malformed
        if base is not None:
            line["baseline_effect"] = base
            line["changed"] = base != decision.effect
        out.write(dumps_line(line))
    return summary
