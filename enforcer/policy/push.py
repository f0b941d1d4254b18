"""Upload a policy directory to an OPA server: every ``.rego`` module and every ``data.json``.

Modules go to ``PUT /v1/policies/{relative path}`` (``update_policy_from_string``), data documents to
``PUT /v1/data/{directory}`` (``update_or_create_data``), both through ``opa-python-client``.
Data goes first, so a module never runs against a half-pushed configuration for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opa_client.errors import RegoParseError

from enforcer.policy.loader import PolicyBundle, load_bundle
from enforcer.policy.opa_rest import make_client

DEFAULT_PUSH_TIMEOUT = 5.0


class PolicyPushError(RuntimeError):
    """An upload failed; the message names the file (or the server) at fault."""


@dataclass(slots=True)
class PushReport:
    """What was uploaded."""

    url: str
    revision: str
    policies: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "opa_url": self.url,
            "revision": self.revision,
            "policies": self.policies,
            "data": self.data,
            "pruned": self.pruned,
        }


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, RegoParseError):
        return str(exc)[:500]
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {msg}"[:500]


def _put_modules(client: Any, modules: dict[str, str]) -> list[str]:
    """PUT every module, in passes: a module the server refuses to compile is retried after the others.

    OPA compiles each ``PUT /v1/policies`` against what it already holds, so a module calling a function
    another module of its package defines (``evidence.rego`` using ``launch.rego``'s helpers) is refused
    until that one is there. Each pass uploads what now compiles; a pass that uploads nothing raises the
    first refusal (a genuine error, or modules that need each other: ship those as a bundle instead).
    """
    pending = sorted(modules)
    done: list[str] = []
    while pending:
        refused: list[tuple[str, Exception]] = []
        for pid in pending:
            try:
                # rego_compat=False: never let the client rewrite a refused module and upload that
                # instead -- the server gets exactly the (verified) bytes or nothing.
                client.update_policy_from_string(modules[pid], pid, rego_compat=False)
                done.append(pid)
            except RegoParseError as exc:
                refused.append((pid, exc))
        if len(refused) == len(pending):
            first, error = refused[0]
            raise PolicyPushError(f"{first}: {_error_text(error)}") from error
        pending = [pid for pid, _ in refused]
    return done


def push_bundle(
    bundle: PolicyBundle,
    opa_url: str,
    timeout: float = DEFAULT_PUSH_TIMEOUT,
    include_tests: bool = False,
    prune: bool = False,
    token: str | None = None,
) -> PushReport:
    """Upload an already loaded (and, if wanted, verified) bundle.

    Parameters
    ----------
    bundle
        From ``load_bundle`` or ``signing.load_verified_bundle``.
    opa_url
        OPA base URL.
    timeout
        Seconds per request.
    include_tests
        Also upload ``*_test.rego`` modules (only when asked: needed to run the Rego tests through the
        server, never part of what a production server should hold).
    prune
        Delete server policies whose id is not in the bundle (stale modules can change decisions).
    token
        Optional bearer token.

    Raises
    ------
    PolicyPushError
        Naming the file the server refused, or the server when it could not be reached.
    """
    client = make_client(opa_url, timeout, retries=2, token=token)
    report = PushReport(opa_url, bundle.revision)
    modules = dict(bundle.modules)
    if include_tests:
        modules.update(bundle.tests)
    current = ""
    try:
        for dir_path, value in sorted(bundle.data_files.items()):
            current = f"{dir_path}/data.json" if dir_path else "data.json"
            client.update_or_create_data(value, dir_path)
            report.data.append(dir_path)
        current = "(modules)"
        report.policies.extend(_put_modules(client, modules))
        if prune:
            current = "(policy list)"
            for pid in client.get_policies_list():
                if pid not in modules:
                    current = pid
                    client.delete_policy(pid)
                    report.pruned.append(pid)
    except Exception as exc:  # requests, opa_client.errors, JSON: all mean "not pushed"
        raise PolicyPushError(f"push to {opa_url} failed at {current}: {_error_text(exc)}") from exc
    finally:
        client.close_connection()
    return report


def push_policies(
    policy_dir: Path | str,
    opa_url: str,
    timeout: float = DEFAULT_PUSH_TIMEOUT,
    include_tests: bool = False,
    prune: bool = False,
    public_key_pem: bytes | str | None = None,
    token: str | None = None,
) -> PushReport:
    """Load ``policy_dir`` (verifying its signature when ``public_key_pem`` is given) and upload it.

    Parameters
    ----------
    policy_dir
        The policy directory.
    opa_url, timeout, include_tests, prune, token
        As :func:`push_bundle`.
    public_key_pem
        When given, the directory must carry a valid ``.signatures.json`` for this key.

    Raises
    ------
    model.InputError
        When the directory does not load (``signing.PolicySignatureError`` when it is not signed right).
    PolicyPushError
        When the server refuses or cannot be reached.
    """
    if public_key_pem is not None:
        from enforcer.policy.signing import load_verified_bundle

        bundle = load_verified_bundle(policy_dir, public_key_pem)
    else:
        bundle = load_bundle(policy_dir)
    return push_bundle(bundle, opa_url, timeout, include_tests, prune, token)
