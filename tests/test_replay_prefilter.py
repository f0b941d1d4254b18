"""The byte-level pre-filter never drops a launch: escapes, repeated keys, whitespace, key order.

The oracle is the full decode: every record of a log file the pre-filter folds into a ``Skipped``
run must be one that ``normalise`` answers ``Ignored`` after orjson decodes the whole file; every
record it decodes comes back exactly as orjson reads it. Inputs come from every event fixture in
``tests/events/`` (AWS documentation shapes) and the synthetic mix, rewritten in raw JSON the way
an adversary who read the filter would write them.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import enforcer.replay as replay_mod
from enforcer.intake import normalise
from enforcer.model import InputError, LaunchRequest
from enforcer.replay import events_of_file, iter_events, read_file, replay
from enforcer.replay_filter import DETECTOR_KEYS, Skipped, launch_keys, split_log_file

EVENTS = Path(__file__).parent / "events"


def _fixture_records() -> list[Any]:
    """Every fixture as it could sit in a log file's Records (CloudTrail records unwrapped)."""
    out: list[Any] = []
    for p in sorted(EVENTS.glob("*.json")):
        doc = json.loads(p.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
            out.extend(doc["Records"])
        elif isinstance(doc, dict) and doc.get("detail-type") == "AWS API Call via CloudTrail":
            out.append(doc["detail"])
            out.append(doc)  # the envelope itself: another detector's, never skipped blindly
        else:
            out.append(doc)
    return out


def _verdict(rec: Any) -> str:
    try:
        r = normalise(rec)
    except InputError:
        return "error"
    return "launch" if isinstance(r, LaunchRequest) else "ignored"


def _esc(s: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in s)


def _raw(rec: dict[str, Any], key: Callable[[str], str] = json.dumps, order: int = 1, sep: str = "") -> str:
    """A record's JSON text with each top-level key written by ``key`` (``order`` -1: reversed)."""
    items = list(rec.items())[::order]
    body = f",{sep}".join(f"{key(k)}{sep}:{sep}{json.dumps(v)}" for k, v in items)
    return "{" + sep + body + sep + "}"


def _variants(rec: dict[str, Any]) -> list[str]:
    name = rec.get("eventName")
    out = [
        _raw(rec),
        _raw(rec, order=-1, sep="\n\t "),  # whitespace everywhere, key order reversed
        # the value escaped, the key escaped, both
        _raw(rec).replace(f'"eventName":{json.dumps(name)}', f'"eventName":"{_esc(str(name))}"'),
        _raw(rec, key=lambda k: f'"{_esc(k)}"' if k in ("eventName", "eventSource") else json.dumps(k)),
        _raw(rec, key=lambda k: f'"{_esc(k)}"'),
        # a decoy before the real name (the last one counts) and after it (then it is the decoy)
        '{"eventName":"GetObject",' + _raw(rec)[1:],
        _raw(rec)[:-1] + ',"eventName":"GetObject","eventSource":"s3.amazonaws.com"}',
        # an escaped detector key hidden in an otherwise ordinary read
        _raw(dict(rec, eventName="GetObject", eventSource="s3.amazonaws.com"))[:-1]
        + ',"d\\u0065tail-type":"AWS API Call via CloudTrail","detail":'
        + json.dumps(rec)
        + ',"source":"aws.ec2","id":"x"}',
    ]
    return out


def _log_file(raw_records: list[str]) -> bytes:
    return ('{"Records":[' + ",\n".join(raw_records) + "]}").encode()


def _check(blob: bytes) -> tuple[int, int]:
    """Assert the pre-filter against the full decode; return (skipped, launches)."""
    records = orjson.loads(blob)["Records"]
    items = split_log_file(blob)
    assert items is not None
    i = skipped = launches = 0
    for item in items:
        if isinstance(item, Skipped):
            for rec in records[i : i + item.n]:
                assert _verdict(rec) == "ignored", rec  # never a launch, never a malformed record
            i, skipped = i + item.n, skipped + item.n
        else:
            assert item == records[i]  # decoded exactly as the full decode reads it
            launches += _verdict(item) == "launch"
            i += 1
    assert i == len(records)
    assert launches == sum(_verdict(r) == "launch" for r in records)
    return skipped, launches


def test_fixture_records_in_every_spelling_are_never_skipped() -> None:
    recs = [r for r in _fixture_records() if isinstance(r, dict)]
    raws = [v for r in recs for v in _variants(r)]
    # plus ordinary reads the filter must skip, so skipping is exercised between the launches
    reads = [
        {"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventID": f"e{i}", "readOnly": True}
        for i in range(50)
    ]
    raws += [_raw(r) for r in reads]
    random.Random(3).shuffle(raws)
    skipped, launches = _check(_log_file(raws))
    assert skipped >= 50 and launches >= 100


def test_launch_names_spelled_with_escapes_are_decided() -> None:
    for source, name in sorted(launch_keys())[:40]:
        rec = {"eventSource": source, "eventName": name, "eventID": "a", "requestParameters": {}}
        blob = _log_file([_raw(rec).replace(f'"{name}"', f'"{_esc(name)}"')])
        items = split_log_file(blob)
        assert items is not None and not any(isinstance(x, Skipped) for x in items), name
        assert items[0]["eventName"] == name


@pytest.mark.parametrize(
    "raw",
    [
        '{"eventSource":"s3.amazonaws.com","eventName":"","eventID":"a"}',  # empty name: InputError
        '{"eventSource":"s3.amazonaws.com","eventName":"Get\\u0000Object"}',  # control character
        '{"eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":""}',
        '{"eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"\\n"}',
        '{"eventSource":"s3.amazonaws.com","eventName":["RunInstances"]}',
        '{"eventSource":{"a":1},"eventName":"GetObject"}',
        '{"eventName":"GetObject"}',
        '{"eventSource":"s3.amazonaws.com","eventName":"GetObject","Records":[]}',
        '"RunInstances"',
        "7",
        "null",
    ],
)
def test_anything_normalise_would_not_ignore_is_decoded(raw: str) -> None:
    blob = _log_file([raw])
    items = split_log_file(blob)
    assert items is not None and len(items) == 1 and not isinstance(items[0], Skipped)
    assert items[0] == orjson.loads(raw)
    assert _verdict(items[0]) != "ignored" or "Records" not in raw


def test_every_detector_key_is_probed() -> None:
    base = {"eventSource": "s3.amazonaws.com", "eventName": "GetObject"}
    for key in DETECTOR_KEYS:
        items = split_log_file(_log_file([_raw(dict(base, **{key: 1}))]))
        assert items is not None and not isinstance(items[0], Skipped), key
    # the detectors normalise tries before a bare record's all look only at these keys
    from enforcer.intake.registry import DETECTORS

    before = [pred for name, pred, _ in DETECTORS][: [n for n, _, _ in DETECTORS].index("cloudtrail_record")]
    for rec in _fixture_records():
        if isinstance(rec, dict):
            stripped = {k: v for k, v in rec.items() if k not in DETECTOR_KEYS}
            assert not any(pred(stripped) for pred in before), sorted(rec)


def test_a_record_the_full_decoder_rejects_is_an_error_not_a_skip(tmp_path: Path, make_enforcer: Any) -> None:
    launch = '{"eventSource":"ec2.amazonaws.com","eventName":"RunInstances","x":1e999}'
    read = '{"eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"r"}'
    p = tmp_path / "f.json"
    p.write_bytes(_log_file([read, launch, read]))
    events = list(events_of_file(p))
    assert [type(e).__name__ for _, e in events] == ["Skipped", "InputError", "Skipped"]
    assert [label.rsplit("#", 1)[1] for label, _ in events] == ["0", "1", "2"]
    out = io.StringIO()
    s = replay(iter(events), make_enforcer({}), out)
    assert (s.events, s.ignored, s.errors) == (3, 2, 1)
    assert json.loads(out.getvalue())["error"] == "BAD_INPUT"


def test_not_a_log_file_is_read_the_old_way(tmp_path: Path) -> None:
    assert split_log_file(b'{"Records": 5}') is None
    assert split_log_file(b"[1, 2]") is None
    assert split_log_file(b'{"a": 1}\n{"b": 2}') is None
    p = tmp_path / "lines.jsonl"
    p.write_text('{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}\n{"x": 1}\n')
    assert [type(e).__name__ for _, e in events_of_file(p)] == ["dict", "dict"]


def test_gzip_members_and_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = gzip.compress(b'{"Records":[')
    b = gzip.compress(b'{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}]}')
    p = tmp_path / "multi.json.gz"
    p.write_bytes(a + b)
    assert read_file(p)[0].endswith(b"]}") and read_file(p)[1] is None
    assert [type(e).__name__ for _, e in events_of_file(p)] == ["Skipped"]
    # bytes after the last member: the members are read, the rest is an error line (gzip.open raised)
    (tmp_path / "tail.json.gz").write_bytes(a + b + b"not gzip at all")
    events = list(events_of_file(tmp_path / "tail.json.gz"))
    assert [type(e).__name__ for _, e in events] == ["Skipped", "InputError"]
    (tmp_path / "half.json.gz").write_bytes(a + b + b[:-12])
    events = list(events_of_file(tmp_path / "half.json.gz"))
    assert [type(e).__name__ for _, e in events] == ["Skipped", "InputError"]
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 5000)
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * 5000 + b'{"Records":[]}'))
    monkeypatch.setattr(replay_mod, "MAX_FILE_BYTES", 4096)
    [(_, err)] = list(events_of_file(big))  # refused by its size on disk, before reading it
    assert isinstance(err, InputError) and "larger than" in str(err)
    [(_, err)] = list(events_of_file(bomb))
    assert isinstance(err, InputError) and "larger than" in str(err)
    trunc = tmp_path / "trunc.json.gz"
    trunc.write_bytes(gzip.compress(b'{"Records":[]}')[:-12])
    [(_, err)] = list(events_of_file(trunc))
    assert isinstance(err, InputError) and err.code == "BAD_INPUT"
    raw = zlib.compress(b"x")  # zlib, not gzip: not JSON either way
    (tmp_path / "z.json").write_bytes(raw)
    [(_, err)] = list(events_of_file(tmp_path / "z.json"))
    assert isinstance(err, InputError)


