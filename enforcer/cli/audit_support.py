"""Shared plumbing of the ``enforcer audit`` commands: which log, is it verified, read its records.

Exit codes: 0 success; 1 the log does not verify; 2 bad input (one line on stderr).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from enforcer.audit.defaults import default_public_key
from enforcer.audit.query import LoggedRecord, iter_records
from enforcer.audit.signing import MAX_PEM_BYTES, CheckpointError, load_public_key
from enforcer.audit.verify import Anchor, VerifyReport, load_anchor, open_verify
from enforcer.cli.common import CliState, fail, parse_now

EFFECTS = ("allow", "deny", "audit")
_T = TypeVar("_T")


def state_of(ctx: click.Context) -> CliState:
    obj = ctx.find_object(CliState)
    return obj if obj is not None else CliState()


def _load_pem(path: str | None) -> bytes | None:
    if path is None:
        return None
    p = Path(path)
    try:
        if p.stat().st_size > MAX_PEM_BYTES:
            fail(f"{path}: public key file too large")
        pem = p.read_bytes()
        load_public_key(pem)
    except OSError as exc:
        fail(f"cannot read public key {path}: {exc.strerror or exc}")
    except CheckpointError as exc:
        fail(f"{path}: {exc}")
    return pem


_MAX_ANCHOR_BYTES = 8192


def _anchors(files: tuple[str, ...], specs: tuple[str, ...], pem: bytes | None) -> list[Anchor]:
    """Trusted anchors from kept checkpoint files and ``SEQ:HASH`` options (exit 2 when unusable)."""
    out: list[Anchor] = []
    for f in files:
        try:
            p = Path(f)
            if p.stat().st_size > _MAX_ANCHOR_BYTES:
                fail(f"{f}: trusted checkpoint file too large")
            text = p.read_text(encoding="utf-8").strip().splitlines()
            data = json.loads(text[-1]) if text else None
            out.append(load_anchor(data, f"trusted checkpoint {p.name}", pem))
        except OSError as exc:
            fail(f"cannot read trusted checkpoint {f}: {exc.strerror or exc}")
        except (ValueError, UnicodeDecodeError):
            fail(f"{f}: not a checkpoint (JSON with seq and hash)")
        except CheckpointError as exc:
            fail(str(exc))
    for spec in specs:
        seq_s, _, h = spec.partition(":")
        try:
            out.append(load_anchor({"seq": int(seq_s), "hash": h}, f"anchor {seq_s}", None))
        except (ValueError, CheckpointError):
            fail(f"--anchor {spec[:80]!r}: expected SEQ:HASH (64 lowercase hex)")
    return out


def verify_log(
    state: CliState,
    public_key: str | None,
    deep: bool,
    trusted: tuple[str, ...] = (),
    anchor_specs: tuple[str, ...] = (),
) -> VerifyReport:
    pem = _load_pem(public_key)
    pinned = pem is not None
    anchors = _anchors(trusted, anchor_specs, pem)
    if state.is_aws:
        report: VerifyReport = aws_call(lambda: state.aws().audit_source().verify(pem, anchors))
        return report
    if pem is None:
        pem = default_public_key(state.keys_dir)
    return open_verify(state.audit_dir, pem, deep=deep, anchors=anchors, pinned_key=pinned)


UNVERIFIED_OPT = click.option(
    "--unverified",
    is_flag=True,
    help="Read a log that does not verify anyway (a loud warning is printed).",
)


def aws_call(fn: Callable[[], _T]) -> _T:
    """Run a read of the AWS store; any AWS or configuration error is one line and exit 2."""
    from enforcer.aws_errors import error_code
    from enforcer.model import InputError

    try:
        return fn()
    except InputError as exc:
        fail(str(exc))
    except Exception as exc:
        fail(f"cannot read the AWS audit store: {error_code(exc) or type(exc).__name__}: {str(exc)[:200]}")


def read_records(state: CliState, errors: list[str] | None = None) -> Iterator[LoggedRecord]:
    """The log's records in chain order: the state directory, or the stack's store (--backend aws)."""
    if state.is_aws:
        yield from aws_call(lambda: list(state.aws().audit_source().iter_records(errors)))
        return
    yield from iter_records(state.audit_dir, errors)


def read_records_marked(state: CliState, unreadable: dict[int, str]) -> Iterator[LoggedRecord]:
    """:func:`read_records`, with an empty stand-in for every local line that cannot be read.

    ``unreadable`` is filled with position -> why for those stand-ins, so that a report lists each
    as a failed row in its place instead of leaving it out (an insider who breaks a deny's line
    must not make it vanish from the rows). The AWS store reads its own way (no stand-ins).
    """
    if state.is_aws:
        yield from read_records(state)
        return
    from enforcer.audit import layout
    from enforcer.audit.chain import LineError, parse_line

    pos = 0
    for _num, path in layout.segment_files(state.audit_dir):
        with path.open("rb") as fh:
            for n, raw in layout.bounded_lines(fh):
                try:
                    rec, computed, stated = parse_line(raw)
                except LineError as exc:
                    unreadable[pos] = f"unreadable record at {path.name}:{n}: {str(exc)[:200]}"
                    yield LoggedRecord(path.name, n, {}, None)
                else:
                    rec["hash"] = stated
                    yield LoggedRecord(path.name, n, rec, computed)
                pos += 1


def has_log(state: CliState) -> bool:
    return state.is_aws or state.audit_dir.is_dir()


def source_name(state: CliState) -> str:
    return (
        str(aws_call(lambda: state.aws().audit_source().location)) if state.is_aws else str(state.audit_dir)
    )


def require_verified(state: CliState, unverified: bool) -> None:
    """Refuse (exit 1) to read a log that does not verify, unless ``--unverified``."""
    if not has_log(state):
        return
    report = verify_log(state, None, False)
    if report.ok:
        return
    if not unverified:
        click.echo(
            f"error: the audit log does not verify ({report.summary()}); "
            "run `enforcer audit verify`, or pass --unverified to read it anyway",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"WARNING: THE AUDIT LOG DOES NOT VERIFY ({report.summary()}); what follows may be tampered with",
        err=True,
    )


def closed_stdout() -> NoReturn:
    """The reader of stdout went away (e.g. ``| head``): stop quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def parse_opt_time(value: str | None) -> float | None:
    return None if value is None else parse_now(value)
