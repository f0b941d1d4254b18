"""The policy engine built on a background thread at a deciding function's cold start, failing closed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import opa_bindings
import pytest

from enforcer.policy import factory
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.ports import EngineError
from lambdas._prefetch import start_engine_prefetch

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"


@pytest.fixture(autouse=True)
def _no_leftovers() -> None:
    factory._prefetched.clear()


def test_only_deciding_handlers_with_a_valid_configuration_prefetch() -> None:
    base = {"ENFORCER_POLICY": str(POLICIES)}
    assert start_engine_prefetch(base) is None  # not in Lambda (tests, CLI)
    assert start_engine_prefetch({**base, "_HANDLER": "lambdas.attestation_intake.handler"}) is None
    bad = {**base, "_HANDLER": "lambdas.guard.handler", "ENFORCER_MODE": "sometimes"}
    assert start_engine_prefetch(bad) is None  # the first invocation reports the ConfigError
    opa = {
        **base,
        "_HANDLER": "lambdas.broker.handler",
        "ENFORCER_ENGINE": "opa",
        "ENFORCER_OPA_URL": "http://x",
    }
    assert start_engine_prefetch(opa) is None  # the REST client costs nothing to create
    assert factory._prefetched == {}


def test_the_runtime_takes_the_prefetched_engine_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENFORCER_POLICY_PUBKEY", raising=False)
    thread = start_engine_prefetch({"ENFORCER_POLICY": str(POLICIES), "_HANDLER": "lambdas.guard.handler"})
    assert thread is not None and thread.name == "engine-prefetch"
    thread.join(60)
    engine = factory.make_engine("embedded", str(POLICIES))
    assert isinstance(engine, EmbeddedEngine)
    assert factory._prefetched == {}
    decision = engine.evaluate({"request": {"account_id": "111122223333", "items": []}})
    assert decision["effect"] in ("allow", "deny", "audit")
    assert factory.make_engine("embedded", str(POLICIES)) is not engine  # later builds are fresh
    # another policy directory or policy key never gets an engine prefetched for the first one
    assert factory.prefetch_engine("embedded", str(POLICIES)) is not None
    monkeypatch.setenv("ENFORCER_POLICY_PUBKEY", "-----BEGIN PUBLIC KEY-----")
    with pytest.raises(Exception):
        factory.make_engine("embedded", str(POLICIES))
    assert len(factory._prefetched) == 1


def test_a_broken_policy_fails_the_build_that_needed_it_every_time(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICIES, broken)
    rego = next(p for p in sorted(broken.rglob("*.rego")) if not p.name.endswith("_test.rego"))
    rego.write_text(rego.read_text() + "\nthis is not rego {\n")
    factory.prefetch_engine("embedded", str(broken)).join(60)
    with pytest.raises(EngineError, match="policy load failed"):
        factory.make_engine("embedded", str(broken))
    with pytest.raises(EngineError, match="policy load failed"):  # the next invocation tries again
        factory.make_engine("embedded", str(broken))


def test_guard_fails_closed_when_the_prefetched_engine_cannot_load(tmp_path: Path) -> None:
    """A real unloadable libopabridge.so: the guard's first event raises (Lambda retries), nothing is allowed."""
    site = tmp_path / "site"
    src = Path(opa_bindings.__file__).parent
    shutil.copytree(src, site / "opa_bindings", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (site / "opa_bindings" / "libopabridge.so").write_bytes(b"\x7fELF" + b"\0" * 60)
    event = json.loads((ROOT / "tests" / "events" / "cloudtrail_runinstances.json").read_text())
    code = (
        "import json, sys\n"
        "from lambdas import guard\n"
        "from enforcer.policy import factory\n"
        "prefetched = len(factory._prefetched)\n"
        "from enforcer.demo.world import LambdaContext\n"
        "try:\n"
        "    out = guard.handler(json.loads(sys.argv[1]), LambdaContext())\n"
        "    print('HANDLED', json.dumps(out))\n"
        "except Exception as exc:\n"
        "    print('RAISED', type(exc).__name__, prefetched)\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENFORCER_", "AWS_"))},
        "PYTHONPATH": f"{site}{os.pathsep}{ROOT}",
        "_HANDLER": "lambdas.guard.handler",
        "ENFORCER_POLICY": str(POLICIES),
        "ENFORCER_ACCOUNTS_TABLE": "accounts",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(event)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "RAISED EngineLoadError 1" in out.stdout, out.stdout[-2000:]
