"""Parity that can fail: the embedded engine against a REAL OPA server (``opa run --server``, built by
``make tools``), compared field by field.

Compared: every Rego test's verdict (run by each engine and by ``opa test`` itself), every input document
the Rego tests decide on (captured from ``opa test`` with a probe rule), every fixture event in
tests/events/ under several account profiles, and 1,200 replayed synthetic CloudTrail launches
(scripts/synth_cloudtrail.py records, each with its own account origin, attestation and decision time).
For each case the whole decision document each engine returns is compared (effect, every reason's code,
message and severity, and any other field), then the pipeline's Decision built from it. A difference
fails with a unified diff. The last test loads a slightly modified policy into a second real server and
shows the same comparison reports the difference (the check is not vacuous).
"""

from __future__ import annotations

import copy
import difflib
import json
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.accounts import StaticAccountDirectory
from enforcer.model import AccountOrigin, AttestationResult, Decision, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.opa_rest import OpaRestEngine
from enforcer.policy.testing import run_tests
from tests.opa_real import POLICIES, ROOT, RealOpa, require_opa
from tests.test_engine_parity import ACCOUNTS, ATTESTATIONS, RESELLER, FixedAttestation, _event_requests

sys.path.insert(0, str(ROOT / "scripts"))
import synth_cloudtrail

#: Replayed synthetic launches (the issue asks for >= 1,000).
N_SYNTH = 1200


@pytest.fixture(scope="module")
def real_opa() -> Iterator[RealOpa]:
    with RealOpa([POLICIES]) as server:
        yield server


@pytest.fixture(scope="module")
def real_rest(real_opa: RealOpa, bundle: Any) -> Iterator[OpaRestEngine]:
    engine = OpaRestEngine(real_opa.url, bundle.revision, timeout=5.0)
    yield engine
    engine.close()


def _canon(doc: Any) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, default=str)


def diff(label: str, left: Any, right: Any, names: tuple[str, str] = ("embedded", "real-opa")) -> str:
    """'' when ``left == right``; else a unified diff of their canonical JSON, headed by ``label``."""
    if left == right:
        return ""
    lines = difflib.unified_diff(
        _canon(left).splitlines(), _canon(right).splitlines(), names[0], names[1], lineterm="", n=2
    )
    return f"--- {label}\n" + "\n".join(lines)


def decision_fields(d: Decision) -> dict[str, Any]:
    """What the pipeline took from the engine's answer: effect, reasons (code, message, severity), fail_open."""
    return {
        "effect": d.effect,
        "reasons": [{"code": r.code, "message": r.message, "severity": r.severity} for r in d.reasons],
        "fail_open": d.fail_open,
    }


def compare_cases(
    cases: list[tuple[str, LaunchRequest, list[AccountOrigin], AttestationResult, float]],
    catalog: Any,
    left: Any,
    right: Any,
) -> list[str]:
    """Decide every case on both engines; return one diff per case that differs (empty: all agree)."""
    diffs: list[str] = []
    for label, req, origins, att, now in cases:
        accounts = StaticAccountDirectory(origins)
        a_enf, b_enf = (
            Enforcer(catalog=catalog, accounts=accounts, engine=e, attestations=FixedAttestation(att))
            for e in (left, right)
        )
        a = a_enf.decide(copy.deepcopy(req), now=now)
        b = b_enf.decide(copy.deepcopy(req), now=now)
        problem = diff(f"{label}: input document", a.input, b.input)
        if not problem:  # the same input: the raw decision documents, then what the pipeline made of them
            problem = diff(f"{label}: decision document", left.evaluate(a.input), right.evaluate(a.input))
        problem = problem or diff(f"{label}: decision", decision_fields(a), decision_fields(b))
        if problem:
            diffs.append(problem)
    return diffs


def _origin(profile: AccountOrigin | None, account_id: str) -> list[AccountOrigin]:
    return [] if profile is None else [AccountOrigin(**{**profile.to_dict(), "account_id": account_id})]


def fixture_cases() -> list[tuple[str, LaunchRequest, list[AccountOrigin], AttestationResult, float]]:
    """Every launch in tests/events/ under five account profiles (direct US, CN, AE, reseller, unknown)."""
    from tests.test_engine_parity import NOW

    profiles = [ACCOUNTS[0], ACCOUNTS[2], ACCOUNTS[4], RESELLER, None]
    atts = [ATTESTATIONS[0], *ATTESTATIONS[:4]]
    return [
        (f"{name} [{p.country if p else 'unknown'}/{att.status}]", req, _origin(p, req.account_id), att, NOW)
        for name, req in _event_requests()
        for p, att in zip(profiles, atts, strict=True)
    ]


