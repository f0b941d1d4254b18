"""Engine ``wasm``: the policy compiled by OPA to WebAssembly decides exactly as OPA's Go evaluator.

The reference is the embedded engine and the 3,000 decisions it recorded (tests/data/policy_golden.jsonl.gz).
Whatever the module cannot answer cleanly is decided by the Go evaluator; these tests cause each such case
for real (a built-in the host refuses, a memory cap, an input that is not JSON) and check the answer is the
Go evaluator's. The compiled policy is bound to the Rego it came from: an edited module is never decided
by a stale module.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from enforcer.policy import wasm as wasm_mod
from enforcer.policy import wasm_call
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.factory import make_engine
from enforcer.policy.loader import PolicyBundle, load_bundle
from enforcer.policy.wasm import WasmEngine
from enforcer.policy.wasm_build import (
    CompiledPolicy,
    WasmUnavailable,
    find_compiled,
    host_target,
    write_artifact,
)
from enforcer.policy.wasm_call import fast_path_available, raw_c
from enforcer.ports import EngineError
from tests.opa_real import POLICIES, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import policy_golden


@pytest.fixture(scope="module")
def golden() -> list[dict[str, Any]]:
    return policy_golden.recorded()


def test_every_golden_input_is_decided_as_recorded(golden: list[dict[str, Any]], opa: Path) -> None:
    """3,000 inputs reaching every reason and effect: the same decision documents, reasons in order."""
    engines = policy_golden.engines(POLICIES, "wasm")
    assert all(isinstance(e, WasmEngine) for e in engines.values())
    diffs = []
    for i, rec in enumerate(golden):
        try:
            got: Any = engines[rec["case"]].evaluate(rec["input"])
        except EngineError as exc:
            got = {"error": str(exc)}
        if policy_golden.normalised(got) != policy_golden.normalised(rec["decision"]):
            diffs.append(f"case {i}: {json.dumps(rec['decision'])[:300]}\n  wasm: {json.dumps(got)[:300]}")
    assert not diffs, f"{len(diffs)} of {len(golden)} differ; first:\n" + "\n".join(diffs[:3])
    errors = sum("error" in rec["decision"] for rec in golden)
    fallbacks = sum(e.fallbacks for e in engines.values())
    # the module answered everything but the Go evaluator's own errors (which it re-raises) and a few
    # inputs whose built-in arguments the host refuses to guess at
    assert fallbacks <= errors + len(golden) // 100, (fallbacks, errors)


def test_the_fast_and_the_public_call_paths_decide_alike(
    bundle: PolicyBundle,
    compiled: CompiledPolicy,
    golden: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three ways into the module: untyped C handles (the default), wasmtime-py's typed C functions (where
    the library hides its handle), and its public calls: the same answers."""
    assert fast_path_available(), "the pinned wasmtime lost wasmtime_func_call_unchecked"
    assert raw_c("wasmtime_func_call_unchecked") is not None, "no raw handle: the slower typed call runs"
    fast = WasmEngine(bundle, compiled)
    public = WasmEngine(bundle, compiled, fast_calls=False)
    monkeypatch.setattr(wasm_call, "raw_c", lambda *a, **k: None)
    typed = WasmEngine(bundle, compiled)
    plain = [r["input"] for r in golden if r["case"] == "plain" and "error" not in r["decision"]][:150]
    want = [public.evaluate(d) for d in plain]
    assert [fast.evaluate(d) for d in plain] == want
    assert [typed.evaluate(d) for d in plain] == want
    assert fast.fallbacks == public.fallbacks == typed.fallbacks == 0


def _one_input(golden: list[dict[str, Any]], effect: str) -> dict[str, Any]:
    return next(r["input"] for r in golden if r["case"] == "plain" and r["decision"].get("effect") == effect)


