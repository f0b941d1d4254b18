"""Embedded engine: OPA's own Go evaluator in-process (``opa-golib-python-bindings``).

Create engines after any fork (the Go runtime does not survive one). Any evaluation error or an
undefined decision raises ``EngineError``; the pipeline turns that into a fail-closed deny.
"""

from __future__ import annotations

import os
from typing import Any

from enforcer.config import ConfigError
from enforcer.policy import DECISION_PATH, go_env
from enforcer.policy.limits import refuse_deep
from enforcer.policy.loader import PolicyBundle
from enforcer.ports import EngineError

INSTALL_HINT = (
    "the embedded OPA engine is not installed: run `make install` (it installs "
    "opa-golib-python-bindings==0.4.4 with --no-deps --ignore-requires-python), or use --engine opa"
)


LOAD_HINT = (
    "the embedded OPA engine cannot load its shared library (libopabridge.so needs glibc 2.34 and the "
    "machine's architecture): deploy the artifact from `make package` (ARCH matching the function's "
    "Architectures) on the python3.12 runtime or later (Amazon Linux 2023), or set ENFORCER_ENGINE=opa"
)


class EngineMissing(RuntimeError):
    """The opa-golib-python-bindings package is not importable."""


class EngineLoadError(EngineMissing, ConfigError):
    """The engine package is there but its Go library does not load on this machine (a deployment error)."""


def _new_engine() -> Any:
    bad = go_env.problems(os.environ)
    if bad:  # Go reads these once, when the library loads: a malformed GOMEMLIMIT aborts the process
        raise EngineLoadError("the embedded OPA engine's Go runtime settings: " + "; ".join(bad))
    try:
        from opa_bindings import OpaEngine
    except ImportError as exc:  # pragma: no cover - exercised only without the wheel
        raise EngineMissing(INSTALL_HINT) from exc
    except OSError as exc:
        raise EngineLoadError(f"{LOAD_HINT} ({exc})") from exc
    try:
        return OpaEngine()
    except OSError as exc:  # ctypes.CDLL: wrong glibc, wrong architecture, truncated file
        raise EngineLoadError(f"{LOAD_HINT} ({exc})") from exc


class EmbeddedEngine:
    """``ports.PolicyEngine`` on OPA's Go library.

    Parameters
    ----------
    bundle
        Policies and data to load.
    with_tests
        Also load ``*_test.rego`` modules (for ``enforcer policy test``).
    """

    name = "embedded"

    def __init__(self, bundle: PolicyBundle, with_tests: bool = False) -> None:
        self.bundle = bundle
        self.revision = bundle.revision
        self._pid = os.getpid()
        self._engine = _new_engine()
        try:
            for path, src in bundle.modules.items():
                self._engine.add_policy(path, src)
            if with_tests:
                for path, src in bundle.tests.items():
                    self._engine.add_policy(path, src)
            self._engine.add_data(bundle.data)
        except Exception as exc:
            raise EngineError(f"policy load failed: {exc}") from exc

    def evaluate(self, input_doc: dict[str, Any]) -> dict[str, Any]:
        """Evaluate ``data.gpu.launch.decision``; raise EngineError on any failure."""
        result = self.eval_path(DECISION_PATH.replace("/", "."), input_doc)
        if not isinstance(result, dict):
            raise EngineError("data.gpu.launch.decision is not an object")
        return result

    def trace_path(
        self, dotted: str, input_doc: dict[str, Any] | None = None
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Evaluate ``data.<dotted>`` with OPA's trace on: ``(value or None when undefined, trace events)``.

        Raises
        ------
        ports.EngineError
            On an evaluation error other than an undefined document.
        """
        if os.getpid() != self._pid:
            raise EngineError("embedded engine used after fork; create engines after forking")
        from opa_bindings.engine import OpaUndefinedError

        refuse_deep(input_doc)
        try:
            value = self._engine.eval_document(dotted, input_doc, trace=True)
        except OpaUndefinedError:
            value = None
        except Exception as exc:
            raise EngineError(f"evaluation failed: {exc}") from exc
        events = getattr(self._engine, "last_trace", None)
        return value, list(events) if isinstance(events, list) else []

    def eval_path(self, dotted: str, input_doc: dict[str, Any] | None = None) -> Any:
        """Evaluate the document ``data.<dotted>`` and return its value."""
        if os.getpid() != self._pid:
            raise EngineError("embedded engine used after fork; create engines after forking")
        refuse_deep(input_doc)
        try:
            result = self._engine.eval_document(dotted, input_doc)
        except Exception as exc:
            raise EngineError(f"evaluation failed: {exc}") from exc
        return result
