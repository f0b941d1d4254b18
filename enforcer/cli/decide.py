"""``enforcer decide``: one launch event through the whole pipeline, logged; the exit code is the effect."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from enforcer.cli.common import CliState, engine_options, parse_now, read_event
from enforcer.model import Decision, InputError


@click.command("decide")
@click.argument("event_file", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--now", default=None, help="Decision time (RFC 3339), for attestation validity.")
@click.option("--mode", type=click.Choice(["enforce", "dryrun"]), default="enforce", show_default=True)
@engine_options
@click.pass_obj
def decide(
    obj: CliState,
    event_file: Path,
    now: str | None,
    mode: str,
    engine: str,
    opa_url: str | None,
    policy_dir: Path | None,
) -> None:
    """Decide on one launch EVENT_FILE (JSON; - for stdin) and log the decision.

    Exit 0 allow or audit, 3 deny, 2 bad input, 1 audit log failure (treated as deny).
    """
    sys.exit(decide_command(obj, event_file, parse_now(now), mode, engine, opa_url, policy_dir))


EXIT_FOR_EFFECT = {"allow": 0, "audit": 0, "deny": 3}


def decide_command(
    obj: CliState,
    event_file: Path,
    now: float,
    mode: str,
    engine: str,
    opa_url: str | None,
    policy_dir: Path | None,
) -> int:
    """Body of ``enforcer decide``: returns the exit code."""
    from enforcer.intake import normalise
    from enforcer.model import Ignored
    from enforcer.policy.embedded import EngineMissing
    from enforcer.ports import AuditWriteError, EngineError
    from enforcer.wiring.local import local_enforcer

    try:
        request = normalise(read_event(event_file))
    except InputError as exc:
        click.echo(f"error: {exc.code}: {exc}", err=True)
        return 2
    if isinstance(request, Ignored):
        click.echo(json.dumps(request.to_dict()))
        return 0
    try:
        enforcer = local_enforcer(obj, mode=mode, engine=engine, opa_url=opa_url, policy_dir=policy_dir)
    except InputError as exc:
        click.echo(f"error: {exc.code}: {exc}", err=True)
        return 2
    except (EngineError, EngineMissing) as exc:  # a policy that does not compile, or no engine
        click.echo(f"error: POLICY_LOAD_ERROR: {' '.join(str(exc).split())[:300]}", err=True)
        return 2
    except AuditWriteError as exc:  # disk full, read-only, locked, broken chain: one line, exit 1
        click.echo(f"error: {exc.code}: launch treated as denied: {_one_line(exc)}", err=True)
        return 1
    try:
        outcome = enforcer.enforce(request, now)
    except AuditWriteError as exc:
        click.echo(
            f"error: {exc.code}: audit log write failed, launch treated as denied: {_one_line(exc)}", err=True
        )
        _close_quietly(enforcer)
        return 1
    try:
        close = getattr(enforcer.audit, "close", None)
        if close is not None:
            close()  # signs a checkpoint over the new chain head
    except AuditWriteError as exc:  # the record is written; only the checkpoint failed
        click.echo(f"warning: {exc.code}: checkpoint not written: {_one_line(exc)}", err=True)
    decision: Decision = outcome.decision
    doc = decision.to_dict()
    if outcome.duplicate and outcome.receipt is not None:
        doc["duplicate_of"] = outcome.receipt.decision_id
    click.echo(json.dumps(doc, indent=2))
    return EXIT_FOR_EFFECT[decision.effect]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _close_quietly(enforcer: object) -> None:
    close = getattr(getattr(enforcer, "audit", None), "close", None)
    if close is not None:
        with contextlib.suppress(Exception):  # the write already failed and was reported in one line
            close()
