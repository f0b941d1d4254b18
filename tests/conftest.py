"""Shared fixtures: one engine per session (the one the template deploys), a chip catalogue, an enforcer
factory, moto credentials."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"
POLICIES = ROOT / "policies"

# No test may reach AWS: fake credentials and a fixed region for every boto3 client created in tests.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

# Property tests explore new examples on a developer's machine; in CI (CI set, as .ci/run does) they replay
# the same examples every run, so a landing never hangs on a random draw. What exploration finds is pinned
# as its own test (tests/test_redteam_round*.py, tests/test_intake_property.py).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def bundle() -> Any:
    from enforcer.policy import load_bundle

    return load_bundle(POLICIES)


@pytest.fixture(scope="session")
def engine(bundle: Any) -> Any:
    """The engine the template deploys (``wasm``), so every pipeline and handler test decides through it.

    Without an OPA binary to compile the policy (no Go toolchain, outside CI) it is the embedded engine,
    as the factory would build it; under ``CI=true`` that is an error. The embedded engine itself is held
    to the same decisions by tests/test_policy_golden.py and tests/test_wasm_engine.py.
    """
    from enforcer.policy.embedded import EmbeddedEngine
    from enforcer.policy.factory import DEPLOYED_ENGINE
    from enforcer.policy.wasm_build import WasmUnavailable

    if DEPLOYED_ENGINE == "wasm":
        from enforcer.policy.wasm import WasmEngine

        try:
            return WasmEngine(bundle)
        except WasmUnavailable:
            if os.environ.get("CI") == "true":
                raise
    return EmbeddedEngine(bundle)


@pytest.fixture(scope="session")
def catalog() -> Any:
    from enforcer.chips import ChipCatalog

    return ChipCatalog()


@pytest.fixture
def make_enforcer(engine: Any, catalog: Any) -> Callable[..., Any]:
    """Build an Enforcer over a static account directory; keyword args override fields."""
    from enforcer.accounts import StaticAccountDirectory
    from enforcer.pipeline import Enforcer

    def _make(accounts: list[Any] | None = None, **kw: Any) -> Any:
        kw.setdefault("engine", engine)
        return Enforcer(catalog=catalog, accounts=StaticAccountDirectory(accounts or []), **kw)

    return _make


# -- engine wasm: the module and the Go evaluator it is held to (tests/test_wasm_engine.py, red-team rounds)
@pytest.fixture(scope="session")
def opa() -> Path:
    """The real OPA binary (``make tools``); skipped outside CI without it, a failure under ``CI=true``."""
    from tests.opa_real import require_opa

    return require_opa()


@pytest.fixture(scope="session")
def compiled(bundle: Any, opa: Path) -> Any:
    """The shipped policy compiled by ``opa build -t wasm`` (a ``wasm_build.CompiledPolicy``)."""
    from enforcer.policy.wasm_build import CompiledPolicy, compile_wasm, modules_digest

    return CompiledPolicy(compile_wasm(bundle, opa), modules_digest(bundle), "test")


@pytest.fixture(scope="session")
def reference(bundle: Any) -> Any:
    """The embedded Go evaluator on the shipped policy: the reference the wasm engine is held to."""
    from enforcer.policy.embedded import EmbeddedEngine

    return EmbeddedEngine(bundle)
