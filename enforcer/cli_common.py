"""Shared CLI plumbing: the state directory, clock overrides and error reporting."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from enforcer.policy.factory import ENGINES

DEFAULT_STATE = ".enforcer"


@dataclass(slots=True)
class CliState:
    """Global CLI options, passed to every sub-command as ``click`` obj.

    Layout under ``state``: ``accounts.json`` (account directory), ``registry/`` (resellers,
    keys, attestations), ``audit/`` (decision log and checkpoints), ``keys/`` (local signing keys).
    """

    state: Path = field(default_factory=lambda: Path(os.environ.get("ENFORCER_STATE", DEFAULT_STATE)))
    #: ``local`` (the state directory) or ``aws`` (the deployed stack's tables, bucket and key)
    backend: str = field(default_factory=lambda: os.environ.get("ENFORCER_BACKEND", "local"))
    #: CloudFormation stack of infra/template.yaml (``--backend aws``)
    stack: str = field(default_factory=lambda: os.environ.get("ENFORCER_STACK", "gpu-enforcer"))
    aws_backend: Any = None

    def aws(self) -> Any:
        """The :class:`enforcer.backend.AwsBackend` of ``stack`` (created once)."""
        if self.aws_backend is None:
            from enforcer.backend import AwsBackend

            self.aws_backend = AwsBackend(self.stack)
        return self.aws_backend

    @property
    def is_aws(self) -> bool:
        return self.backend == "aws"

    @property
    def accounts_file(self) -> Path:
        return self.state / "accounts.json"

    @property
    def registry_dir(self) -> Path:
        return self.state / "registry"

    @property
    def audit_dir(self) -> Path:
        return self.state / "audit"

    @property
    def keys_dir(self) -> Path:
        return self.state / "keys"


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
