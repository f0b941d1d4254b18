"""Red-team findings of round 23 (stop 23), each pinned by a test.

Finding 1 (low, open, strict xfail): arithmetic precision. OPA's Go evaluator adds numbers as binary
floats; its wasm target as exact decimals. A sum that lands a hair under a whole number prints
differently in a message that truncates it (``format_int``): ``4900000 + -2.9561272715225193e-197`` is
``4900000`` in Go and ``4899999.999…`` in wasm, so the ``AGGREGATE_COMPUTE`` message reads 4900000 in one
and 4899999 in the other. The same hair can tip a threshold compared at exactly its boundary. The effect
here is the same (deny); the numbers come from the pipeline (chip table TPP, ledger sums), not from an
attacker. Found by round 22's differential fuzzing once it ran unseeded (it is now derandomized, so CI
replays the same examples every run, and this case is pinned here instead).

Later findings (the red-team helper's, after today's changes) are described where their tests are.
"""

from __future__ import annotations

import copy
import gzip
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.loader import PolicyBundle
from enforcer.policy.wasm import WasmEngine
from enforcer.policy.wasm_build import CompiledPolicy
from enforcer.ports import EngineError
from tests.opa_real import POLICIES, ROOT

GOLDEN = ROOT / "tests" / "data" / "policy_golden.jsonl.gz"

_DOC: dict[str, Any] = {
    "account": {
        "account_id": "111122223333",
        "country": "CN",
        "hq_country": "MO",
        "kyc": "verified",
        "parent_hq_country": "SC",
        "reseller": None,
    },
    "attestation": {"status": "not_required"},
    "ledger": {
        "owners": [{"kind": "end_customer", "owner": "o0", "running_tpp": 4900000, "tpp_hours": 0}],
        "source": "ledger",
        "time": "t",
    },
    "request": {
        "account_id": "111122223333",
        "action": "ec2:RunInstances",
        "items": [
            {
                "chip_class": "3A090.b",
                "count": 1,
                "instance_type": "trn2.48xlarge",
                "tpp": 50000,
                "unresolved": False,
            }
        ],
        "region": "ca-central-1",
        "source": "cloudtrail",
        "total_tpp": 50000,
    },
}


@pytest.fixture(scope="module")
def engines(bundle: PolicyBundle, compiled: CompiledPolicy) -> tuple[WasmEngine, EmbeddedEngine]:
    return WasmEngine(bundle, compiled), EmbeddedEngine(bundle)


def test_whole_sums_print_the_same_on_both_engines(engines: tuple[WasmEngine, EmbeddedEngine]) -> None:
    wasm, go = engines
    doc = copy.deepcopy(_DOC)
    assert wasm.evaluate(doc) == go.evaluate(doc)  # the control: whole numbers agree


@pytest.mark.xfail(
    strict=True, reason="finding 1: Go adds binary floats, wasm exact decimals (message digits)"
)
def test_a_sum_a_hair_under_a_whole_number_prints_the_same(
    engines: tuple[WasmEngine, EmbeddedEngine],
) -> None:
    wasm, go = engines
    doc = copy.deepcopy(_DOC)
    doc["request"]["total_tpp"] = -2.9561272715225193e-197
    assert wasm.evaluate(doc) == go.evaluate(doc)


# -- finding 2 (fixed): a host built-in whose failure handler raised aborted the process --------------
# 1ab8534 calls the host built-ins through wasmtime's unchecked C callback. Anything that escaped that
# callback (the engine's ``_fail`` formatting an exception that cannot print itself, a MemoryError, a
# signal's exception while it ran) was printed by ctypes, which then handed wasmtime an unset result:
# a garbage trap pointer, freed -- "double free or corruption (out)", SIGABRT, no audit record. On the
# public path the same exception escaped ``evaluate`` as itself (RuntimeError), not as EngineError. Fix:
# ``_fail`` never raises, and should the failure handler raise anyway the call traps (WasmCallError, Go
# decides). Run in a child process: a regression kills the child, not the test run.
_CHILD = """
import json, pickle, sys
from enforcer.policy import wasm_builtins
from enforcer.policy import wasm as wasm_mod
from enforcer.policy.loader import load_bundle

bundle_dir, compiled_file, docs_file, fast, mode = sys.argv[1:6]
compiled = pickle.loads(open(compiled_file, "rb").read())
docs = json.loads(open(docs_file).read())

class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("cannot print")

def refuse(name, args):
    raise Unprintable()

if mode == "fail_raises":
    def fail(self, exc):
        raise MemoryError("the failure handler fails")
    wasm_mod.WasmEngine._fail = fail
    refuse_exc = ValueError("refused")
    def refuse(name, args):
        raise refuse_exc

eng = wasm_mod.WasmEngine(load_bundle(bundle_dir), compiled, fast_calls=fast == "1")
real = wasm_builtins.call
wasm_builtins.call = refuse
out = []
for doc in docs:
    try:
        out.append(eng.evaluate(doc))
    except BaseException as exc:
        out.append({"escaped": type(exc).__name__})
fallbacks = eng.fallbacks
wasm_builtins.call = real
out.append(eng.evaluate(docs[0]))
print(json.dumps({"decisions": out, "fallbacks": fallbacks, "after": eng.fallbacks}))
"""


