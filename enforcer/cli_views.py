"""Bodies of the core CLI commands: rendering (rich tables) and exit-code mapping."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from enforcer.cli_common import CliState
from enforcer.intake.parse import DEFAULT_MAX_BYTES
from enforcer.model import AccountOrigin, Decision, InputError

EXIT_FOR_EFFECT = {"allow": 0, "audit": 0, "deny": 3}


def catalog_table(chip_class: str | None, show_all: bool, as_json: bool) -> None:
    """Print the bundled catalogue as a rich table (or JSON lines)."""
    from enforcer.chips import default_catalog

    cat = default_catalog()
    table = Table(title="Instance types by ECCN 3A090 chip class")
    for col in ("instance type", "accelerators", "class", "total TPP"):
        table.add_column(col)
    for itype in cat.known_types():
        c = cat.classify(itype)
        if not c.accelerators and not show_all:
            continue
        if chip_class and c.chip_class != chip_class:
            continue
        if as_json:
            click.echo(json.dumps(c.to_dict()))
            continue
        accs = ", ".join(f"{a.count:g}x {a.model}" for a in c.accelerators) or "-"
        table.add_row(itype, accs, c.chip_class, f"{c.total_tpp:,.0f}")
    if not as_json:
        Console().print(table)


def accounts_table(accounts: list[AccountOrigin]) -> None:
    """Print the account directory as a table."""
    table = Table(title="Account directory")
    for col in ("account", "name", "country", "HQ", "parent HQ", "KYC", "reseller"):
        table.add_column(col)
    for a in accounts:
        table.add_row(
            a.account_id,
            a.name or "",
            a.country or "",
            a.hq_country or "",
            a.parent_hq_country or "",
            a.kyc,
            a.reseller or "",
        )
    Console().print(table)


def read_event(path: Path) -> object:
    """Read and parse one event file (``-`` for stdin), bounded in size."""
    from enforcer.intake import parse_event_bytes

    try:
        raw = sys.stdin.buffer.read(DEFAULT_MAX_BYTES + 1) if str(path) == "-" else _read_bounded(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "BAD_INPUT") from exc
    return parse_event_bytes(raw, DEFAULT_MAX_BYTES)


def _read_bounded(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(DEFAULT_MAX_BYTES + 1)


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
    from enforcer.wiring import local_enforcer

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
