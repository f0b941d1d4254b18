"""Build a policy engine from the CLI/env choice: ``embedded`` (default), ``wasm`` or ``opa`` (REST).

``wasm`` is the policy compiled by OPA to WebAssembly (:mod:`enforcer.policy.wasm`), with the embedded Go
evaluator deciding whatever the module cannot. When no compiled module matches the loaded Rego and no OPA
binary can build one, ``wasm`` logs why and builds the embedded engine instead: same decisions, more CPU.

A Lambda cold start can build the embedded engine on a background thread (:func:`prefetch_engine`)
while Python imports the rest: OPA's Go library parses and compiles the policy with the GIL released.
:func:`make_engine` then takes that engine, or raises the error its build raised (fail closed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from enforcer.model import InputError
from enforcer.policy.loader import PolicyBundle, load_bundle
from enforcer.ports import PolicyEngine

ENGINES = ("embedded", "wasm", "opa")
#: the engine infra/template.yaml deploys (``ENFORCER_ENGINE``); make bench's "as deployed" rows use it
DEPLOYED_ENGINE = "wasm"
#: the engines that evaluate in-process (and are worth building on a background thread at a cold start)
IN_PROCESS = ("embedded", "wasm")
DEFAULT_POLICY_DIR = "policies"
log = logging.getLogger(__name__)


def default_policy_dir() -> Path:
    """``$ENFORCER_POLICY``, else ``policies/`` in the working directory, else the one beside the package."""
    env = os.environ.get("ENFORCER_POLICY")
    if env:
        return Path(env)
    local = Path(DEFAULT_POLICY_DIR)
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[2] / DEFAULT_POLICY_DIR


def make_engine(
    kind: str | None = None,
    policy_dir: Path | str | None = None,
    opa_url: str | None = None,
    timeout: float | None = None,
) -> PolicyEngine:
    """Create the engine named by ``kind`` (or ``$ENFORCER_ENGINE``), loaded with ``policy_dir``.

    For ``opa`` the policies are not uploaded here (see ``enforcer policy push``); the local bundle
    only supplies the revision recorded in each decision. When ``$ENFORCER_POLICY_PUBKEY`` is set (a PEM
    file path or inline PEM), the directory must carry a valid ``.signatures.json`` for that key.
    """
    kind = kind or os.environ.get("ENFORCER_ENGINE", "embedded")
    if kind not in ENGINES:
        raise InputError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINES)}", "BAD_ENGINE")
    with _prefetch_lock:
        pending = _prefetched.pop(_prefetch_key(kind, policy_dir), None)
    if pending is not None:
        return pending.result()
    return _build_engine(kind, policy_dir, opa_url, timeout)


def _build_engine(
    kind: str, policy_dir: Path | str | None, opa_url: str | None, timeout: float | None
) -> PolicyEngine:
    pubkey = os.environ.get("ENFORCER_POLICY_PUBKEY")
    if pubkey:
        from enforcer.policy.signing import load_verified_bundle, read_public_key_setting

        bundle = load_verified_bundle(policy_dir or default_policy_dir(), read_public_key_setting(pubkey))
    else:
        bundle = load_bundle(policy_dir or default_policy_dir())
    if kind == "wasm":
        wasm = _wasm_engine(bundle)
        if wasm is not None:
            return wasm
        kind = "embedded"
    if kind == "embedded":
        from enforcer.policy.embedded import EmbeddedEngine

        return EmbeddedEngine(bundle)
    from enforcer.policy.opa_rest import OpaRestEngine

    url = opa_url or os.environ.get("ENFORCER_OPA_URL", "http://127.0.0.1:8181")
    t = timeout if timeout is not None else float(os.environ.get("ENFORCER_OPA_TIMEOUT", "0.25"))
    return OpaRestEngine(url, bundle.revision, timeout=t)


def _wasm_engine(bundle: PolicyBundle) -> PolicyEngine | None:
    from enforcer.policy.wasm_build import WasmUnavailable

    try:
        from enforcer.policy.wasm import WasmEngine

        return WasmEngine(bundle)
    except (ImportError, OSError, WasmUnavailable) as exc:
        log.warning("wasm engine unavailable (%s); the embedded engine decides", exc)
        return None


class _Pending:
    """An engine being built on a background thread; :meth:`result` waits and returns or raises."""

    def __init__(self, kind: str, policy_dir: Path | str | None) -> None:
        self._done = threading.Event()
        self._engine: PolicyEngine | None = None
        self._error: BaseException | None = None
        self._args = (kind, policy_dir)
        self.thread = threading.Thread(target=self._run, name="engine-prefetch", daemon=True)

    def _run(self) -> None:
        try:
            engine = _build_engine(self._args[0], self._args[1], None, None)
            # compile the decision query now (OPA caches the prepared query); any answer will do, and
            # an error here is only a warm-up's: the real evaluation reports its own
            with contextlib.suppress(Exception):
                engine.evaluate({})
            self._engine = engine
        except BaseException as exc:  # handed to the thread that needs the engine
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> PolicyEngine:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._engine is not None
        return self._engine


_prefetched: dict[tuple[str, str, str], _Pending] = {}
_prefetch_lock = threading.Lock()


def _prefetch_key(kind: str, policy_dir: Path | str | None) -> tuple[str, str, str]:
    return kind, str(policy_dir or default_policy_dir()), os.environ.get("ENFORCER_POLICY_PUBKEY", "")


def prefetch_engine(kind: str, policy_dir: Path | str | None = None) -> Any:
    """Start building the embedded engine on a background thread; :func:`make_engine` takes it.

    Only the in-process engines are prefetched (the REST client costs nothing to create). The first
    :func:`make_engine` call with the same kind, policy directory and policy key gets this engine, or
    the exception its build raised. Call it after any fork, like every engine creation.

    Returns
    -------
    threading.Thread or None
        The builder thread (tests join it), None when nothing was started.
    """
    if kind not in IN_PROCESS:
        return None
    key = _prefetch_key(kind, policy_dir)
    with _prefetch_lock:
        if key in _prefetched:
            return None
        pending = _prefetched[key] = _Pending(kind, policy_dir)
    pending.thread.start()
    return pending.thread
