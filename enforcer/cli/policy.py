"""``enforcer policy test|check|push|sign|verify|build|eval``: author, sign and ship the Rego policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from enforcer.cli.common import fail, read_event
from enforcer.model import InputError

_DIR_ARG = click.argument("policy_dir", required=False, type=click.Path(path_type=Path))


@click.group("policy")
def policy() -> None:
    """Policy authoring: test, push to an OPA server."""


@policy.command("test")
@click.argument("policy_dir", required=False, type=click.Path(path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="List every test, not only failures.")
@click.option("-r", "--run", default=None, help="Only tests whose data.<package>.<name> matches this regex.")
@click.option(
    "--explain",
    type=click.Choice(["fails", "notes", "full"]),
    default=None,
    help="Show the failing expressions, the notes, or the full trace.",
)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(["pretty", "json"]), default="pretty", show_default=True
)
@click.option(
    "--check/--no-check",
    "check",
    default=True,
    show_default=True,
    help="Run `policy check` on the data first (--no-check: plain `opa test` on any directory).",
)
def policy_test(
    policy_dir: Path | None, verbose: bool, run: str | None, explain: str | None, fmt: str, check: bool
) -> None:
    """Run the Rego tests (test_ rules of *_test.rego) on the embedded engine, like `opa test`.

    Exit 0 when all pass, 2 when a test fails, 1 when the policies do not compile (each error once).
    """
    from enforcer.cli.policy_tests import run_policy_tests
    from enforcer.policy.check import run_check

    checked = run_check(policy_dir, quiet_ok=True) if check else 0  # data errors first: they change tests
    if checked:
        sys.exit(checked)
    sys.exit(run_policy_tests(policy_dir, verbose, run, explain, fmt))


@policy.command("check")
@click.argument("policy_dir", required=False, type=click.Path(path_type=Path))
def policy_check(policy_dir: Path | None) -> None:
    """Validate every data file of POLICY_DIR (default policies/) against its JSON schema and the Rego.

    Exit 0 when sound, 2 naming each problem on stderr (unknown keys, non-ISO countries, strings for
    numbers, reason codes missing from reasons/data.json, undated or unsourced group entries ...).
    """
    from enforcer.policy.check import run_check

    sys.exit(run_check(policy_dir))


def _policy_dir(policy_dir: Path | None) -> Path:
    from enforcer.policy.factory import default_policy_dir

    return policy_dir if policy_dir is not None else default_policy_dir()


@policy.command("push")
@_DIR_ARG
@click.option(
    "--opa-url",
    envvar="ENFORCER_OPA_URL",
    default="http://127.0.0.1:8181",
    show_default=True,
    help="OPA server base URL.",
)
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds per request.")
@click.option(
    "--tests/--no-tests",
    "include_tests",
    default=False,
    show_default=True,
    help="Also upload *_test.rego modules (off: test modules never reach a server unless asked).",
)
@click.option("--prune", is_flag=True, help="Delete server policies that are not in the directory.")
@click.option(
    "--pubkey",
    type=click.Path(path_type=Path),
    envvar="ENFORCER_POLICY_PUBKEY",
    default=None,
    help="Refuse to push unless .signatures.json verifies with this public key (PEM).",
)
def push_command(
    policy_dir: Path | None,
    opa_url: str,
    timeout: float,
    include_tests: bool,
    prune: bool,
    pubkey: Path | None,
) -> None:
    """Upload every .rego module and data.json of POLICY_DIR (default policies/) to an OPA server.

    Exit 0 when everything was uploaded, 2 for a bad directory or signature, 1 when the server
    refused a file or could not be reached.
    """
    from enforcer.policy.push import PolicyPushError, push_policies
    from enforcer.policy.signing import read_public_key_setting

    try:
        pem = read_public_key_setting(str(pubkey)) if pubkey else None
        report = push_policies(_policy_dir(policy_dir), opa_url, timeout, include_tests, prune, pem)
    except InputError as exc:
        fail(str(exc))
    except PolicyPushError as exc:
        fail(str(exc), 1)
    click.echo(json.dumps(report.to_dict(), indent=2))


@policy.command("sign")
@click.argument("policy_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Private key (PEM, EC P-256 or Ed25519).",
)
@click.option("--kid", required=True, help="Key id recorded in the signature.")
def sign_command(policy_dir: Path, key_file: Path, kid: str) -> None:
    """Write POLICY_DIR/.signatures.json (OPA's bundle signature format) over every policy and data file."""
    from enforcer.policy.signing import MAX_PEM_BYTES, bundle_files, sign_bundle

    try:
        if key_file.stat().st_size > MAX_PEM_BYTES:
            fail(f"key file larger than {MAX_PEM_BYTES} bytes")
        target = sign_bundle(policy_dir, key_file.read_bytes(), kid)
        count = len(bundle_files(policy_dir))
    except OSError as exc:
        fail(f"cannot read key file {key_file}: {exc.strerror}")
    except InputError as exc:
        fail(str(exc))
    click.echo(json.dumps({"signatures": str(target), "kid": kid, "files": count}))


@policy.command("verify")
@_DIR_ARG
@click.option(
    "--pubkey",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ENFORCER_POLICY_PUBKEY",
    help="Public key (PEM).",
)
@click.option("--kid", default=None, help="Require this key id.")
def verify_command(policy_dir: Path | None, pubkey: Path, kid: str | None) -> None:
    """Check POLICY_DIR/.signatures.json; exit 2 naming the first missing, unsigned or changed file."""
    from enforcer.policy.signing import load_verified_bundle, read_public_key_setting

    try:
        bundle = load_verified_bundle(_policy_dir(policy_dir), read_public_key_setting(str(pubkey)), kid)
    except InputError as exc:
        fail(str(exc))
    files = len(bundle.modules) + len(bundle.tests) + len(bundle.data_files)
    click.echo(json.dumps({"verified": True, "revision": bundle.revision, "files": files}))


@policy.command("build")
@_DIR_ARG
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("bundle.tar.gz"),
    show_default=True,
    help="Bundle archive to write.",
)
@click.option(
    "--signing-key",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Private key (PEM, EC P-256 or Ed25519): write /.signatures.json.",
)
@click.option("--kid", default=None, help="Key id of --signing-key (OPA's --verification-key-id).")
@click.option("--revision", default=None, help="Manifest revision (default: the directory's revision).")
@click.option(
    "--tests/--no-tests", "include_tests", default=False, show_default=True, help="Ship *_test.rego."
)
def build_command(
    policy_dir: Path | None,
    output: Path,
    signing_key: Path | None,
    kid: str | None,
    revision: str | None,
    include_tests: bool,
) -> None:
    """Write an `opa build`-compatible bundle of POLICY_DIR: /.manifest (revision, roots), modules, data,
    and /.signatures.json when signed. Load it with `opa run --server --bundle --verification-key PUB
    --verification-key-id KID --signing-alg ES256 bundle.tar.gz`. Exit 2 for a bad directory or key."""
    from enforcer.policy.bundle import build_bundle
    from enforcer.policy.signing import MAX_PEM_BYTES

    try:
        pem = None
        if signing_key is not None:
            if signing_key.stat().st_size > MAX_PEM_BYTES:
                fail(f"key file larger than {MAX_PEM_BYTES} bytes")
            pem = signing_key.read_bytes()
        built = build_bundle(_policy_dir(policy_dir), output, pem, kid, revision, include_tests)
    except OSError as exc:
        fail(f"{exc.filename or output}: {exc.strerror}")
    except InputError as exc:
        fail(str(exc))
    click.echo(json.dumps(built.to_dict(), indent=2))


