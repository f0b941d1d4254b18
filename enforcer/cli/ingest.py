"""``enforcer audit ingest``: run the endpoint OPA's ``decision_logs`` plugin uploads to.

Point OPA at it with a service and ``decision_logs.service``::

    services: {enforcer: {url: "http://127.0.0.1:8282"}}
    decision_logs: {service: enforcer, reporting: {min_delay_seconds: 1, max_delay_seconds: 5}}

The command prints one JSON line with the URL it listens on, then serves until SIGTERM or Ctrl-C, when it
writes a checkpoint and prints its counters. Exit 2 for a bad address or token file.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from enforcer.cli.common import CliState, fail

MAX_TOKEN_BYTES = 4096


def _address(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command("ingest")
@click.option(
    "--listen", default="127.0.0.1:8282", show_default=True, help="HOST:PORT (port 0: any free one)."
)
@click.option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ENFORCER_INGEST_TOKEN_FILE",
    default=None,
    help="Require 'Authorization: Bearer <token>' (OPA: services.X.credentials.bearer.token).",
)
@click.pass_context
def ingest_command(ctx: click.Context, listen: str, token_file: Path | None) -> None:
    """Accept OPA decision-log uploads (POST /logs, gzipped JSON arrays) into the chained audit log."""
    from enforcer.audit.defaults import open_local_store
    from enforcer.audit.ingest import IngestServer
    from enforcer.ports import AuditWriteError

    state = ctx.find_object(CliState) or CliState()
    token = None
    if token_file is not None:
        try:
            if token_file.stat().st_size > MAX_TOKEN_BYTES:
                fail(f"{token_file}: token file larger than {MAX_TOKEN_BYTES} bytes")
            token = token_file.read_text().strip()
        except OSError as exc:
            fail(f"cannot read token file {token_file}: {exc.strerror}")
        if not token:
            fail(f"{token_file}: token file is empty")
    address = _address(listen)
    if token is None and not _loopback(address[0]):
        fail(
            f"--listen {listen} is reachable from other hosts: give --token-file (anyone could log decisions)"
        )
    try:
        store = open_local_store(state.audit_dir, state.keys_dir)
    except AuditWriteError as exc:
        fail(str(exc))
    try:
        server = IngestServer(address, store, token)
    except OSError as exc:
        store.close()
        fail(f"cannot listen on {listen}: {exc.strerror}")
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    worker.start()
    click.echo(json.dumps({"listening": server.url, "audit_dir": str(state.audit_dir), "pid": os.getpid()}))
    sys.stdout.flush()
    stop.wait()
    server.shutdown()
    server.server_close()
    store.close()
    s = server.stats
    click.echo(
        json.dumps(
            {
                "batches": s.batches,
                "events": s.events,
                "duplicates": s.duplicates,
                "ignored": s.ignored,
                "rejected": s.rejected,
            }
        )
    )
