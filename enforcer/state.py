"""The local state directory and the backend choice shared by the CLI, the local wiring and the demo.

Layout under the state directory: ``accounts.json`` (account directory), ``registry/`` (resellers,
keys, attestations, licences), ``audit/`` (decision log and checkpoints), ``keys/`` (local signing keys),
``screening/`` and the compute ledger.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
