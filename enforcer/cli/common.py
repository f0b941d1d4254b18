"""Shared CLI plumbing: the state directory, clock overrides, event reading and error reporting."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from enforcer.intake.parse import DEFAULT_MAX_BYTES
from enforcer.model import InputError
from enforcer.policy.factory import ENGINES
from enforcer.state import DEFAULT_STATE, CliState

__all__ = ["DEFAULT_STATE", "CliState", "engine_options", "fail", "parse_now", "read_event"]


def parse_now(value: str | None) -> float:
    """Parse an RFC 3339 timestamp (``--now``) into epoch seconds; None means the real clock.

    Raises
    ------
    click.BadParameter
        When the value is not RFC 3339.
    """
    if value is None:
        return datetime.now(UTC).timestamp()
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"not an RFC 3339 timestamp: {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit with ``code`` (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


ENGINE_OPTS = [
    click.option(
        "--engine",
        type=click.Choice(ENGINES),
        envvar="ENFORCER_ENGINE",
        default="embedded",
        show_default=True,
        help="Policy engine.",
    ),
    click.option("--opa-url", envvar="ENFORCER_OPA_URL", default=None, help="OPA server URL (engine opa)."),
    click.option(
        "--policy",
        "policy_dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Policy directory (default: policies/).",
    ),
]


def engine_options(fn: Any) -> Any:
    """Attach ``--engine``, ``--opa-url`` and ``--policy`` to a deciding command."""
    for opt in reversed(ENGINE_OPTS):
        fn = opt(fn)
    return fn


def read_event(path: Path) -> object:
    """Read and parse one event file (``-`` for stdin), bounded in size.

    Raises
    ------
    InputError
        ``BAD_INPUT`` when the file cannot be read, or the intake's code when it is not JSON.
    """
    from enforcer.intake import parse_event_bytes

    try:
        raw = sys.stdin.buffer.read(DEFAULT_MAX_BYTES + 1) if str(path) == "-" else _read_bounded(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "BAD_INPUT") from exc
    return parse_event_bytes(raw, DEFAULT_MAX_BYTES)


def _read_bounded(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(DEFAULT_MAX_BYTES + 1)
