"""Cheap pre-filter for replay: most of a trail is calls that launch nothing; skip them undecoded.

A CloudTrail record is normalised only when its ``(eventSource, eventName)`` is one the intake
decides: the hand-written CloudTrail shapes plus the coverage table's decided calls (the same two
sources :func:`enforcer.intake.cloudtrail.from_record` looks extractors up in). Every other record
would come back ``Ignored("not a launch call")``; the filter counts it as ignored without building a
request. It never skips what normalise would reject: a record whose source, name or id is not a
short string, or that another event detector would claim, goes through normalise as before.

A CloudTrail log file (``{"Records": [...]}``) is not decoded whole: :func:`split_log_file` lets
msgspec split it into each record's raw bytes and read only the few fields the skip test needs
(a typed partial struct: every other field is scanned, never built). Only the records that are not
skippable -- launches, and anything malformed or unusual -- are decoded in full (orjson). The
partial read is a real JSON decoder, so escapes (``"RunInstanc\\u0065s"``, an escaped key),
whitespace, key order and repeated keys (the last wins, as in orjson) read exactly as the full
decode reads them; a record it cannot read, or one with a field it cannot tell, is decoded.
A file it cannot read is parsed the old way (orjson, then JSON lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
import msgspec.structs
import orjson

#: normalise's limit on eventSource, eventName and eventID (``text(..., 128)``).
_MAX = 128


@cache
def launch_keys() -> frozenset[tuple[str, str]]:
    """``(eventSource, eventName)`` of every CloudTrail call the intake decides."""
    from enforcer.coverage.table import decided
    from enforcer.intake import CLOUDTRAIL_SHAPES

    keys = set(CLOUDTRAIL_SHAPES)
    keys |= {k for k, e in decided().items() if not e.reference}
    return frozenset(keys)


@cache
def launch_names() -> frozenset[str]:
    """The eventNames of :func:`launch_keys` (a first, cheaper test)."""
    return frozenset(name for _, name in launch_keys())


@cache
def _detectors_before() -> tuple[Any, ...]:
    """Predicates of the detectors normalise tries before the bare CloudTrail record's."""
    from enforcer.intake.registry import DETECTORS

    names = [name for name, _, _ in DETECTORS]
    return tuple(pred for _, pred, _ in DETECTORS[: names.index("cloudtrail_record")])


def _other_detector(rec: Mapping[str, Any]) -> bool:
    # normalise unpacks log files ("Records") and tries detectors in order: a record another one
    # claims (an EventBridge envelope ...) is left to normalise, which decides what it is
    return "Records" in rec or any(pred(rec) for pred in _detectors_before())


def skippable(rec: Any) -> bool:
    """True when ``rec`` is a CloudTrail record normalise would answer ``Ignored`` without deciding.

    Parameters
    ----------
    rec
        One entry of a log file's ``Records`` (or one JSON-lines event).
    """
    if type(rec) is not dict:
        return False
    name = rec.get("eventName")
    if type(name) is not str or name in launch_names() or not _short_text(name):
        return False
    source = rec.get("eventSource")
    if not _short_text(source) or (source, name) in launch_keys():
        return False
    eid = rec.get("eventID")
    if eid is not None and not _short_text(eid):  # empty or unprintable: normalise rejects it
        return False
    return not _other_detector(rec)


def loads(raw: bytes | str) -> Any:
    """Parse JSON with orjson (a ``json.JSONDecodeError`` subclass on bad input)."""
    return orjson.loads(raw)


