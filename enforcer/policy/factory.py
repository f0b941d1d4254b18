"""Build a policy engine from the CLI/env choice: ``embedded`` (default) or ``opa`` (REST)."""

from __future__ import annotations

import os
from pathlib import Path

from enforcer.model import InputError
from enforcer.policy.loader import load_bundle
from enforcer.ports import PolicyEngine

ENGINES = ("embedded", "opa")
DEFAULT_POLICY_DIR = "policies"


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
    pubkey = os.environ.get("ENFORCER_POLICY_PUBKEY")
    if pubkey:
        from enforcer.policy.signing import load_verified_bundle, read_public_key_setting

        bundle = load_verified_bundle(policy_dir or default_policy_dir(), read_public_key_setting(pubkey))
    else:
        bundle = load_bundle(policy_dir or default_policy_dir())
    if kind == "embedded":
        from enforcer.policy.embedded import EmbeddedEngine

        return EmbeddedEngine(bundle)
    from enforcer.policy.opa_rest import OpaRestEngine

    url = opa_url or os.environ.get("ENFORCER_OPA_URL", "http://127.0.0.1:8181")
    t = timeout if timeout is not None else float(os.environ.get("ENFORCER_OPA_TIMEOUT", "0.25"))
    return OpaRestEngine(url, bundle.revision, timeout=t)