def test_replay_counts_are_the_same_with_and_without_the_prefilter(
    tmp_path: Path, make_enforcer: Any
) -> None:
    recs = [r for r in _fixture_records() if isinstance(r, dict)]
    raws = [v for r in recs for v in _variants(r)[:3]]
    raws += ['{"eventSource":"s3.amazonaws.com","eventName":"GetObject"}'] * 30
    random.Random(5).shuffle(raws)
    p = tmp_path / "t.json"
    p.write_bytes(_log_file(raws))
    fast, slow = io.StringIO(), io.StringIO()
    s1 = replay(iter_events([str(p)]), make_enforcer({}), fast, now=1.8e9)
    s2 = replay(iter_events([str(p)], prefilter=False), make_enforcer({}), slow, now=1.8e9)
    assert (s1.events, s1.decided, s1.ignored, s1.errors) == (s2.events, s2.decided, s2.ignored, s2.errors)
    strip = ("decision_id", "timestamp", "metrics", "latency_ms", "timings")

    def stable(t: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in json.loads(x).items() if k not in strip} for x in t.splitlines()]

    assert s1.decided > 20 and stable(fast.getvalue()) == stable(slow.getvalue())


def test_repeated_records_and_repeated_escaped_keys_read_as_the_full_decode() -> None:
    launch = next(r for r in _fixture_records() if isinstance(r, dict) and _verdict(r) == "launch")
    read = {"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventID": "r"}
    lr, rr = _raw(launch), _raw(read)
    blobs = [
        # two Records arrays: the last one counts, in the partial read as in the full decode
        f'{{"Records":[{lr},{lr}],"Records":[{rr},{rr},{rr}]}}'.encode(),
        f'{{"Records":[{rr},{rr},{rr}],"Records":[{rr},{lr}]}}'.encode(),
        f'{{"Records":[5, {lr}],"Records":[{rr},{lr}]}}'.encode(),
        f'{{"Records":[{rr},{lr}],"Records":[7,{lr},{rr}]}}'.encode(),
        # the same key twice, one spelled with an escape: the last one counts
        ("{" + lr[1:-1] + ',"event\\u004eame":"GetObject","eventSourc\\u0065":"s3.amazonaws.com"}').encode(),
        ('{"event\\u004eame":"GetObject",' + lr[1:]).encode(),
    ]
    for blob in blobs:
        records = orjson.loads(blob)["Records"] if b'"Records"' in blob else None
        if records is None:
            blob = _log_file([blob.decode()])
        _check(blob)