def dumps_line(obj: Any) -> str:
    """One JSON line (orjson; non-str keys or exotic values fall back to the standard encoder)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        import json

        return json.dumps(obj, default=str) + "\n"


# -- the partial read of a log file ---------------------------------------------------------------
#: Top-level keys the detectors tried before the bare CloudTrail record's look at (``Records`` is
#: normalise's own): a record holding any of them is decoded in full and left to normalise.
DETECTOR_KEYS: tuple[str, ...] = (
    "Records",
    "detail-type",
    "detail",
    "source",
    "httpMethod",
    "requestContext",
    "launch",
    "account_id",
    "requestData",
    "clientRequestToken",
    "clientRequesttoken",
    "hookTypeName",
    "awsAccountId",
)


class _Head(msgspec.Struct):
    """The fields of one record the skip test reads (Raw: present or not, never decoded)."""

    eventName: Any = msgspec.UNSET
    eventSource: Any = msgspec.UNSET
    eventID: Any = msgspec.UNSET


# one Raw field per detector key, so their presence is seen without decoding their values
_Probe = msgspec.defstruct(
    "_Probe",
    [
        (f"k{i}", msgspec.Raw, msgspec.field(default=msgspec.UNSET, name=k))
        for i, k in enumerate(DETECTOR_KEYS)
    ],
    bases=(_Head,),
)


class _LogFile(msgspec.Struct):
    Records: list[msgspec.Raw]


class _LogHeads(msgspec.Struct):
    Records: list[_Probe]  # type: ignore[valid-type]


_FILE = msgspec.json.Decoder(_LogFile)
_HEADS = msgspec.json.Decoder(_LogHeads)
_PROBE = msgspec.json.Decoder(_Probe)
_PROBE_FIELDS = tuple(f"k{i}" for i in range(len(DETECTOR_KEYS)))


@dataclass(frozen=True, slots=True)
class Skipped:
    """``n`` consecutive records of a log file that normalise would answer ``Ignored`` (never decoded)."""

    n: int


def _short_text(v: Any) -> bool:
    # normalise's text(v, ..., 128): a non-empty printable string of at most 128 characters
    return type(v) is str and 0 < len(v) <= _MAX and v.isprintable()


#: ``(eventSource, eventName)`` -> skippable by those two alone (a trail repeats a few hundred pairs).
_PAIRS: dict[tuple[str, str], bool] = {}
_PAIRS_MAX = 65_536
_NO_KEYS = (msgspec.UNSET,) * len(DETECTOR_KEYS)
_UNSET = msgspec.UNSET
_astuple = msgspec.structs.astuple


def _pair_skippable(source: str, name: str) -> bool:
    ok = _PAIRS.get((source, name))
    if ok is None:
        ok = (
            name not in launch_names()
            and (source, name) not in launch_keys()
            and _short_text(name)
            and _short_text(source)
        )
        if len(_PAIRS) < _PAIRS_MAX:  # bounded: a trail of made-up names cannot grow it without end
            _PAIRS[(source, name)] = ok
    return ok


def _head_skippable(h: Any) -> bool:
    # the common case first and cheap (a pair already known skippable): a trail's records are mostly it
    vals = _astuple(h)
    name, source, eid = vals[0], vals[1], vals[2]
    if type(name) is not str or type(source) is not str:
        return False
    ok = _PAIRS.get((source, name))
    if ok is None:
        ok = _pair_skippable(source, name)
    if not ok or vals[3:] != _NO_KEYS:  # another detector's key is present: normalise decides what it is
        return False
    return eid is _UNSET or eid is None or (type(eid) is str and 0 < len(eid) <= _MAX and eid.isprintable())


def split_log_file(blob: bytes) -> list[Any] | None:
    """A CloudTrail log file's records, skippable runs folded into :class:`Skipped` (None: not one).

    Parameters
    ----------
    blob
        The whole (decompressed) file.

    Returns
    -------
    list or None
        In file order: a decoded record (dict, or whatever the JSON holds) for every record that is
        not skippable, ``Skipped(n)`` for each run of skippable ones, or ``json.JSONDecodeError``
        for a record the full decoder rejects. None when ``blob`` is not a JSON object whose
        ``Records`` is a list (the caller parses it the old way).
    """
    # any failure of the partial read means "unsure": decode (msgspec raises RecursionError, not
    # DecodeError, on deeply nested values; orjson rejects those files whole, read the old way)
    try:
        heads = _HEADS.decode(blob).Records
    except Exception:
        # not a log file, or a record that is not an object: per record below, or the old way
        heads = None
    try:
        raws = _FILE.decode(blob).Records
    except Exception:
        return None
    out: list[Any] = []
    run = 0
    skippable = _head_skippable
    for i, raw in enumerate(raws):
        if heads is not None:
            head: Any = heads[i]
        else:
            try:
                head = _PROBE.decode(raw)
            except Exception:
                head = None
        if head is not None and skippable(head):
            run += 1
            continue
        if run:
            out.append(Skipped(run))
            run = 0
        try:
            out.append(orjson.loads(bytes(raw)))
        except orjson.JSONDecodeError as exc:
            out.append(exc)
    if run:
        out.append(Skipped(run))
    return out
