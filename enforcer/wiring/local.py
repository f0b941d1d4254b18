"""Assemble an ``Enforcer`` from local state (CLI) with the backends that exist for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enforcer.accounts import LocalAccountDirectory
from enforcer.chips import ChipCatalog
from enforcer.licences import LocalLicenceStore
from enforcer.pipeline import Enforcer, FailPolicy
from enforcer.policy.factory import make_engine
from enforcer.ports import AttestationProvider, AuditSink
from enforcer.state import CliState


def local_attestations(state: CliState) -> AttestationProvider:
    """The attestation provider over the local registry in ``STATE/registry``."""
    from enforcer.attestation import local_provider

    provider: AttestationProvider = local_provider(state.registry_dir)
    return provider


def local_audit(state: CliState) -> AuditSink:
    """The local hash-chained audit store in ``STATE/audit``."""
    from enforcer.audit import open_local_store

    sink: AuditSink = open_local_store(state.audit_dir, state.keys_dir)
    return sink


def local_enforcer(
    state: CliState,
    *,
    mode: str = "enforce",
    engine: str | None = None,
    opa_url: str | None = None,
    policy_dir: Path | None = None,
    with_audit: bool = True,
    fail_policy: FailPolicy = "closed",
    ec2_client: Any = None,
) -> Enforcer:
    """Build the pipeline on the local state directory.

    Parameters
    ----------
    state
        CLI state (paths of the account directory, registry and audit log).
    mode
        ``enforce`` or ``dryrun``.
    with_audit
        False for what-ifs (``replay``), which must never write the log.
    """
    from enforcer.evidence.local import local_ledger, local_observer
    from enforcer.ledger.sink import LedgerAuditSink

    # Evidence, screening and the ledger (issue 14); a what-if gets an empty in-memory ledger.
    ledger = local_ledger(state.state, in_memory=not with_audit)
    audit: AuditSink | None = LedgerAuditSink(local_audit(state), ledger) if with_audit else None
    return Enforcer(
        catalog=ChipCatalog(ec2_client),
        accounts=LocalAccountDirectory(state.accounts_file),
        engine=make_engine(engine, policy_dir, opa_url),
        attestations=local_attestations(state),
        licences=LocalLicenceStore(state.registry_dir / "licences.json"),
        audit=audit,
        observer=local_observer(state.state, ledger),
        mode="dryrun" if mode == "dryrun" else "enforce",
        fail_policy=fail_policy,
    )
