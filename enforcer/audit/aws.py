"""AWS audit store: DynamoDB for the live chain, S3 Object Lock for sealed, immutable copies.

DynamoDB table (partition key ``pk``, string):

- ``HEAD``: ``seq`` (next sequence number = records so far), ``hash`` (hash of the last record),
  ``sealed_seq`` / ``sealed_hash`` (last record copied to S3, -1 / GENESIS when none).
- ``REC#<seq>``: one item per record: ``seq``, ``hash``, ``prev_hash``, ``line`` (the exact
  canonical line, without its newline), ``decision_id``.
- ``EVT#<sha256(source:event_id)[:32]>``: idempotency item: ``seq``, ``hash``, ``decision_id``.

An append is one ``TransactWriteItems``: update ``HEAD`` on condition ``seq = :expected`` (or put
it on ``attribute_not_exists`` for the first record), put ``REC#n`` and ``EVT#…`` on
``attribute_not_exists(pk)``. A writer that loses a race re-reads the head and retries with
jittered exponential backoff, so concurrent writers never fork nor lose the chain; a cancelled
``EVT`` condition means the event was already logged (duplicate receipt).

S3 (bucket with Object Lock, default COMPLIANCE retention): ``seal()`` writes the records since
the last seal as ``<prefix>segments/<first:012d>-<last:012d>.jsonl`` and a signed checkpoint over
the last one as ``<prefix>checkpoints/<last:012d>.json``, both with an explicit COMPLIANCE
retention. ``verify_aws`` (``enforcer.audit.aws_verify``) reads everything back and checks the
chain, the S3 copies and the checkpoint signatures; ``create_audit_resources``
(``enforcer.audit.aws_setup``) creates the table and the bucket.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from enforcer.audit.aws_items import DEFAULT_RETENTION_DAYS, HEAD, evt_pk, num, rec_pk, string
from enforcer.audit.chain import GENESIS, seal_record
from enforcer.audit.record import build_record
from enforcer.audit.signing import Signer
from enforcer.audit.store_support import record_event_key, utc_now
from enforcer.aws_errors import error_code
from enforcer.model import Decision
from enforcer.ports import AuditReceipt, AuditWriteError

if TYPE_CHECKING:
    from enforcer.audit.aws_setup import create_audit_resources
    from enforcer.audit.aws_verify import verify_aws

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "HEAD",
    "AwsAuditStore",
    "SideOpRefused",
    "create_audit_resources",
    "verify_aws",
]


def __getattr__(name: str) -> Any:
    """``verify_aws`` and ``create_audit_resources``, imported when asked for: a cold start only writes."""
    if name == "verify_aws":
        from enforcer.audit.aws_verify import verify_aws

        return verify_aws
    if name == "create_audit_resources":
        from enforcer.audit.aws_setup import create_audit_resources

        return create_audit_resources
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Transaction errors retried with backoff (the record was not written).
_RETRYABLE = (
    "TransactionConflictException",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
)


class SideOpRefused(AuditWriteError):
    """A side operation of the transaction failed its condition (e.g. a cap counter): nothing written.

    ``indexes`` are the positions in ``side_ops`` that were refused.
    """

    def __init__(self, indexes: list[int]) -> None:
        super().__init__(f"side operation(s) {indexes} refused their condition")
        self.indexes = indexes


_rec_pk, _evt_pk, _n, _s = rec_pk, evt_pk, num, string


class AwsAuditStore:
    """Decision log in DynamoDB (chain) and S3 Object Lock (sealed segments, checkpoints).

    Parameters
    ----------
    dynamodb_client
        boto3 DynamoDB client.
    table
        Table name (see ``create_audit_resources``).
    s3_client
        boto3 S3 client.
    bucket
        Bucket with Object Lock enabled.
    signer
        Checkpoint signer (``KmsSigner`` in production).
    salt
        Masking salt for personal data; None uses a random per-process salt.
    retention_days
        COMPLIANCE retention of sealed objects.
    seal_every
        Seal automatically after every this many records (None: only explicit ``seal()``).
    prefix
        Key prefix in the bucket.
    max_attempts
        Conflict retries before giving up with AuditWriteError.
    clock
        RFC 3339 time for checkpoints.
    """

    def __init__(
        self,
        dynamodb_client: Any,
        table: str,
        s3_client: Any,
        bucket: str,
        signer: Signer,
        *,
        salt: bytes | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        seal_every: int | None = 1000,
        prefix: str = "audit/",
        max_attempts: int = 60,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.ddb = dynamodb_client
        self.table = table
        self.s3 = s3_client
        self.bucket = bucket
        self.signer = signer
        self.salt = salt
        self.retention_days = retention_days
        self.seal_every = seal_every
        self.prefix = prefix
        self.max_attempts = max_attempts
        self.clock = clock
        self.conflicts = 0  # lost races, for metrics
        self.seal_pending = False  # a seal failed or was deferred: run by the next write or retry_seal()
        self.seal_failures = 0
        # (next_seq, last_hash) after this container's last append: a warm writer tries it first and
        # reads the HEAD item only when the conditional write says another writer moved it.
        self._head_cache: tuple[int, str] | None = None

    # ------------------------------------------------------------------ reads
    def _get(self, pk: str) -> dict[str, Any] | None:
        resp = self.ddb.get_item(TableName=self.table, Key={"pk": _s(pk)}, ConsistentRead=True)
        item = resp.get("Item")
        return item if isinstance(item, dict) else None

    def head(self) -> tuple[int, str, int, str]:
        """Return ``(next_seq, last_hash, sealed_seq, sealed_hash)`` from the HEAD item."""
        item = self._get(HEAD)
        if item is None:
            return 0, GENESIS, -1, GENESIS
        return (
            int(item["seq"]["N"]),
            item["hash"]["S"],
            int(item.get("sealed_seq", {"N": "-1"})["N"]),
            item.get("sealed_hash", {"S": GENESIS})["S"],
        )

    def _duplicate(self, evt_pk: str) -> AuditReceipt | None:
        item = self._get(evt_pk)
        if item is None:
            return None
        did = item.get("decision_id", {}).get("S")
        seq = int(item["seq"]["N"])
        return AuditReceipt(
            seq=seq, hash=item["hash"]["S"], duplicate=True, decision_id=did, record=self.read_record(seq)
        )

    def read_record(self, seq: int) -> dict[str, Any] | None:
        """The logged record ``seq`` (parsed), or None when it is missing or unreadable."""
        item = self._get(_rec_pk(seq))
        try:
            rec = json.loads(item["line"]["S"]) if item is not None else None
        except (KeyError, TypeError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    # ------------------------------------------------------------------ write
    def write(
        self,
        decision: Decision,
        action: str | None = None,
        *,
        side_ops: list[dict[str, Any]] | None = None,
        defer_seal: bool = False,
    ) -> AuditReceipt:
        """Append the record of ``decision`` (see ``ports.AuditSink.write``).

        Parameters
        ----------
        decision, action
            What to log.
        side_ops
            Extra ``TransactWriteItems`` operations committed atomically with the record (the
            guard's remediation state and per-account counters): one write on the deny path. When
            one of them fails its condition, :class:`SideOpRefused` is raised and nothing is written.
        defer_seal
            A seal due now (every ``seal_every`` records, or one pending after a failure) is not run
            by this write: :attr:`seal_pending` is set and the caller runs :meth:`retry_seal` (the
            guard: after the stop, beside the follow-up calls, so S3 and KMS never delay a stop).

        A seal failure (S3 Object Lock copy or KMS checkpoint signature) does not fail the write:
        the receipt carries ``seal_error``, :attr:`seal_pending` is set and :meth:`retry_seal`
        (called by the guard after acting, and by every later write) seals again.

        Raises
        ------
        AuditWriteError
            On any failure, including exhausting the conflict retries.
        """
        try:
            return self._write(decision, action, side_ops or [], defer_seal)
        except AuditWriteError:
            raise
        except Exception as exc:
            raise AuditWriteError(f"audit write to DynamoDB failed: {type(exc).__name__}: {exc}") from exc

    def _write(
        self, decision: Decision, action: str | None, side_ops: list[dict[str, Any]], defer_seal: bool = False
    ) -> AuditReceipt:
        record = build_record(decision, action, salt=self.salt)
        key = record_event_key(record)
        evt_pk = _evt_pk(key) if key else None
        did = str(record["decision_id"])
        # A redelivered event fails the EVT item's condition inside the transaction; only then is the
        # earlier receipt read, so a first delivery costs one write when the head is cached.
        cached = self._head_cache
        for attempt in range(self.max_attempts):
            if attempt == 0 and cached is not None:
                first, (seq, prev) = False, cached
            else:
                head = self._get(HEAD)
                first = head is None
                seq, prev = (0, GENESIS) if head is None else (int(head["seq"]["N"]), head["hash"]["S"])
                # overdue by the chain itself: a seal that fell due in a container that died before
                # running it (a deferred seal is pending only in that container's memory)
                sealed_at = -1 if head is None else int(head.get("sealed_seq", {"N": "-1"})["N"])
                if self.seal_every and seq - 1 - sealed_at >= self.seal_every:
                    self.seal_pending = True
            sealed = seal_record(record, seq, prev)
            items = [self._head_op(first, seq, sealed.hash)]
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            "pk": _s(_rec_pk(seq)),
                            "seq": _n(seq),
                            "hash": _s(sealed.hash),
                            "prev_hash": _s(prev),
                            "line": _s(sealed.line[:-1].decode("utf-8")),
                            "decision_id": _s(did),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
            if evt_pk is not None:
                items.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "pk": _s(evt_pk),
                                "seq": _n(seq),
                                "hash": _s(sealed.hash),
                                "decision_id": _s(did),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            n_own = len(items)
            items.extend(side_ops)
            try:
                self.ddb.transact_write_items(TransactItems=items)
            except Exception as exc:
                code = error_code(exc)
                if code == "TransactionCanceledException":
                    reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
                    if (
                        evt_pk is not None
                        and len(reasons) > 2
                        and reasons[2].get("Code") == "ConditionalCheckFailed"
                    ):
                        dup = self._duplicate(evt_pk)
                        if dup is not None and dup.decision_id == did and dup.hash == sealed.hash:
                            # Our own write: its response was lost and the SDK (or we) sent it again.
                            # Not a duplicate: the caller acts on it as on any first write.
                            self._head_cache = None
                            return AuditReceipt(seq=dup.seq, hash=dup.hash, duplicate=False, decision_id=did)
                        if dup is not None:
                            return dup
                    refused = [
                        i - n_own
                        for i, r in enumerate(reasons)
                        if i >= n_own and isinstance(r, dict) and r.get("Code") == "ConditionalCheckFailed"
                    ]
                    if refused and not any(
                        isinstance(r, dict) and r.get("Code") == "ConditionalCheckFailed"
                        for r in reasons[:n_own]
                    ):
                        raise SideOpRefused(refused) from exc
                elif code not in _RETRYABLE:
                    raise
                self._head_cache = None
                if attempt == 0 and cached is not None:
                    continue  # the cached head was stale: re-read it without backing off
                self.conflicts += 1
                time.sleep(random.uniform(0, min(0.5, 0.005 * (2 ** min(attempt, 7)))))
                continue
            self._head_cache = (seq + 1, sealed.hash)
            receipt = AuditReceipt(seq=seq, hash=sealed.hash, duplicate=False, decision_id=did)
            if self.seal_pending or (self.seal_every and (seq + 1) % self.seal_every == 0):
                if defer_seal:
                    self.seal_pending = True  # the caller seals (retry_seal) once it has acted
                else:
                    receipt.seal_error = self.retry_seal()
            return receipt
        raise AuditWriteError(f"audit write gave up after {self.max_attempts} conflicting attempts")

    def retry_seal(self) -> str | None:
        """Seal what is unsealed; on failure keep :attr:`seal_pending` and return the error (never raises)."""
        try:
            self.seal()
        except Exception as exc:
            self.seal_pending = True
            self.seal_failures += 1
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        self.seal_pending = False
        return None

    def _head_op(self, first: bool, seq: int, new_hash: str) -> dict[str, Any]:
        if first:
            return {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "pk": _s(HEAD),
                        "seq": _n(1),
                        "hash": _s(new_hash),
                        "sealed_seq": _n(-1),
                        "sealed_hash": _s(GENESIS),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": _s(HEAD)},
                "UpdateExpression": "SET #s = :next, #h = :hash",
                "ConditionExpression": "#s = :expected",
                "ExpressionAttributeNames": {"#s": "seq", "#h": "hash"},
                "ExpressionAttributeValues": {
                    ":next": _n(seq + 1),
                    ":hash": _s(new_hash),
                    ":expected": _n(seq),
                },
            }
        }

    # ------------------------------------------------------------------ seal
    def seal(self) -> dict[str, Any] | None:
        """Copy the records since the last seal to S3 (Object Lock) with a signed checkpoint.

        Returns
        -------
        dict or None
            ``{"segment": key, "checkpoint_key": key, "checkpoint": {...}, "first": n, "last": m}``,
            or None when there was nothing to seal or another writer sealed first.

        Raises
        ------
        AuditWriteError
            When the records do not chain, or an AWS call fails.
        """
        from enforcer.audit.aws_seal import seal_store  # the chain checker: not needed to write

        try:
            return seal_store(self)
        except AuditWriteError:
            raise
        except Exception as exc:
            raise AuditWriteError(f"audit seal failed: {type(exc).__name__}: {exc}") from exc

    def flush(self) -> None:
        """Seal everything written so far."""
        while self.seal() is not None:
            pass

    def close(self) -> None:
        """Same as ``flush``."""
        self.flush()
