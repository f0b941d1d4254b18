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
retention. ``verify_aws`` reads everything back and checks the chain, the S3 copies and the
checkpoint signatures.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from enforcer.audit.chain import GENESIS, seal_record
from enforcer.audit.local import event_digest, record_event_key, utc_now
from enforcer.audit.record import build_record, canonical
from enforcer.audit.signing import Signer, make_checkpoint
from enforcer.audit.verify import (
    Anchor,
    ChainChecker,
    VerifyIssue,
    VerifyReport,
    anchor_result,
    apply_anchors,
    check_checkpoints,
    finish,
)
from enforcer.aws_errors import error_code
from enforcer.dynamo import create_pk_table
from enforcer.model import Decision
from enforcer.ports import AuditReceipt, AuditWriteError

HEAD = "HEAD"
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


DEFAULT_RETENTION_DAYS = 2557  # seven years
_MAX_SEAL_RECORDS = 10_000


def _rec_pk(seq: int) -> str:
    return f"REC#{seq}"


def _evt_pk(key: str) -> str:
    return "EVT#" + event_digest(key).hex()


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


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
        self.seal_pending = False  # a seal failed: retried by the next write or retry_seal()
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
        self, decision: Decision, action: str | None = None, *, side_ops: list[dict[str, Any]] | None = None
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

        A seal failure (S3 Object Lock copy or KMS checkpoint signature) does not fail the write:
        the receipt carries ``seal_error``, :attr:`seal_pending` is set and :meth:`retry_seal`
        (called by the guard after acting, and by every later write) seals again.

        Raises
        ------
        AuditWriteError
            On any failure, including exhausting the conflict retries.
        """
        try:
            return self._write(decision, action, side_ops or [])
        except AuditWriteError:
            raise
        except Exception as exc:
            raise AuditWriteError(f"audit write to DynamoDB failed: {type(exc).__name__}: {exc}") from exc

    def _write(self, decision: Decision, action: str | None, side_ops: list[dict[str, Any]]) -> AuditReceipt:
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
    def _retain_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(days=self.retention_days)

    def _put_locked(self, key: str, body: bytes, content_type: str) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=self._retain_until(),
            ChecksumAlgorithm="SHA256",
        )

    def _lines(self, start: int, end: int) -> Iterator[tuple[int, str]]:
        """Yield ``(seq, line)`` for REC items start..end (inclusive), in order."""
        for chunk_start in range(start, end + 1, 100):
            seqs = list(range(chunk_start, min(end, chunk_start + 99) + 1))
            got = _batch_get(self.ddb, self.table, [_rec_pk(s) for s in seqs])
            for s in seqs:
                item = got.get(_rec_pk(s))
                if item is None:
                    raise AuditWriteError(f"record {s} missing from DynamoDB; cannot seal")
                yield s, item["line"]["S"]

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
        try:
            return self._seal()
        except AuditWriteError:
            raise
        except Exception as exc:
            raise AuditWriteError(f"audit seal failed: {type(exc).__name__}: {exc}") from exc

    def _seal(self) -> dict[str, Any] | None:
        next_seq, _h, sealed_seq, sealed_hash = self.head()
        if next_seq - 1 <= sealed_seq:
            return None
        start = sealed_seq + 1
        end = min(next_seq - 1, start + _MAX_SEAL_RECORDS - 1)
        checker = ChainChecker()
        checker.expected_seq = start
        checker.last_hash = sealed_hash
        lines: list[bytes] = []
        for _seq, line in self._lines(start, end):
            raw = line.encode("utf-8")
            issue = checker.feed(raw, f"dynamodb:{self.table}", None)
            if issue is not None:
                raise AuditWriteError(f"refusing to seal: {issue}")
            lines.append(raw + b"\n")
        last_hash = checker.last_hash
        seg_key = f"{self.prefix}segments/{start:012d}-{end:012d}.jsonl"
        self._put_locked(seg_key, b"".join(lines), "application/x-ndjson")
        cp = make_checkpoint(self.signer, end, last_hash, self.clock())
        cp_key = f"{self.prefix}checkpoints/{end:012d}.json"
        self._put_locked(cp_key, canonical(cp), "application/json")
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": _s(HEAD)},
                UpdateExpression="SET sealed_seq = :end, sealed_hash = :h",
                ConditionExpression="sealed_seq = :old",
                ExpressionAttributeValues={":end": _n(end), ":h": _s(last_hash), ":old": _n(sealed_seq)},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None  # another writer sealed the same range concurrently (same bytes)
            raise
        return {"segment": seg_key, "checkpoint_key": cp_key, "checkpoint": cp, "first": start, "last": end}

    def flush(self) -> None:
        """Seal everything written so far."""
        while self.seal() is not None:
            pass

    def close(self) -> None:
        """Same as ``flush``."""
        self.flush()


def _batch_get(ddb: Any, table: str, pks: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {table: {"Keys": [{"pk": _s(pk)} for pk in pks], "ConsistentRead": True}}
    for _ in range(20):
        resp = ddb.batch_get_item(RequestItems=request)
        for item in resp.get("Responses", {}).get(table, []):
            out[item["pk"]["S"]] = item
        request = resp.get("UnprocessedKeys") or {}
        if not request:
            break
        time.sleep(0.05)
    return out


def create_audit_resources(
    dynamodb: Any,
    s3: Any,
    table: str,
    bucket: str,
    *,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    region: str | None = None,
) -> None:
    """Create the DynamoDB table and the Object Lock bucket (for tests and the demo).

    The table has partition key ``pk`` (on-demand billing, point-in-time recovery on); the
    bucket is created with ``ObjectLockEnabledForBucket=True`` and a default COMPLIANCE
    retention of ``retention_days``. Existing resources are left as they are.

    Parameters
    ----------
    dynamodb, s3
        boto3 clients.
    table, bucket
        Names to create.
    retention_days
        Default COMPLIANCE retention.
    region
        Bucket region when not us-east-1.
    """
    try:
        create_pk_table(dynamodb, table)
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    try:
        dynamodb.update_continuous_backups(
            TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    except Exception as exc:  # optional hardening; not every endpoint supports it
        if error_code(exc) not in ("UnknownOperationException", "ContinuousBackupsUnavailableException"):
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": True}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": retention_days}},
        },
    )


def _scan_all(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        resp = ddb.scan(**kwargs)
        yield from resp.get("Items", [])
        lek = resp.get("LastEvaluatedKey")
        if not lek:
            return
        kwargs["ExclusiveStartKey"] = lek


def _s3_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    while True:
        resp = s3.list_objects_v2(**kwargs)
        keys.extend(o["Key"] for o in resp.get("Contents", []))
        if not resp.get("IsTruncated"):
            return sorted(keys)
        kwargs["ContinuationToken"] = resp["NextContinuationToken"]


def verify_aws(
    dynamodb: Any,
    table: str,
    s3: Any,
    bucket: str,
    public_key_pem: bytes | None = None,
    *,
    prefix: str = "audit/",
    anchors: Iterable[Anchor] = (),
) -> VerifyReport:
    """Verify the AWS audit store: DynamoDB chain, head, S3 sealed copies and checkpoints.

    Parameters
    ----------
    dynamodb, s3
        boto3 clients (read access is enough).
    table, bucket
        The store's table and bucket.
    public_key_pem
        Expected checkpoint public key (None: signatures are not checked, a warning says so).
    prefix
        Key prefix used by the store.
    anchors
        Checkpoints kept outside the store (see ``verify.open_verify``); the S3 checkpoints are
        Object Lock copies, so with a pinned public key they anchor the chain up to the last one.

    Returns
    -------
    VerifyReport
        Issues name ``dynamodb:<table>`` / ``s3://<bucket>/<key>`` locations and seqs.
    """
    report = VerifyReport()
    ddb_loc = f"dynamodb:{table}"
    records: dict[int, str] = {}
    head_item: dict[str, Any] | None = None
    for item in _scan_all(dynamodb, table):
        pk = item.get("pk", {}).get("S", "")
        if pk == HEAD:
            head_item = item
        elif pk.startswith("REC#"):
            try:
                records[int(pk[4:])] = item["line"]["S"]
            except (KeyError, ValueError):
                report.issues.append(VerifyIssue("malformed", f"unreadable item {pk}", None, ddb_loc, None))
        elif not pk.startswith("EVT#"):
            report.warnings.append(f"unexpected item {pk!r} in {table}")
    next_seq = int(head_item["seq"]["N"]) if head_item else 0
    head_hash = head_item["hash"]["S"] if head_item else GENESIS

    # Sealed copies in S3.
    sealed: dict[int, tuple[bytes, str, int]] = {}
    for key in _s3_keys(s3, bucket, f"{prefix}segments/"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            first = int(key.rsplit("/", 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            report.warnings.append(f"unexpected object s3://{bucket}/{key}")
            continue
        for n, raw in enumerate(body.splitlines(keepends=True), start=1):
            sealed[first + n - 1] = (raw, f"s3://{bucket}/{key}", n)
    cp_entries: list[tuple[Any, str, int | None]] = []
    for key in _s3_keys(s3, bucket, f"{prefix}checkpoints/"):
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read(8192)
        try:
            cp_entries.append((json.loads(raw), f"s3://{bucket}/{key}", None))
        except ValueError:
            report.issues.append(VerifyIssue("checkpoint_invalid", "checkpoint is not JSON", None, key, None))
    cps = check_checkpoints(cp_entries, public_key_pem, report)
    if public_key_pem is None and report.checkpoints:
        report.warnings.append("checkpoint signatures not verified: no public key given")
    anchor_list = list(anchors)
    cps = apply_anchors(anchor_list, cps, report)

    checker = ChainChecker(cps)
    for seq in range(next_seq):
        line = records.get(seq)
        s3_copy = sealed.get(seq)
        if line is None:
            if s3_copy is not None:
                msg = f"record deleted from DynamoDB (its Object Lock copy {s3_copy[1]}:{s3_copy[2]} remains)"
                checker.issue = VerifyIssue("missing", msg, seq, f"{ddb_loc} REC#{seq}", None)
            else:
                msg = f"record {seq} is missing from DynamoDB"
                checker.issue = VerifyIssue("seq_gap", msg, seq, f"{ddb_loc} REC#{seq}", None)
            break
        raw = line.encode("utf-8") + b"\n"
        if checker.feed(raw, f"{ddb_loc} REC#{seq}", None) is not None:
            break
        if s3_copy is not None and s3_copy[0] != raw:
            msg = f"DynamoDB record differs from its Object Lock copy {s3_copy[1]} line {s3_copy[2]}"
            checker.issue = VerifyIssue("s3_mismatch", msg, seq, f"{ddb_loc} REC#{seq}", None)
            break
    extra = sorted(s for s in records if s >= next_seq)
    if extra:
        msg = f"record REC#{extra[0]} lies beyond the head (inserted)"
        report.issues.append(VerifyIssue("seq_order", msg, extra[0], f"{ddb_loc} REC#{extra[0]}", None))
    stopped = checker.issue is not None
    finish(checker, cps, report, ddb_loc)
    if not stopped and report.head_hash != head_hash:
        msg = "HEAD hash differs from the last record"
        report.issues.append(VerifyIssue("head_mismatch", msg, report.head_seq, f"{ddb_loc} HEAD", None))
    anchor_result(report, checker, anchor_list, public_key_pem is not None)
    if report.anchor == "a checkpoint signed with the pinned public key":
        report.anchor = "an S3 Object Lock checkpoint signed with the pinned public key"
    return report