@pytest.mark.parametrize("mode", ["unprintable", "fail_raises"])
@pytest.mark.parametrize("fast", ["1", "0"])
def test_a_failing_host_built_in_never_aborts_the_process(
    tmp_path: Path, bundle: PolicyBundle, compiled: CompiledPolicy, mode: str, fast: str
) -> None:
    go = EmbeddedEngine(bundle)
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        plain = [r for r in map(json.loads, fh) if r["case"] == "plain" and "error" not in r["decision"]]
    docs = [r["input"] for r in plain[:12]]
    (tmp_path / "compiled.pkl").write_bytes(pickle.dumps(compiled))
    (tmp_path / "docs.json").write_text(json.dumps(docs))
    args = [str(tmp_path / "compiled.pkl"), str(tmp_path / "docs.json"), fast, mode]
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(POLICIES), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["decisions"][:-1] == [go.evaluate(d) for d in docs]  # each decided by Go
    assert got["fallbacks"] == len(docs)
    assert got["decisions"][-1] == go.evaluate(docs[0]) and got["after"] == len(docs)  # module again


# -- finding 3 (fixed): the built-in memo held up to ~250 MB ------------------------------------------
# c60176f keeps up to 4,096 host built-in results by their argument texts, bounded by count only. An input
# under MAX_INPUT_BYTES can put ~30 KB into one sprintf (its argument and its result are both kept):
# 4,000 distinct 15 KB account ids grew the process by 121 MB (measured), ~250 MB at the size cap, in a
# long-lived warm container of 512 MB. Fix: a call whose texts exceed BUILTIN_MEMO_ENTRY bytes is not kept
# (recorded calls are under 300 bytes, so the memo's hit rate is unchanged).
def test_the_builtin_memo_keeps_no_large_call(
    bundle: PolicyBundle, compiled: CompiledPolicy, reference: EmbeddedEngine
) -> None:
    from enforcer.policy import wasm as wasm_mod

    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        plain = [r for r in map(json.loads, fh) if r["case"] == "plain"]
    base = next(r["input"] for r in plain if "not in the account directory" in json.dumps(r["decision"]))
    eng = WasmEngine(bundle, compiled)
    for i in range(40):
        doc = copy.deepcopy(base)
        doc["request"]["account_id"] = f"{i:04d}" + "x" * 15_000
        assert eng.evaluate(doc) == reference.evaluate(doc)
    held = [sum(map(len, raws)) + len(out) for (_, raws), out in eng._memo.items()]
    assert max(held, default=0) <= wasm_mod.BUILTIN_MEMO_ENTRY
    assert wasm_mod.BUILTIN_MEMO * wasm_mod.BUILTIN_MEMO_ENTRY <= 8 * 2**20
    assert eng.fallbacks == 0
    small = [r["input"] for r in plain if "error" not in r["decision"]][:100]
    for doc in small:
        eng.evaluate(doc)
    assert len(eng._memo) > 10  # the recorded inputs' calls are still kept