def test_a_builtin_argument_the_host_refuses_is_decided_by_go(
    bundle: PolicyBundle, compiled: CompiledPolicy, reference: EmbeddedEngine, golden: list[dict[str, Any]]
) -> None:
    """``now`` that is not RFC 3339: the host's time.parse_rfc3339_ns refuses, Go raises, the deny stands."""
    eng = WasmEngine(bundle, compiled)
    doc = {**_one_input(golden, "deny"), "now": "01/12/2026 10:00"}
    with pytest.raises(EngineError) as want:
        reference.evaluate(doc)
    with pytest.raises(EngineError) as got:
        eng.evaluate(doc)
    assert str(got.value) == str(want.value)
    assert eng.fallbacks == 1
    # and the next evaluation is the module's again
    ok = _one_input(golden, "audit")
    assert eng.evaluate(ok) == reference.evaluate(ok) and eng.fallbacks == 1


def test_builtin_results_are_memoised_by_argument_text_and_bounded(
    bundle: PolicyBundle,
    compiled: CompiledPolicy,
    reference: EmbeddedEngine,
    golden: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A repeated built-in call is answered from the memo, the same answer; a refusal is never kept;
    the memo starts afresh at its bound."""
    monkeypatch.setattr(wasm_mod, "BUILTIN_MEMO", 8)
    eng = WasmEngine(bundle, compiled)
    docs = [r["input"] for r in golden if r["case"] == "plain" and "error" not in r["decision"]][:200]
    first = [eng.evaluate(d) for d in docs]
    assert eng._memo and len(eng._memo) <= 8
    assert [eng.evaluate(d) for d in docs] == first == [reference.evaluate(d) for d in docs]
    bad = {**_one_input(golden, "deny"), "now": "01/12/2026 10:00"}
    for n in (1, 2):  # refused twice: decided by Go both times, nothing memoised for it
        with pytest.raises(EngineError):
            eng.evaluate(bad)
        assert eng.fallbacks == n
    assert not any(b'"01/12/2026 10:00"' in raws for _, raws in eng._memo)


def test_an_evaluation_past_the_memory_cap_is_decided_by_go(
    bundle: PolicyBundle,
    compiled: CompiledPolicy,
    reference: EmbeddedEngine,
    golden: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    eng0 = WasmEngine(bundle, compiled)
    pages = eng0._memory.size(eng0._store)
    monkeypatch.setattr(wasm_mod, "MAX_PAGES", pages)  # no room to grow: the input or the heap overflows
    eng = WasmEngine(bundle, compiled)
    doc = _one_input(golden, "deny")
    doc = {**doc, "request": {**doc["request"], "principal": "x" * (wasm_mod.MAX_INPUT_BYTES // 2)}}
    assert eng.evaluate(doc) == reference.evaluate(doc)
    assert eng.fallbacks == 1


def test_an_input_that_is_not_json_is_the_go_evaluators_error(
    bundle: PolicyBundle, compiled: CompiledPolicy, reference: EmbeddedEngine
) -> None:
    eng = WasmEngine(bundle, compiled)
    for doc in ({"request": {"total_tpp": math.nan}}, {"request": {"total_tpp": math.inf}}):
        with pytest.raises(EngineError) as want:
            reference.evaluate(doc)
        with pytest.raises(EngineError) as got:
            eng.evaluate(doc)
        assert str(got.value) == str(want.value)
    with pytest.raises(EngineError):
        eng.evaluate({"request": {"items": {1, 2}}})


def test_an_input_the_modules_parser_rejects_is_never_decided_as_no_input(
    bundle: PolicyBundle,
    compiled: CompiledPolicy,
    reference: EmbeddedEngine,
    golden: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """opa_eval reads an input it cannot parse as *no* input, which this policy allows: the engine
    parses first and hands such an input to Go. Caused for real: text the module's parser rejects."""
    eng = WasmEngine(bundle, compiled)
    doc = _one_input(golden, "deny")
    real = wasm_mod._ENCODER

    def truncated(obj: Any) -> str:
        return real.encode(obj)[:-1]  # unbalanced: the module's parser refuses it

    monkeypatch.setattr(wasm_mod, "_ENCODER", SimpleNamespace(encode=truncated))
    assert eng.evaluate(doc)["effect"] == "deny" == reference.evaluate(doc)["effect"]
    assert eng.fallbacks == 1


def test_the_packaged_artifact_is_used_and_bound_to_its_modules(
    tmp_path: Path,
    bundle: PolicyBundle,
    opa: Path,
    monkeypatch: pytest.MonkeyPatch,
    golden: list[dict[str, Any]],
) -> None:
    art = write_artifact(bundle, tmp_path / "policy-wasm", opa)
    monkeypatch.setenv("ENFORCER_POLICY_WASM", str(art))
    monkeypatch.setenv("ENFORCER_OPA_BIN", str(tmp_path / "no-opa"))
    found = find_compiled(bundle, host_target())
    assert found.source.startswith("artifact") and found.cwasm is not None
    doc = _one_input(golden, "deny")
    assert WasmEngine(bundle).evaluate(doc) == EmbeddedEngine(bundle).evaluate(doc)

    # a module edited after packaging: the artifact no longer applies, and with no OPA to rebuild it the
    # factory's wasm engine is the embedded one, deciding with the edited text
    pol = tmp_path / "policies"
    shutil.copytree(POLICIES, pol, ignore=shutil.ignore_patterns("*_test.rego"))
    launch = pol / "gpu" / "launch" / "launch.rego"
    launch.write_text(launch.read_text().replace("is not in the account directory", "is unknown here"))
    edited = load_bundle(pol)
    with pytest.raises(WasmUnavailable, match="built from other modules"):
        find_compiled(edited, host_target())
    eng = make_engine("wasm", pol)
    assert eng.name == "embedded"
    unknown = next(
        r["input"]
        for r in golden
        if r["case"] == "plain" and "is not in the account directory" in json.dumps(r["decision"])
    )
    assert "is unknown here" in json.dumps(eng.evaluate(unknown))


def test_a_tampered_artifact_is_not_run(
    tmp_path: Path,
    bundle: PolicyBundle,
    opa: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    golden: list[dict[str, Any]],
) -> None:
    art = write_artifact(bundle, tmp_path / "policy-wasm", opa)
    monkeypatch.setenv("ENFORCER_POLICY_WASM", str(art))
    monkeypatch.setenv("ENFORCER_OPA_BIN", str(tmp_path / "no-opa"))
    cwasm = next(art.glob("*.cwasm"))
    raw = bytearray(cwasm.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    cwasm.write_bytes(bytes(raw))
    doc = _one_input(golden, "deny")
    with caplog.at_level(logging.WARNING, logger="enforcer.policy.wasm"):
        eng = WasmEngine(bundle)  # compiles policy.wasm instead of loading the altered native code
    assert "does not match its manifest" in caplog.text
    assert eng.evaluate(doc) == EmbeddedEngine(bundle).evaluate(doc)
    wasm = art / "policy.wasm"
    wasm.write_bytes(wasm.read_bytes() + b"\0")
    with pytest.raises(WasmUnavailable):
        find_compiled(bundle, host_target())


def test_the_factory_builds_the_wasm_engine(opa: Path) -> None:
    eng = make_engine("wasm", POLICIES)
    assert isinstance(eng, WasmEngine) and eng.name == "wasm"
    assert eng.revision == load_bundle(POLICIES).revision


def test_the_template_deploys_the_engine_the_bench_measures_as_deployed() -> None:
    from enforcer.policy.factory import DEPLOYED_ENGINE

    template = (ROOT / "infra" / "template.yaml").read_text()
    assert f"ENFORCER_ENGINE: {DEPLOYED_ENGINE}\n" in template
    assert "ENFORCER_POLICY_WASM: /var/task/policy-wasm\n" in template


@pytest.mark.parametrize(
    "text",
    [
        b'[{"result":{"n":18446744073709551616}}]',  # over 64 bits: orjson would read a float
        b'[{"result":{"n":-99999999999999999999999,"m":1.5}}]',
        b'[{"result":{"s":"\\ud800"}}]',  # a lone surrogate: orjson refuses
        b'[{"result":{"effect":"deny","reasons":[]}}]',
    ],
)
def test_the_result_is_read_exactly_as_json_loads_reads_it(text: bytes) -> None:
    got, want = wasm_mod._loads(text), json.loads(text)
    assert got == want and repr(got) == repr(want)
