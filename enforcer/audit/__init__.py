"""Tamper-evident decision log: records, hash chain, signed checkpoints, stores, verification.

Files (local store, ``STATE/audit/``): ``segment-000001.jsonl`` … (records, one per line,
rotated by size), ``checkpoints.jsonl`` (signed checkpoints ``{seq, hash, timestamp, key_id,
alg, signature}``), ``index.tsv`` (write-side cache, rebuilt when lost), ``.lock``.
Keys (``STATE/keys/``): ``audit-checkpoint-ed25519.pem`` (created on first use) and its exported
public key ``audit-checkpoint-ed25519.pub.pem`` (``enforcer audit pubkey``), ``audit-salt.key``.
AWS store: DynamoDB items ``HEAD`` / ``REC#<seq>`` / ``EVT#<digest>``; S3 Object Lock objects
``audit/segments/<first>-<last>.jsonl`` and ``audit/checkpoints/<last>.json``.

Modules: ``record`` (record building), ``clean`` (masking), ``jcs`` (RFC 8785 bytes), ``chain``
(hash chain lines), ``signing`` (checkpoints, Ed25519 / KMS signers), ``store_support`` (what both
stores share), ``local`` + ``local_state`` (``LocalAuditStore``), ``aws`` (``AwsAuditStore``),
``verify`` + ``verify_report`` + ``anchors`` (``open_verify``), ``query`` / ``report`` (review),
``defaults`` (key locations), ``layout`` (file names). Throughput is measured in
``benchmarks/audit_bench.py``.

Both stores implement ``enforcer.ports.AuditSink``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enforcer.audit.aws import AwsAuditStore, create_audit_resources, verify_aws
    from enforcer.audit.chain import GENESIS
    from enforcer.audit.defaults import default_public_key, local_signer, open_local_store
    from enforcer.audit.local import LocalAuditStore
    from enforcer.audit.record import build_record
    from enforcer.audit.signing import KmsSigner, LocalEd25519Signer, Signer, verify_checkpoint
    from enforcer.audit.verify import VerifyIssue, VerifyReport, open_verify

#: Public name -> the module defining it, imported on first use (PEP 562): importing one module of
#: the package (the guard's ``record``) does not load every store, verifier and signer (cold start).
_EXPORTS = {
    "AwsAuditStore": "aws",
    "create_audit_resources": "aws",
    "verify_aws": "aws",
    "GENESIS": "chain",
    "default_public_key": "defaults",
    "local_signer": "defaults",
    "open_local_store": "defaults",
    "LocalAuditStore": "local",
    "build_record": "record",
    "KmsSigner": "signing",
    "LocalEd25519Signer": "signing",
    "Signer": "signing",
    "verify_checkpoint": "signing",
    "VerifyIssue": "verify",
    "VerifyReport": "verify",
    "open_verify": "verify",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "GENESIS",
    "AwsAuditStore",
    "KmsSigner",
    "LocalAuditStore",
    "LocalEd25519Signer",
    "Signer",
    "VerifyIssue",
    "VerifyReport",
    "build_record",
    "create_audit_resources",
    "default_public_key",
    "local_signer",
    "open_local_store",
    "open_verify",
    "verify_aws",
    "verify_checkpoint",
]