# -- finding 4 (low, fixed: enforcer/policy/limits.py): nesting near Python's recursion limit ------------------------
# Both engines encode the input with Python's C JSON encoder, whose depth limit is the recursion limit
# minus the frames already on the stack. The Go evaluator's bindings encode a few frames deeper than the
# wasm engine does, so for a band of ~5 nesting levels (989-993 from a plain script) the wasm engine
# encodes and decides (here: allow) where the Go evaluator fails (an engine error: a deny). Not reachable
# through the pipeline, which builds the input itself from flat fields (refs are flat dicts), only through
# `enforcer policy eval` or a direct caller. The fix would route any input nested deeper than a fixed cap
# (~100) to Go, which costs every evaluation a bracket count (~1.3 us on 800 bytes); left to the team.
# Fixed: every in-process engine refuses an input nested deeper than MAX_INPUT_DEPTH (64) before encoding
# it, checked without recursion, so the answer no longer depends on the caller's stack.
def test_an_input_nested_near_the_recursion_limit_is_decided_as_go_decides(
    bundle: PolicyBundle, compiled: CompiledPolicy, reference: EmbeddedEngine
) -> None:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        plain = [r for r in map(json.loads, fh) if r["case"] == "plain"]
    base = next(r["input"] for r in plain if r["decision"].get("effect") == "allow")
    eng = WasmEngine(bundle, compiled)
    limit = sys.getrecursionlimit()
    differ = []
    for depth in range(limit - 150, limit + 5):
        nest: Any = 0
        for _ in range(depth):
            nest = [nest]
        doc = {**base, "junk": nest}
        try:
            want: Any = reference.evaluate(doc)
        except EngineError:
            want = "error"
        try:
            got: Any = eng.evaluate(doc)
        except EngineError:
            got = "error"
        if got != want:
            differ.append((depth, got if got == "error" else got.get("effect"), want))
    assert not differ


# -- finding 5 (low, fixed in 0219d0b): orjson does not refuse integers over 64 bits ---------------------
# 1ab8534 read the module's result with orjson, "the standard library where orjson refuses (integers over
# 64 bits ...)". orjson 3.13 does not refuse them: it reads them as floats, silently losing digits. The
# decision document holds no numbers, so no answer changed; 0219d0b now reads a result holding a run of 19
# digits with the standard library (finding 6 made that screen cheap). Pinned on every recorded decision.
def test_the_result_reader_agrees_with_json_on_every_recorded_decision() -> None:
    from enforcer.policy.wasm import _loads

    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        decisions = [json.loads(line)["decision"] for line in fh]

    def numbers(v: Any) -> int:
        if isinstance(v, dict):
            return sum(numbers(x) for x in v.values())
        if isinstance(v, list):
            return sum(numbers(x) for x in v)
        return int(isinstance(v, int | float) and not isinstance(v, bool))

    assert sum(numbers(d) for d in decisions) == 0  # the premise of reading results with orjson
    for d in decisions:
        raw = json.dumps([{"result": d}], separators=(",", ":"), ensure_ascii=False).encode()
        assert _loads(raw) == json.loads(raw)


# -- what held: the replay's log-file reader (38bc80e's inline skip test, since folded into _head_skippable) --
# Crafted CloudTrail files -- names and keys written with \u escapes, repeated keys (the last wins), odd
# whitespace, non-object records, detector keys beside a launch, names one character off a launch (case,
# a trailing space or NBSP, a NUL), ids of every type, a padded 70 KB record -- read with the pre-filter
# and without it: the same records in the same places, and every record skipped unread is one normalise
# ignores. (38bc80e..: 0 differences in 10,500 such files; end to end, a 300-file replay wrote the same lines.)
def _escaped(rnd: random.Random, s: str) -> str:
    out = []
    for ch in s:
        r = rnd.random()
        out.append(f"\\u{ord(ch):04x}" if r < 0.15 else json.dumps(ch)[1:-1])
    return '"' + "".join(out) + '"'


_SPACES = ["", " ", "\n", "\t", "\r", "  \n "]
_NOT_LAUNCHES = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("s3.amazonaws.com", "GetObject"),
    ("sts.amazonaws.com", "AssumeRole"),
]
_DETECTORS = ["Records", "detail-type", "detail", "source", "launch", "account_id", "requestData", "records"]