def synthetic_cases(
    n: int = N_SYNTH,
) -> list[tuple[str, LaunchRequest, list[AccountOrigin], AttestationResult, float]]:
    """``n`` synthetic CloudTrail RunInstances records, normalised by the intake, each with a seeded random
    account origin (or none), attestation, and its own event time as the decision time."""
    from datetime import datetime

    from enforcer.intake import normalise

    rng = random.Random(1717)
    profiles: list[AccountOrigin | None] = [*ACCOUNTS, None]
    out = []
    for i in range(n):
        rec = synth_cloudtrail.record(i, rng)
        req = normalise(rec, now=rec["eventTime"])
        assert isinstance(req, LaunchRequest), (i, req)
        profile = rng.choice(profiles)
        att = rng.choice(ATTESTATIONS) if profile is RESELLER else ATTESTATIONS[0]
        now = datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00")).timestamp()
        out.append((f"synthetic #{i} {rec['eventID']}", req, _origin(profile, req.account_id), att, now))
    return out


# -- Rego tests ----------------------------------------------------------------------------------
def test_every_rego_test_has_the_same_verdict_on_embedded_real_opa_and_opa_test(
    bundle: Any, real_rest: OpaRestEngine
) -> None:
    embedded = {
        (r.package, r.name): r.passed for r in run_tests(bundle, EmbeddedEngine(bundle, with_tests=True))
    }
    real = {(r.package, r.name): r.passed for r in run_tests(bundle, real_rest)}
    proc = subprocess.run(
        [str(require_opa()), "test", "--format", "json", str(POLICIES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    opa_test = {
        (r["package"].removeprefix("data."), r["name"]): not r.get("fail") for r in json.loads(proc.stdout)
    }
    assert len(embedded) >= 20
    assert not diff("Rego test verdicts", embedded, real), diff("Rego test verdicts", embedded, real)
    assert set(opa_test) == set(embedded), diff(
        "test names", sorted(embedded), sorted(opa_test), ("ours", "opa test")
    )
    assert opa_test == embedded


PROBE = (
    'package gpu.launch\n\nparity_probe := decision if {\n\tprint("PARITY_INPUT", json.marshal(input))\n}\n'
)


def rego_test_inputs(tmp_path: Path) -> list[dict[str, Any]]:
    """Every input document the Rego tests decide on, captured from the real ``opa test``.

    A copy of policies/ gets a probe rule (``parity_probe := decision``, printing its input) and its test
    modules call the probe wherever they call ``launch.decision with input as``; ``opa test -v`` then
    prints each input exactly as the test built it (``with`` overrides of input fields included). Every
    test must still pass on the copy, so the probe changed nothing else.
    """
    copy_dir = tmp_path / "probe-policies"
    shutil.copytree(POLICIES, copy_dir)
    (copy_dir / "gpu" / "launch" / "zz_parity_probe.rego").write_text(PROBE)
    calls = 0
    for test_file in copy_dir.rglob("*_test.rego"):
        src = test_file.read_text()
        calls += src.count("launch.decision with input as")
        test_file.write_text(
            src.replace("launch.decision with input as", "launch.parity_probe with input as")
        )
    proc = subprocess.run(
        [str(require_opa()), "test", "-v", str(copy_dir)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    seen: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        _, marker, doc = line.partition("PARITY_INPUT ")
        if marker:
            value = json.loads(doc)
            seen.setdefault(json.dumps(value, sort_keys=True), value)
    assert calls >= 50 and len(seen) >= 50, (calls, len(seen))
    return list(seen.values())


def test_every_rego_test_input_decides_the_same_on_real_opa(
    tmp_path: Path, engine: Any, real_rest: OpaRestEngine
) -> None:
    inputs = rego_test_inputs(tmp_path)
    diffs = []
    for i, doc in enumerate(inputs):
        results = []
        for e in (engine, real_rest):
            try:
                results.append(e.evaluate(copy.deepcopy(doc)))
            except Exception as exc:  # an engine error must happen on both sides too
                results.append({"engine_error": type(exc).__name__})
        problem = diff(f"Rego test input #{i}", results[0], results[1])
        if problem:
            diffs.append(problem)
    assert not diffs, f"{len(diffs)} of {len(inputs)} Rego test inputs differ:\n" + "\n".join(diffs[:5])


# -- decisions -----------------------------------------------------------------------------------
def test_every_fixture_event_decides_the_same_on_real_opa(
    catalog: Any, engine: Any, real_rest: OpaRestEngine
) -> None:
    cases = fixture_cases()
    assert len(cases) >= 200, "every tests/events/ launch under five profiles"
    diffs = compare_cases(cases, catalog, engine, real_rest)
    assert not diffs, f"{len(diffs)} of {len(cases)} fixture cases differ:\n" + "\n".join(diffs[:5])


def test_replayed_synthetic_cloudtrail_decides_the_same_on_real_opa(
    catalog: Any, engine: Any, real_rest: OpaRestEngine
) -> None:
    cases = synthetic_cases()
    assert len(cases) >= 1000
    diffs = compare_cases(cases, catalog, engine, real_rest)
    assert not diffs, f"{len(diffs)} of {len(cases)} replayed launches differ:\n" + "\n".join(diffs[:5])
    # The replay is meaningful: both effects that matter occur and several reason codes are reached.
    effects, codes = set(), set()
    for _label, req, origins, att, now in cases[:300]:
        d = Enforcer(
            catalog=catalog,
            accounts=StaticAccountDirectory(origins),
            engine=engine,
            attestations=FixedAttestation(att),
        ).decide(copy.deepcopy(req), now=now)
        effects.add(d.effect)
        codes.update(d.reason_codes)
    assert {"allow", "deny"} <= effects and len(codes) >= 4, (effects, codes)


# -- the check can fail --------------------------------------------------------------------------
def test_parity_check_fails_when_the_real_server_runs_a_different_policy(
    tmp_path: Path, catalog: Any, engine: Any, bundle: Any
) -> None:
    """One reason's severity changed on the server side only: the comparison reports it with a diff."""
    modified = tmp_path / "policies"
    shutil.copytree(POLICIES, modified)
    reasons_file = modified / "gpu" / "reasons" / "data.json"
    reasons = json.loads(reasons_file.read_text())
    assert reasons["ACCOUNT_UNKNOWN"]["severity"] != "low"
    reasons["ACCOUNT_UNKNOWN"]["severity"] = "low"
    reasons_file.write_text(json.dumps(reasons))
    with RealOpa([modified]) as other:
        rest = OpaRestEngine(other.url, bundle.revision, timeout=5.0)
        cases = [c for c in fixture_cases() if not c[2]][
            :40
        ]  # unknown accounts: ACCOUNT_UNKNOWN for controlled
        diffs = compare_cases(cases, catalog, engine, rest)
        rest.close()
    assert diffs, "a policy that says something else must make the parity check fail"
    assert all(d.startswith("--- ") and "decision document" in d for d in diffs), diffs[0]
    assert any('+   "severity": "low"' in d for d in diffs), diffs[0]


def hostile_cases() -> list[tuple[str, LaunchRequest, list[AccountOrigin], AttestationResult, float]]:
    """Synthetic CloudTrail records an adversary who read the policy might send: odd counts, types, times,
    regions and identifiers -- whatever the intake accepts is decided on both engines."""
    from enforcer.intake import normalise
    from enforcer.model import InputError

    rng = random.Random(4242)
    mutations: list[tuple[str, Any]] = [
        ("count", 0),
        ("count", -1),
        ("count", 2**63),
        ("count", 10**6),
        ("count", 1.5),
        ("count", "3"),
        ("type", "P5.48XLARGE"),
        ("type", "p5.48xlarge "),
        ("type", "p5.48xlarge\u200b"),
        ("type", "p5." + "x" * 300),
        ("type", "p5e.48xlarge"),
        ("type", ""),
        ("time", "2026-06-30T23:59:60Z"),
        ("time", "9999-12-31T23:59:59Z"),
        ("time", "2026-10-01T00:00:00+14:00"),
        ("time", "2026-10-01T00:00:00.123456789Z"),
        ("region", "ap-east-1"),
        ("region", "cn-north-1"),
        ("region", "us-gov-west-1"),
        ("region", "mars-north-1"),
    ]
    out = []
    for i in range(len(mutations) * 6):
        rec = synth_cloudtrail.record(i, rng)
        what, value = mutations[i % len(mutations)]
        if what == "count":
            rec["requestParameters"]["instancesSet"]["items"][0].update(minCount=value, maxCount=value)
        elif what == "type":
            rec["requestParameters"]["instanceType"] = value
        elif what == "time":
            rec["eventTime"] = value
        else:
            rec["awsRegion"] = value
        try:
            req = normalise(rec, now=rec["eventTime"])
        except (InputError, ValueError):
            continue
        if not isinstance(req, LaunchRequest):
            continue
        profile = rng.choice([*ACCOUNTS, None])
        att = rng.choice(ATTESTATIONS) if profile is RESELLER else ATTESTATIONS[0]
        out.append(
            (
                f"hostile #{i} {what}={value!r:.40}",
                req,
                _origin(profile, req.account_id),
                att,
                1_780_000_000.0,
            )
        )
    return out


def test_hostile_launches_decide_the_same_on_real_opa(
    catalog: Any, engine: Any, real_rest: OpaRestEngine
) -> None:
    cases = hostile_cases()
    assert len(cases) >= 60, len(cases)
    diffs = compare_cases(cases, catalog, engine, real_rest)
    assert not diffs, f"{len(diffs)} of {len(cases)} hostile launches differ:\n" + "\n".join(diffs[:5])
