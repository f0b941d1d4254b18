"""Differential: the wasm host built-ins (enforcer/policy/wasm_builtins.py) against OPA's Go evaluator.

A tiny policy calls ``sprintf``, ``time.parse_rfc3339_ns`` and ``time.format`` in the embedded Go engine
(``json.unmarshal`` gives the arguments exactly as written, number texts included, as input parsing and
``opa_json_dump`` both keep them). For every case: where Go answers, ``call`` answers the same, or raises
for a case the module docstring lists as unsupported; where Go fails, ``call`` raises.
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from enforcer.policy import wasm_builtins as wb
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.loader import load_bundle

POLICY = """package t

import rego.v1

s := sprintf(input.f, json.unmarshal(input.a))

si := sprintf(input.f, input.a)

t := time.parse_rfc3339_ns(input.s)

f := time.format(json.unmarshal(input.x))
"""

NUMBERS = [
    "0", "-0", "5", "-5", "5.0", "5.00", "-5.0", "0.0", "-0.0", "0.000", "1.50", "1.5", "-1.5", "100.0",
    "1e3", "1E3", "1e+3", "1e-5", "1e-05", "2e0", "0e0", "1.0e2", "1.0E2", "1.5e3", "0.5e1", "10.0e-1",
    "123.456e1", "2.5e-3", "-0.0e5", "1e21", "1.0e21", "1000000.0", "1.0e6", "1.0e-5", "0.0001",
    "0.00001", "126649.6", "1013196.8", "123456.0e0", "1234567.5", "999999.9", "9.999999e5",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "100000000000000000000", "-12345678901234567890123", "9223372036854775807.0", "92233720368547758.0",
    "922337203685477580.0", "12345678901234567.0", "-1234567890123456.0", "1.000000000000000000000",
    "1.0000000000000001", "1e400", "1.0e400", "1.5e400", "1.8e308", "1.7976931348623157e308",
    "4.9e-324", "1.0e-400", "1e-400", "-1.0e-400", "0.1", "0.3", "2.675", "1.1e-4", "3.14159",
    "123456789012345678901234567890.5", "65", "10", "1114111", "1114112", "55296", "-1", "39", "92",
    "8232", "160", "127", "57344", "917505",
]  # fmt: skip
STRINGS = [
    "", "abc", "caf\u00e9", "\u4e2d\u6587", "quote\"d", "back\\slash", "it's", "tab\tnew\nline", "\x00\x01\x1f",
    "\x7f", "\u0085", "\u00a0", "\u2028", "\u200b", "\ufeff", "\U0001f600", "\ue000", "e\u0301", "%v", "100%",
    "\u00ad", "\U000e0041", " lead", "\U0010fffd", "\u0378",
]  # fmt: skip
NESTED = [
    None, True, False, [], {}, ["a", 1], [1.50, "x", None], {"k": 1}, {"b": 1, "a": [True, {"z": None}]},
    {"\u00e9": 1, "z": 2, "A": 3, "\U0001f600": 4, "\uff21": 5}, [[[]]], {"q\"k": "v\n"}, [1e3, 5.0],
]  # fmt: skip
VERBS = ["%v", "%s", "%d", "%q"]
FORMATS = [
    "%v %v", "%v", "", "plain", "%%", "%%%v", "x%", "%", "a%vb%sc%dd%qe", "%v%v%v", "%x", "%5d", "%-v",
    "%[1]v", "%!", "%T", "%.2f", "%\u00e9", "%s\u00e9%", "\u00e9%v",
]  # fmt: skip

ROOT_STAMPS = [
    "2026-01-02T03:04:05Z", "2026-01-02", "2026-01-02 03:04:05Z", "2026-01-02t03:04:05Z",
    "2026-01-02T03:04:05z", "2026-01-02T03:04:05+24:00", "2026-01-02T03:04:05+23:60", "2026-01-02T03:04:05+25:00",
    "2026-01-02T03:04:05+23:61", "2026-01-02T03:04:05-24:60", "2026-01-02T03:04:60Z", "2026-01-02T24:00:00Z",
    "2026-01-02T3:04:05Z", "2026-01-02T03:4:05Z", "2026-01-02T03:04:5Z", "2026-01-02T03:04:05.123456789Z",
    "2026-01-02T03:04:05.1234567891Z", "2026-01-02T03:04:05,5Z", "2026-01-02T03:04:05.Z",
    "2026-01-02T03:04:05,Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1677-09-21T00:12:43.145224192Z",
    "1677-09-21T00:12:43.145224191Z", "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z",
    "2262-04-12T00:47:16.854775807+01:00", "1677-09-20T23:12:43.145224192-01:00", "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-01-02T03:04:05+0100", "2026-01-02T03:04:05-00:00", "2026-01-02T03:04:05Z ", " 2026-01-02T03:04:05Z",
    "2026-01-02T03:04:05.5,5Z", "2026-1-02T03:04:05Z", "2026-01-2T03:04:05Z", "2026-01-02T03:04:05+01:00:00",
    "2026-01-02T03:04:05.123456789123456789Z", "2026-01-02T03:04:05+1:00", "2026-01-02T03:04:05+ 1:00",
    "2026-00-02T03:04:05Z", "2026-13-02T03:04:05Z", "2026-01-00T03:04:05Z", "2026-01-32T03:04:05Z",
    "2026-01-02T03:04:05.-1Z", "+026-01-02T03:04:05Z", "-026-01-02T03:04:05Z", "2026-01-02T03:04:05Z07:00",
    "2026-01-02T03:04:05.5+01:00", "2026-01-02T03:04:05,999999999-23:59", "2026-01-02T03:04:05+a1:00",
    "2026-01-02T03:04:05", "2026-01-02T03:04Z", "2026-01-02T03:04:05.0000000000Z", "2026-01-02T03:04:05UTC",
    "2026-01-02T03:04:05+01", "2026-01-02T03:04:05\u00e9", "\u00e9026-01-02T03:04:05Z", "", "Z",
    "2026-01-02T\u0663:04:05Z", "2026-01-02T03:04:05\uff0b01:00", "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999999Z", "2026-01-02T03:04:05-00:01",
]  # fmt: skip


@pytest.fixture(scope="module")
def go(tmp_path_factory: Any) -> Any:
    root = tmp_path_factory.mktemp("wasm_builtins")
    (root / "t.rego").write_text(POLICY)
    engine = EmbeddedEngine(load_bundle(Path(root)))

    def run(rule: str, doc: dict[str, Any]) -> tuple[bool, Any]:
        try:
            return True, engine.eval_path("t." + rule, doc)
        except Exception as exc:
            assert "eval_builtin_error" in str(exc) or "eval_type_error" in str(exc), exc
            return False, str(exc)

    return run


def _ours(name: str, args: list[str]) -> tuple[bool, Any]:
    try:
        return True, json.loads(wb.call(name, args))
    except wb.BuiltinError as exc:
        return False, str(exc)


def _unassigned(s: str) -> bool:
    return any(unicodedata.category(c) == "Cn" for c in s)


def _sprintf_supported(fmt: str, arr_json: str) -> bool:
    i = 0
    while (i := fmt.find("%", i)) >= 0:
        if i + 1 < len(fmt) and fmt[i + 1] not in "svdq%":
            return False
        i += 2
    return not _unassigned(fmt + json.dumps(json.loads(arr_json), ensure_ascii=False))


def _sprintf_cases() -> list[tuple[str, str]]:
    rnd = random.Random(22)
    cases = [(v, f"[{n}]") for n in NUMBERS for v in VERBS]
    cases += [(v, json.dumps([s])) for s in STRINGS for v in VERBS]
    cases += [(v, json.dumps([x])) for x in NESTED for v in VERBS]
    cases += [(v, "[[" + ", ".join(NUMBERS[:40]) + "]]") for v in VERBS]
    args = ["[]", "[1]", '[1, "x"]', '["a", 2.5, null, 100000000000000000000, 1e3]', "[65, 5.0, 1.5e400]"]
    cases += [(f, a) for f in FORMATS for a in args]
    for _ in range(60):  # random floats through Python's repr and random decimal texts
        f = rnd.choice([rnd.uniform(-1e7, 1e7), rnd.expovariate(1e-3), 10 ** rnd.uniform(-8, 25)])
        txt = rnd.choice([repr(f), f"{f:.{rnd.randint(1, 18)}f}", f"{f:.{rnd.randint(0, 12)}e}"])
        cases.append((rnd.choice(VERBS), f"[{txt}]"))
    for _ in range(40):
        n = rnd.choice([rnd.randint(-(10**25), 10**25), rnd.randint(-(2**63) - 5, 2**63 + 5)])
        cases.append((rnd.choice(VERBS), f"[{n}, {n}.{'0' * rnd.randint(0, 3)}]"))
    return cases


SPRINTF = _sprintf_cases()


def test_corpus_is_large() -> None:
    assert len(SPRINTF) > 400 and len(ROOT_STAMPS) > 60


@pytest.mark.parametrize("fmt,arr", SPRINTF)
def test_sprintf_matches_go(go: Any, fmt: str, arr: str) -> None:
    ok, want = go("s", {"f": fmt, "a": arr})
    got_ok, got = _ours("sprintf", [json.dumps(fmt), arr])
    if got_ok:
        assert ok and got == want, (fmt, arr, got, want)
    else:
        assert not ok or not _sprintf_supported(fmt, arr), (fmt, arr, got, want)


def test_sprintf_of_input_values_matches_json_unmarshal(go: Any) -> None:
    """Input parsing keeps number texts as json.unmarshal does (Python writes 5.0, 1e+21, 1e-05)."""
    for arr in ([5.0], [1e21], [1e-05], [0.0001], [1000000.0], [126649.6], [10**20], [-0.0], ["x", None]):
        for v in VERBS:
            assert go("si", {"f": v, "a": arr}) == go("s", {"f": v, "a": json.dumps(arr)})


def _stamps() -> list[str]:
    rnd = random.Random(2026)
    out = list(ROOT_STAMPS)
    for _ in range(300):
        y = rnd.choice([rnd.randint(1600, 2300), rnd.randint(0, 9999), 1677, 2262, 1970])
        s = f"{y:04d}-{rnd.randint(0, 13):02d}-{rnd.randint(0, 32):02d}T{rnd.randint(0, 24):02d}"
        s += f":{rnd.randint(0, 60):02d}:{rnd.randint(0, 61):02d}"
        if rnd.random() < 0.5:
            s += rnd.choice(".,") + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 12)))
        s += rnd.choice(["Z", f"{rnd.choice('+-')}{rnd.randint(0, 25):02d}:{rnd.randint(0, 61):02d}"])
        if rnd.random() < 0.2:  # one character dropped, doubled or changed
            i = rnd.randrange(len(s))
            s = rnd.choice(
                [s[:i] + s[i + 1 :], s[:i] + s[i] + s[i:], s[:i] + rnd.choice("0:T-.+ z") + s[i + 1 :]]
            )
        out.append(s)
    return out


@pytest.mark.parametrize("stamp", _stamps())
def test_parse_rfc3339_ns_matches_go(go: Any, stamp: str) -> None:
    ok, want = go("t", {"s": stamp})
    got_ok, got = _ours("time.parse_rfc3339_ns", [json.dumps(stamp)])
    assert (got_ok, got if got_ok else None) == (ok, want if ok else None), (stamp, got, want)


def test_parse_rfc3339_ns_rejects_non_strings() -> None:
    for arg in ["1", "null", '["2026-01-02T03:04:05Z"]']:
        with pytest.raises(wb.BuiltinError):
            wb.call("time.parse_rfc3339_ns", [arg])


def _format_cases() -> list[str]:
    rnd = random.Random(7)
    ns = ["0", "-1", "1", "1767323045123456789", "1767323045000000000", "1767323045100000000",
          "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
          "1767323045000000000.0", "1767323045000000000.000", "-1.0", "1.5", "1e3", "1.0e9",
          "100000000000000000000"]  # fmt: skip
    ns += [str(rnd.randint(-(2**63), 2**63 - 1)) for _ in range(40)]
    ns += [str(rnd.randint(-(10**18), 10**18) // 10**9 * 10**9) for _ in range(10)]
    out = list(ns)
    for n in ns:
        out += [f"[{n}]", f'[{n}, "UTC"]', f'[{n}, ""]', f'[{n}, "UTC", "2006-01-02"]', f'[{n}, "", ""]']
        out += [f'[{n}, "UTC", "RFC3339"]', f'[{n}, "UTC", "RFC3339Nano"]']
    n = "1767323045123456789"
    out += [
        f'[{n}, "UTC", "2006-01-02T15:04:05Z07:00"]',
        f'[{n}, "UTC", "2006-01-02T15:04:05.999999999Z07:00"]',
    ]
    out += [f'[{n}, "Europe/Paris"]', f'[{n}, "Local"]', f'[{n}, "Nowhere/City"]', f'[{n}, "UTC", "Jan 2"]']
    out += [f'[{n}, "UTC", "2006-01-02", "extra"]', f'[{n}, "UTC", "2006-01-02", 5]', f"[{n}, 5]", "[]"]
    out += [f'[{n}, "UTC", 5]', '["1"]', '"1"', "null", f'[{n}, "UTC", "RFC1123"]', f'[{n}, "utc"]']
    return out


@pytest.mark.parametrize("arg", _format_cases())
def test_time_format_matches_go(go: Any, arg: str) -> None:
    ok, want = go("f", {"x": arg})
    got_ok, got = _ours("time.format", [arg])
    if got_ok:
        assert ok and got == want, (arg, got, want)
    else:
        supported = not any(w in arg for w in ("e", "Local", "Paris", "Jan", "RFC1123", "extra"))
        assert not ok or not supported, (arg, got, want)


def test_unknown_and_malformed_calls_raise() -> None:
    for name, args in [("concat", ['","', '["a"]']), ("sprintf", ['"%v"']), ("sprintf", ["NaN", "[]"]),
                       ("sprintf", ['"%v"', "{}"]), ("sprintf", ["1", "[]"]), ("sprintf", ['"%v"', "[1"]),
                       ("sprintf", ['"%v"', '["\\ud800"]']), ("sprintf", ['"%v"', "[Infinity]"])]:  # fmt: skip
        with pytest.raises(wb.BuiltinError):
            wb.call(name, args)
    assert {"sprintf", "time.parse_rfc3339_ns", "time.format"} == wb.NAMES