def _crafted_record(rnd: random.Random, launches: list[tuple[str, str]]) -> str:
    r = rnd.random()
    if r < 0.4:
        source, name = rnd.choice(_NOT_LAUNCHES)
    elif r < 0.7:
        source, name = rnd.choice(launches)
    else:
        source, name = rnd.choice(launches)
        name = rnd.choice(
            [name.lower(), name + " ", name + "\u00a0", name + "\x00", name[:-1], "", "x" * 129]
        )
    text = lambda v: _escaped(rnd, v) if isinstance(v, str) else json.dumps(v)  # noqa: E731
    pairs = [(_escaped(rnd, "eventSource"), text(source)), (_escaped(rnd, "eventName"), text(name))]
    if rnd.random() < 0.3:
        eid = rnd.choice(["abc-1", "", None, 5, "x" * 128, "x" * 129, "a\nb", ["x"], True])
        pairs.append((_escaped(rnd, "eventID"), text(eid)))
    if rnd.random() < 0.3:  # a repeated key, anywhere
        key = rnd.choice(["eventName", "eventSource", "eventID"])
        value = rnd.choice(["RunInstances", "DescribeInstances", "ec2.amazonaws.com", None, 3])
        pairs.insert(rnd.randrange(len(pairs) + 1), (_escaped(rnd, key), text(value)))
    if rnd.random() < 0.15:
        pairs.append((_escaped(rnd, rnd.choice(_DETECTORS)), rnd.choice(['"x"', "null", "{}", "[]"])))
    if rnd.random() < 0.3:
        pairs.append(('"errorCode"', text(rnd.choice(["", None, "AccessDenied"]))))
    pairs += [
        ('"awsRegion"', '"us-east-1"'),
        ('"recipientAccountId"', '"111122223333"'),
        ('"userIdentity"', '{"type":"IAMUser","accountId":"111122223333","arn":"arn:aws:iam::1:user/u"}'),
        ('"eventTime"', '"2026-12-01T00:00:00Z"'),
    ]
    if rnd.random() < 0.6:
        pairs.append(('"requestParameters"', '{"instanceType":"p5.48xlarge","minCount":1,"maxCount":2}'))
    if rnd.random() < 0.03:
        pairs.append(('"pad"', '"' + "y" * 70_000 + '"'))
    if rnd.random() < 0.3:
        rnd.shuffle(pairs)
    if rnd.random() < 0.04:
        return rnd.choice(["null", "1", '"RunInstances"', "[]", '[{"eventName":"RunInstances"}]'])
    sp = lambda: rnd.choice(_SPACES)  # noqa: E731
    return "{" + sp() + ("," + sp()).join(f"{k}{sp()}:{sp()}{v}" for k, v in pairs) + sp() + "}"


def _outcome(event: Any) -> tuple[str, ...]:
    from enforcer.intake import normalise
    from enforcer.model import Ignored, InputError

    if isinstance(event, Exception):
        return ("unreadable", type(event).__name__)
    try:
        got = normalise(event)
    except InputError as exc:
        return ("input_error", str(exc))
    return ("ignored",) if isinstance(got, Ignored) else ("launch", got.action, str(len(got.items)))


def test_the_log_file_reader_skips_only_what_normalise_ignores() -> None:
    from enforcer.replay_filter import launch_keys

    rnd = random.Random(2301)
    launches = sorted(launch_keys())
    skipped = 0
    for _ in range(400):
        records = [_crafted_record(rnd, launches) for _ in range(rnd.randint(1, 10))]
        body = '{"Records":[' + ",".join(records) + "]" + rnd.choice(["", ',"Records":[]'])
        blob = (body + "}").encode()
        skipped += read_alike(blob)
    assert skipped > 300  # the pre-filter did skip


def read_alike(blob: bytes) -> int:
    """Read ``blob`` with the pre-filter and without it: the same records in the same places, and every
    record skipped unread one normalise ignores. Returns how many were skipped."""
    from enforcer.replay import _events_from_bytes
    from enforcer.replay_filter import Skipped

    skipped = 0
    fast: list[tuple[str | None, tuple[str, ...]]] = []
    for label, event in _events_from_bytes(blob, "f", True):
        if type(event) is Skipped:
            fast += [(None, ("skipped",))] * event.n
            skipped += event.n
        else:
            fast.append((label, _outcome(event)))
    slow = [(label, _outcome(event)) for label, event in _events_from_bytes(blob, "f", False)]
    assert len(fast) == len(slow), blob[:300]
    for (flabel, fout), (slabel, sout) in zip(fast, slow, strict=True):
        if flabel is None:
            assert sout[0] == "ignored", (sout, blob[:300])  # skipped unread: normalise ignores it
        else:
            assert (flabel, fout) == (slabel, sout), blob[:300]
    return skipped


