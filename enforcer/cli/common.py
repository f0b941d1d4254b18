"""Shared CLI plumbing: the state directory, clock overrides, event reading and error reporting."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from enforcer.model import InputError
from enforcer.policy.factory import ENGINES
from enforcer.state import DEFAULT_STATE, CliState

__all__ = [
    "DEFAULT_STATE",
    "FORMATS",
    "CliState",
    "Failed",
    "emit_records",
    "engine_options",
    "fail",
    "format_options",
    "parse_now",
    "plain_table",
    "read_event",
    "reads_state",
    "require_state",
]


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


class Failed(SystemExit):
    """The exit of :func:`fail`: a ``SystemExit`` (no ``except Exception`` swallows it) with its message."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(code)
        self.message = message


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit with ``code`` (no traceback).

    Raises
    ------
    Failed
        Always; a ``SystemExit`` carrying ``message`` (``audit verify --json`` reports it as JSON).
    """
    click.echo(f"error: {message}", err=True)
    raise Failed(message, code)


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
    from enforcer.intake.parse import DEFAULT_MAX_BYTES  # the intake loads on use: --help stays quick

    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(DEFAULT_MAX_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                raw = fh.read(DEFAULT_MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", "BAD_INPUT") from exc
    return parse_event_bytes(raw, DEFAULT_MAX_BYTES)


# -- output formats ------------------------------------------------------------------------------
#: ``--format`` values of every command that prints records (docs/cli.md).
FORMATS = ("table", "json", "jsonl")
Rows = list[dict[str, Any]]


def format_options(default: str = "table", json_alias: str = "json") -> Callable[[Any], Any]:
    """Give a record-printing command ``--format table|json|jsonl`` and the hidden ``--json`` alias.

    The command function receives ``fmt`` (one of :data:`FORMATS`). Put the decorator right under
    ``@<group>.command``. ``--json`` keeps what it printed before ``--format`` existed:
    ``json_alias`` (``json`` for most, ``jsonl`` where ``--json`` printed JSON lines).

    Parameters
    ----------
    default : str
        The format without ``--format`` (what the command printed before: keeps scripts working).
    json_alias : str
        The format ``--json`` selects.
    """

    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, fmt: str | None, as_json: bool, **kwargs: Any) -> Any:
            if as_json and fmt not in (None, json_alias):
                raise click.UsageError(f"--json means --format {json_alias}; it contradicts --format {fmt}")
            chosen = fmt or (json_alias if as_json else default)
            return fn(*args, fmt=chosen, **kwargs)

        wrapper = click.option(
            "--json", "as_json", is_flag=True, hidden=True, help=f"Same as --format {json_alias}."
        )(wrapper)
        wrapper = click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default=None,
            help=f"table, json (one array) or jsonl (one object per line). [default: {default}]",
        )(wrapper)
        return wrapper

    return decorate


def emit_records(rows: Rows, fmt: str, table: Callable[[Rows], None]) -> None:
    """Print ``rows`` as ``fmt``: ``table`` calls ``table(rows)``, ``json`` one array, ``jsonl`` lines."""
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    elif fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, separators=(",", ":"), default=str))
    else:
        table(rows)


def plain_table(title: str, columns: Sequence[str]) -> Callable[[Rows], None]:
    """A ``table`` renderer for :func:`emit_records` showing ``columns`` of each row (lists joined)."""

    def render(rows: Rows) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"{title} ({len(rows)})")
        for col in columns:
            table.add_column(col.replace("_", " "), overflow="fold")
        for row in rows:
            table.add_row(*(escape(_cell(row.get(col))) for col in columns))
        console = Console()
        (console if console.is_terminal else Console(width=160)).print(table)

    return render


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


# -- state folder ------------------------------------------------------------------------------
def require_state(obj: CliState | None = None) -> CliState:
    """The command's :class:`CliState`; exit 2 (one line) when its local state folder does not exist.

    Commands that only read state call this first, so a mistyped ``--state`` is an error instead
    of an empty log, directory or registry. ``--backend aws`` reads the stack and is not checked.
    """
    state = obj if obj is not None else click.get_current_context().find_object(CliState)
    if state is None:
        state = CliState()
    if not state.is_aws and not state.state.is_dir():
        fail(
            f"no state folder at {state.state} (give --state DIR or ENFORCER_STATE; "
            "`enforcer account add` or `enforcer decide` creates it)"
        )
    return state


def reads_state(fn: Any) -> Any:
    """Decorator: the command reads the state folder; a missing one is an error (exit 2)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        require_state()
        return fn(*args, **kwargs)

    return wrapper
