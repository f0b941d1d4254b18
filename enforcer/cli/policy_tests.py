"""``enforcer policy test``: the Rego tests on the embedded engine, reported like ``opa test``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from enforcer.model import InputError
from enforcer.policy.testing import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, CompileError, compile_errors, run_tests


def _report_errors(errors: list[CompileError], fallback: str) -> int:
    if not errors:
        click.echo(f"error: {' '.join(fallback.split())[:600]}", err=True)
        return EXIT_ERROR
    click.echo(f"{len(errors)} error{'s' if len(errors) > 1 else ''} occurred:", err=True)
    for e in errors:
        click.echo(str(e), err=True)
    return EXIT_ERROR


def run_policy_tests(
    policy_dir: Path | None,
    verbose: bool = False,
    run: str | None = None,
    explain: str | None = None,
    fmt: str = "pretty",
) -> int:
    """Run the Rego tests of ``policy_dir``, print the report, return ``opa test``'s exit code.

    0: every test passed (or none matched); 2: a test failed; 1: the policies do not load or compile
    (each distinct error printed once, as ``file:row: code: message``).
    """
    from enforcer.policy.embedded import EmbeddedEngine
    from enforcer.policy.factory import default_policy_dir
    from enforcer.policy.loader import load_bundle
    from enforcer.ports import EngineError

    try:
        pattern = re.compile(run) if run else None
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression: {exc}", param_hint="--run") from exc
    try:
        bundle = load_bundle(policy_dir or default_policy_dir())
        engine = EmbeddedEngine(bundle, with_tests=True)
    except (InputError, EngineError) as exc:
        return _report_errors(compile_errors(exc), str(exc))
    try:  # the first evaluation compiles everything: a compile error is reported here, once
        engine.eval_path("__enforcer_compile_check__")
    except EngineError as exc:
        errors = compile_errors(exc)
        if errors:
            return _report_errors(errors, str(exc))
    results = run_tests(bundle, engine, pattern, explain)
    failed = [r for r in results if not r.passed]
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
        return EXIT_FAIL if failed else EXIT_PASS
    for r in results:
        if verbose or not r.passed or r.trace:
            status = "PASS" if r.passed else ("ERROR" if r.error else "FAIL")
            if not r.passed:
                click.echo(f"{r.file}:{r.row}:")
            click.echo(
                f"data.{r.package}.{r.name}: {status} ({r.duration_ms:.2f}ms)"
                + (f" {r.error}" if r.error else "")
            )
            for line in r.trace:
                click.echo(f"    {line}")
    if verbose or failed:
        click.echo("-" * 80)
    if not results:
        click.echo("no tests" + (f" match --run {run!r}" if run else " found"))
        return EXIT_PASS
    passed = len(results) - len(failed)
    click.echo(
        (f"PASS: {passed}/{len(results)}" if passed else "") + ("\n" if passed and failed else ""), nl=False
    )
    click.echo(f"FAIL: {len(failed)}/{len(results)}" if failed else "")
    return EXIT_FAIL if failed else EXIT_PASS