# -- finding 6 (perf, fixed): 0219d0b's digit-run screen cost more than the read it guards -----------------
# 0219d0b sends a result holding a run of 19 digits to json.loads (orjson reads an integer over 64 bits
# as a float). Its ``re`` search for ``[0-9]{19}`` took ~7-8 us on a 500-byte result, more than json.loads
# itself (~4-6 us) and 5x orjson (~1.3 us), on every evaluation. The same test as 19 zeros in the text with
# every digit made a zero (bytes.translate, then ``in``) takes ~1 us. Pinned: the same predicate.
def test_the_digit_run_screen_is_the_regex_it_replaced() -> None:
    import re

    from enforcer.policy.wasm import _ALL_DIGITS_ZERO, _LONG_DIGITS, _loads

    regex = re.compile(rb"[0-9]{19}")
    rnd = random.Random(2306)
    for _ in range(20_000):
        text = bytes(rnd.choice(b'0123456789a",:-.e[]{} ') for _ in range(rnd.randint(0, 60)))
        assert (regex.search(text) is not None) == (_LONG_DIGITS in text.translate(_ALL_DIGITS_ZERO))
    for digits in (18, 19, 20, 40):
        for sign in ("", "-"):
            n = sign + "9" * digits
            raw = f'[{{"result":{{"n":{n},"s":"{n}","f":{n}.5}}}}]'.encode()
            assert repr(_loads(raw)) == repr(json.loads(raw))


# -- what held: the guard's warm deny after the heap freeze (effbd96, 065121f) -------------------------
# The first invocation fails after deciding (the audit write raises: nothing may act on an unlogged deny)
# and freezes the heap on its way out; EventBridge's retry of the same event, then a second launch, are
# warm denies: each stops, is recorded once and alerts once.
def test_a_deny_after_a_failed_first_invocation_still_stops_records_and_alerts(engine: Any) -> None:
    import functools
    import gc

    from enforcer.ports import AuditWriteError
    from lambdas import _common, guard
    from tests.lambda_env import MEMBER, LambdaContext, run_instances_event, world_factory

    gc.unfreeze()
    _common._heap_frozen = False
    worlds = world_factory(engine)
    try:
        w = next(worlds)()
        audit = w.rt.guard.enforcer.audit
        real = audit.write
        failures = [AuditWriteError("audit table throttled")] * 2  # with its side ops, then alone

        @functools.wraps(real)
        def flaky(*args: Any, **kw: Any) -> Any:
            if failures:
                raise failures.pop()
            return real(*args, **kw)

        audit.write = flaky
        first, second = w.launch(account=MEMBER), w.launch(account=MEMBER)
        event = run_instances_event(first, MEMBER, instanceType="p5.48xlarge")
        with pytest.raises(AuditWriteError):
            guard.handler(event, LambdaContext())
        iid = first["Instances"][0]["InstanceId"]
        assert w.state(iid, MEMBER) == "running" and w.audit_count() == 0
        assert _common._heap_frozen and gc.get_freeze_count() > 0  # frozen by the failed invocation
        for resp, ev in ((first, event), (second, None)):
            ev = ev or run_instances_event(resp, MEMBER, instanceType="p5.48xlarge")
            result = guard.handler(json.loads(json.dumps(ev)), LambdaContext())
            (r,) = result["results"]
            assert r["effect"] == "deny" and r["remediation"]["status"] == "stopped", r
            assert w.state(resp["Instances"][0]["InstanceId"], MEMBER) == "stopped"
        assert w.audit_count() == 2 and len(w.notifications()) == 2
    finally:
        worlds.close()
        gc.unfreeze()
        _common._heap_frozen = False


def test_the_depth_limit_is_the_same_for_both_engines_and_every_caller(
    bundle: PolicyBundle, compiled: CompiledPolicy, reference: EmbeddedEngine
) -> None:
    from enforcer.policy.limits import MAX_INPUT_DEPTH, nested_deeper

    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        base = next(r["input"] for r in map(json.loads, fh) if r["case"] == "plain")
    eng = WasmEngine(bundle, compiled)

    def nest(levels: int) -> Any:
        v: Any = 0
        for _ in range(levels):
            v = [v]
        return v

    ok = {**base, "junk": nest(MAX_INPUT_DEPTH - 1)}  # the document is level 1
    deep = {**base, "junk": nest(MAX_INPUT_DEPTH)}
    assert not nested_deeper(ok) and nested_deeper(deep) and nested_deeper(nest(100_000))
    assert eng.evaluate(ok) == reference.evaluate(ok)
    for doc in (deep, {**base, "junk": nest(50_000)}):  # far past the recursion limit: no RecursionError
        for engine in (eng, reference):
            with pytest.raises(EngineError, match=f"nested deeper than {MAX_INPUT_DEPTH} levels"):
                engine.evaluate(doc)
