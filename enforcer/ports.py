"""Interfaces between the pipeline and its pluggable backends.

Each backend (local files, DynamoDB, Organizations tags, embedded OPA, OPA over REST,
local or AWS audit store) implements one of these protocols. The pipeline only sees these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from enforcer.model import AccountOrigin, AttestationResult, Decision


class EngineError(RuntimeError):
    """The policy engine could not produce a decision (timeout, HTTP error, eval error, undefined)."""


@runtime_checkable
class AccountDirectory(Protocol):
    """Account id -> origin (country, HQ, ultimate parent HQ, KYC, reseller)."""

    def get(self, account_id: str) -> AccountOrigin | None:
        """Return the origin of ``account_id`` or None when the account is unknown."""
        ...


@runtime_checkable
class AttestationProvider(Protocol):
    """Finds and verifies the reseller attestation that covers an account."""

    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        """Return the status (and verified claims) of the best attestation for ``origin``.

        ``now`` is epoch seconds; ``ref`` is an optional attestation id (jti) carried by the launch.
        Must never raise for bad tokens: it returns a status instead.
        """
        ...


@runtime_checkable
class PolicyEngine(Protocol):
    """Evaluates ``data.gpu.launch.decision`` for an input document."""

    name: str
    revision: str

    def evaluate(self, input_doc: dict[str, Any]) -> dict[str, Any]:
        """Return ``{"effect": ..., "reasons": [{code, message, severity}]}``; raise EngineError."""
        ...


@dataclass(slots=True)
class AuditReceipt:
    """What an audit store says after a write."""

    seq: int
    hash: str
    duplicate: bool = False
    decision_id: str | None = None
    #: On a duplicate: the record logged for the event (what the product must act on and answer).
    record: dict[str, Any] | None = None
    #: The record was written but sealing it (checkpoint signature, Object Lock copy) failed; the
    #: store retries the seal later. Never a reason not to act on the written record.
    seal_error: str | None = None


class AuditWriteError(RuntimeError):
    """The audit record could not be written; in enforce mode the decision fails closed.

    ``code`` names the cause for one-line CLI errors: ``AUDIT_DISK_FULL``, ``AUDIT_READ_ONLY``,
    ``AUDIT_LOCKED``, ``AUDIT_CHAIN_BROKEN`` or ``AUDIT_WRITE_FAILED`` (anything else).
    """

    def __init__(self, message: str, code: str = "AUDIT_WRITE_FAILED") -> None:
        super().__init__(message)
        self.code = code


@runtime_checkable
class AuditSink(Protocol):
    """Append-only decision log with hash chain and idempotency by trigger event id."""

    def write(self, decision: Decision, action: str | None = None) -> AuditReceipt:
        """Append the record for ``decision`` (before any action is taken).

        When the trigger's event id was already logged, write nothing and return the
        earlier receipt with ``duplicate=True``. Raise AuditWriteError on failure.
        """
        ...