@policy.command("eval")
@click.argument("input_file", type=click.Path(path_type=Path, allow_dash=True, dir_okay=False))
@click.option("--policy-dir", type=click.Path(path_type=Path), default=None, help="Default: policies/.")
@click.option(
    "-d",
    "--data-path",
    "query",
    default="gpu.launch.decision",
    show_default=True,
    help="Document to evaluate (data.<path>), dotted.",
)
@click.option("--engine", type=click.Choice(["embedded", "opa"]), default="embedded", show_default=True)
@click.option("--opa-url", envvar="ENFORCER_OPA_URL", default="http://127.0.0.1:8181", show_default=True)
def eval_command(input_file: Path, policy_dir: Path | None, query: str, engine: str, opa_url: str) -> None:
    """Evaluate data.<path> for a raw INPUT_FILE (JSON object; - for stdin), like `opa eval -i`.

    Nothing is resolved, looked up or written to the audit log: the input document is the policy's input
    as is. Prints {"result": ...}; exit 0 when defined, 1 when undefined or the engine fails, 2 for bad input.
    """
    from enforcer.policy.factory import make_engine
    from enforcer.ports import EngineError

    dotted = query.removeprefix("data.")
    if not dotted or not all(p.replace("_", "a").isalnum() for p in dotted.split(".")):
        fail(f"bad data path {query!r}: expected dotted identifiers like gpu.launch.decision")
    try:
        doc = read_event(input_file)
        if not isinstance(doc, dict):
            fail("input must be a JSON object")
        eng: Any = make_engine(engine, _policy_dir(policy_dir), opa_url=opa_url, timeout=5.0)  # has eval_path
        result = eng.eval_path(dotted, doc)
    except InputError as exc:
        fail(str(exc))
    except EngineError as exc:
        click.echo(json.dumps({"error": str(exc)}), err=True)
        sys.exit(1)
    click.echo(json.dumps({"result": result}, indent=2, sort_keys=True))