def test_inputs_the_two_decoders_judge_differently_never_hide_a_launch(tmp_path: Path) -> None:
    read = '{"eventSource":"s3.amazonaws.com","eventName":"GetObject","n":%s}'
    run = '{"eventSource":"ec2.amazonaws.com","eventName":"RunInstances","eventID":"l"}'
    # nesting deeper than either decoder goes: msgspec raised RecursionError (it ended the run)
    deep = ("[" * 5000) + ("]" * 5000)
    p = tmp_path / "deep.json"
    p.write_bytes(_log_file([read % deep, run]))
    assert split_log_file(p.read_bytes()) is None  # unsure: the old way, where orjson judges the file
    events = list(events_of_file(p))
    assert events and all(isinstance(e, InputError) for _, e in events)  # visible, never skipped
    # what msgspec reads and orjson refuses (a number beyond a double, bytes that are not UTF-8) in a
    # skipped record: the file's launch is still decided, where orjson alone made the whole file an error
    for odd in (b"1e999", b'"\xff\xfe"'):
        blob = _log_file([read % "0", run]).replace(b'"n":0', b'"n":' + odd)
        items = split_log_file(blob)
        assert items is not None and items[0] == Skipped(1) and items[1]["eventName"] == "RunInstances"
    # the same in the launch record itself: an error line, never a skip
    blob = _log_file([run[:-1] + ',"x":1e999}'])
    items = split_log_file(blob)
    assert items is not None and isinstance(items[0], json.JSONDecodeError)
    blob = b'{"Records":[{"eventSource":"ec2.amazonaws.com","eventName":"RunInstances\xff"}]}'
    items = split_log_file(blob)
    assert items is not None and not any(isinstance(x, Skipped) for x in items)


def test_no_shape_registered_after_the_filter_keys_are_taken() -> None:
    # the keys are cached at first use: a shape module imported later would be skipped as "not a launch"
    code = (
        "import importlib, pkgutil, enforcer\n"
        "from enforcer.replay_filter import launch_keys\n"
        "keys = launch_keys()\n"
        "for m in pkgutil.walk_packages(enforcer.__path__, 'enforcer.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception:\n"
        "        pass\n"
        "from enforcer.intake import CLOUDTRAIL_SHAPES\n"
        "from enforcer.intake.cloudtrail_generic import _entries\n"
        "missing = (set(CLOUDTRAIL_SHAPES) | set(_entries())) - keys\n"
        "print(len(keys), sorted(missing))\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    n, missing = out.split(" ", 1)
    assert int(n) >= 80 and missing.strip() == "[]", out
