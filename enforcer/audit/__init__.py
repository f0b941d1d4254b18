"""Tamper-evident decision log: records, hash chain, signed checkpoints, stores, verification.

Modules: ``record`` (record building, masking, RFC 8785), ``chain`` (hash chain lines),
``signing`` (checkpoints, Ed25519 / KMS signers), ``local`` (``LocalAuditStore``), ``aws``
(``AwsAuditStore``), ``verify`` (``open_verify``), ``query`` / ``report`` / ``cli`` (review),
``defaults`` (key locations), ``bench`` (throughput).

Both stores implement ``enforcer.ports.AuditSink``.
"""

from enforcer.audit.aws import AwsAuditStore, create_audit_resources, verify_aws
from enforcer.audit.chain import GENESIS
from enforcer.audit.defaults import default_public_key, local_signer, open_local_store
from enforcer.audit.local import LocalAuditStore
from enforcer.audit.record import build_record
from enforcer.audit.signing import KmsSigner, LocalEd25519Signer, Signer, verify_checkpoint
from enforcer.audit.verify import VerifyIssue, VerifyReport, open_verify

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
