"""Verification of an audit log: hash chain, sequence, signed checkpoints.

``open_verify(dir)`` checks a local log and returns a ``VerifyReport`` whose first issue names
the first bad record (file, line, seq). It detects: an edited record (its hash no longer matches
its bytes), a deleted record (sequence gap / broken ``prev_hash``), an inserted, duplicated or
reordered record (sequence out of order / broken ``prev_hash``), a rewritten tail whose hashes
were recomputed (a signed checkpoint no longer matches), truncation past a checkpoint, and a
checkpoint that is malformed or not signed by the expected key.

Limits (inherent to a local log): records appended after the last checkpoint are covered only by
the chain, so dropping them together with nothing else is visible only as "records after the last
checkpoint" being fewer; removing checkpoints *and* records together is caught only by comparing
with an earlier exported checkpoint or by the AWS store (S3 Object Lock).

Fast path: a record's hash is checked over the exact bytes on disk, and ``seq``/``prev_hash``
are read from their fixed place in the canonical form without a JSON parse; ``deep=True``
also parses every record and checks it is exactly its RFC 8785 form.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.anchors import Anchor, anchor_result, apply_anchors, load_anchor
from enforcer.audit.chain import GENESIS, LineError, is_canonical, split_line
from enforcer.audit.signing import CheckpointError, check_checkpoint_shape, verify_checkpoint
from enforcer.audit.verify_report import VerifyIssue, VerifyReport

_SEQ_KEY = b',"seq":'
_PREV_KEY = b',"prev_hash":"'
_BODY_START = b'{"account_id":'
_MAX_CHECKPOINT_LINE = 4096

__all__ = [
    "Anchor",
    "ChainChecker",
    "VerifyIssue",
    "VerifyReport",
    "anchor_result",
    "apply_anchors",
    "check_checkpoints",
    "finish",
    "load_anchor",
    "open_verify",
]


def _extract(body: bytes) -> tuple[int, str]:
    """Read top-level ``seq`` and ``prev_hash`` from a canonical record body."""
    if not body.startswith(_BODY_START):
        raise LineError("record does not start with account_id")
    i = body.rfind(_SEQ_KEY)
    if i < 0:
        raise LineError("record has no seq")
    j = i + len(_SEQ_KEY)
    k = body.find(b",", j)
    digits = body[j:k]
    if k < 0 or not digits.isdigit() or len(digits) > 15 or (len(digits) > 1 and digits[0:1] == b"0"):
        raise LineError("record seq is not a non-negative integer")
    p = body.rfind(_PREV_KEY, 0, i)
    if p < 0:
        raise LineError("record has no prev_hash")
    q = p + len(_PREV_KEY)
    prev = body[q : q + 64]
    if body[q + 64 : q + 65] != b'"':
        raise LineError("record prev_hash is not 64 characters")
    return int(digits), prev.decode("ascii", "replace")


class ChainChecker:
    """Feeds records in order and reports the first break.

    Parameters
    ----------
    checkpoints
        ``seq -> (hash, label)`` of checkpoints to compare with the records.
    deep
        Also parse each record and check it is its RFC 8785 form.
    """

    def __init__(self, checkpoints: dict[int, tuple[str, str]] | None = None, deep: bool = False) -> None:
        self.expected_seq = 0
        self.last_hash = GENESIS
        self.checkpoints = checkpoints or {}
        self.deep = deep
        self.count = 0
        self.issue: VerifyIssue | None = None
        self.last_checkpoint_ok = -1

    def feed(self, line: bytes, file: str | None, lineno: int | None) -> VerifyIssue | None:
        """Check one line; return (and remember) the issue when it breaks the chain."""
        if self.issue is not None:
            return self.issue
        exp = self.expected_seq
        try:
            body, stated = split_line(line)
            seq, prev = _extract(body)
            rec: dict[str, Any] | None = None
            if self.deep:
                rec = json.loads(body)
        except (LineError, ValueError, UnicodeDecodeError) as exc:
            return self._fail("malformed", f"unreadable record ({exc})", exp, file, lineno)
        computed = hashlib.sha256(body).hexdigest()
        if computed != stated:
            return self._fail(
                "hash_mismatch", "record edited: its hash does not match its content", seq, file, lineno
            )
        if seq > exp:
            missing = f"record {exp}" if seq == exp + 1 else f"records {exp}..{seq - 1}"
            return self._fail(
                "seq_gap",
                f"expected seq {exp} but found {seq}: {missing} deleted or moved",
                seq,
                file,
                lineno,
            )
        if seq < exp:
            return self._fail(
                "seq_order",
                f"seq {seq} appears where seq {exp} is expected: record inserted, duplicated or reordered",
                seq,
                file,
                lineno,
            )
        if prev != self.last_hash:
            what = "the genesis value" if exp == 0 else f"the hash of record {exp - 1}"
            return self._fail(
                "prev_hash_mismatch",
                f"chain broken: prev_hash is not {what} (record inserted, replaced or reordered)",
                seq,
                file,
                lineno,
            )
        if rec is not None and not is_canonical(rec, body):
            return self._fail("not_canonical", "record is not in RFC 8785 canonical form", seq, file, lineno)
        cp = self.checkpoints.get(seq)
        if cp is not None:
            if cp[0] != computed:
                since = self.last_checkpoint_ok + 1
                return self._fail(
                    "checkpoint_mismatch",
                    f"record differs from signed {cp[1]}: "
                    f"the log was rewritten between seq {since} and {seq}",
                    seq,
                    file,
                    lineno,
                )
            self.last_checkpoint_ok = seq
        self.expected_seq = exp + 1
        self.last_hash = computed
        self.count += 1
        return None

    def _fail(
        self, kind: str, msg: str, seq: int | None, file: str | None, lineno: int | None
    ) -> VerifyIssue:
        self.issue = VerifyIssue(kind=kind, message=msg, seq=seq, file=file, line=lineno)
        return self.issue


def check_checkpoints(
    entries: Iterable[tuple[Any, str, int | None]],
    public_key_pem: bytes | None,
    report: VerifyReport,
) -> dict[int, tuple[str, str]]:
    """Validate checkpoint objects; add issues to ``report``; return ``seq -> (hash, label)``.

    Parameters
    ----------
    entries
        ``(checkpoint_object, file, line)`` in file order.
    public_key_pem
        Expected public key; None checks shape and order only.
    report
        Receives issues and the checkpoint count.
    """
    out: dict[int, tuple[str, str]] = {}
    last = -1
    verified = invalid = 0
    for cp, file, line in entries:
        report.checkpoints += 1
        label = f"checkpoint {file}:{line}" if line is not None else f"checkpoint {file}"
        try:
            check_checkpoint_shape(cp)
            if public_key_pem is not None:
                verify_checkpoint(cp, public_key_pem)
                verified += 1
        except CheckpointError as exc:
            invalid += 1
            seq = cp.get("seq") if isinstance(cp, dict) and isinstance(cp.get("seq"), int) else None
            report.issues.append(VerifyIssue("checkpoint_invalid", str(exc), seq, file, line))
            continue
        seq = cp["seq"]
        if seq < last:
            report.issues.append(
                VerifyIssue(
                    "checkpoint_order", f"checkpoint for seq {seq} after one for seq {last}", seq, file, line
                )
            )
        last = max(last, seq)
        if seq in out and out[seq][0] != cp["hash"]:
            report.issues.append(
                VerifyIssue("checkpoint_conflict", f"two checkpoints disagree on seq {seq}", seq, file, line)
            )
        out[seq] = (cp["hash"], label)
    # True only when signatures were actually checked: at least one verified, none refused
    report.signatures_verified = verified > 0 and invalid == 0
    return out


def finish(
    checker: ChainChecker, cps: dict[int, tuple[str, str]], report: VerifyReport, tail: str | None
) -> None:
    """Close a verification: record count, head, truncation and unsigned-tail checks."""
    report.records = checker.count
    report.head_seq = checker.expected_seq - 1
    report.head_hash = checker.last_hash
    if checker.issue is not None:
        report.issues.append(checker.issue)
        return
    if cps:
        top = max(cps)
        if top > report.head_seq:
            first_missing = report.head_seq + 1
            report.issues.append(
                VerifyIssue(
                    "truncated",
                    f"log ends at seq {report.head_seq} but {cps[top][1]} signs seq {top}: "
                    f"records {first_missing}..{top} were removed",
                    first_missing,
                    tail,
                    None,
                )
            )
            return
        if report.head_seq > top:
            report.warnings.append(
                f"{report.head_seq - top} record(s) after the last checkpoint (seq {top}) are not yet signed"
            )
    elif report.records:
        report.warnings.append("no checkpoint: the chain is checked but no signature covers it")


def _read_checkpoint_file(path: Path, report: VerifyReport) -> list[tuple[Any, str, int | None]]:
    entries: list[tuple[Any, str, int | None]] = []
    if not path.exists():
        return entries
    with path.open("rb") as fh:
        for n, raw in layout.bounded_lines(fh):
            if not raw.strip():
                continue
            if len(raw) > _MAX_CHECKPOINT_LINE:
                report.issues.append(
                    VerifyIssue("checkpoint_invalid", "checkpoint line too long", None, path.name, n)
                )
                continue
            try:
                entries.append((json.loads(raw), path.name, n))
            except ValueError:
                report.issues.append(
                    VerifyIssue("checkpoint_invalid", "checkpoint is not JSON", None, path.name, n)
                )
    return entries


def open_verify(
    directory: str | Path,
    public_key_pem: bytes | None = None,
    *,
    deep: bool = False,
    anchors: Iterable[Anchor] = (),
    pinned_key: bool = False,
) -> VerifyReport:
    """Verify a local audit log directory.

    Parameters
    ----------
    directory
        The log directory (``STATE/audit``).
    public_key_pem
        The expected checkpoint public key; None verifies the chain and checkpoint hashes but
        not their signatures (a warning says so).
    deep
        Also parse every record and check its canonical form (slower).
    anchors
        Checkpoints the reviewer trusts from outside the folder (a file they kept, the S3 Object
        Lock copy): a record that differs, or a log that ends before one, is an issue.
    pinned_key
        ``public_key_pem`` came from outside the folder (``--public-key``), so checkpoints it
        verifies anchor the log too.

    Returns
    -------
    VerifyReport
        ``ok`` is False when anything is wrong; ``first_issue`` names the first bad record;
        ``anchored_through`` says how far evidence from outside the folder covers the log; a
        record torn by a crash mid-append is ``crash_truncated_at`` (a warning, not tampering).
    """
    anchors = list(anchors)
    d = Path(directory)
    report = VerifyReport()
    if not d.is_dir():
        report.issues.append(VerifyIssue("missing", f"no audit log at {d}", None, str(d), None))
        return report
    cps = check_checkpoints(_read_checkpoint_file(d / layout.CHECKPOINTS, report), public_key_pem, report)
    if public_key_pem is None and report.checkpoints:
        report.warnings.append("checkpoint signatures not verified: no public key given")
    cps = apply_anchors(anchors, cps, report)
    checker = ChainChecker(cps, deep=deep)
    tail: str | None = None
    segments = list(layout.segment_files(d))
    for k, (_num, path) in enumerate(segments):
        tail = path.name
        last_segment = k == len(segments) - 1
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            for n, raw in layout.bounded_lines(fh):
                if last_segment and not raw.endswith(b"\n") and fh.tell() == size:
                    # The writer died mid-append: the record was never acknowledged. The store
                    # sets it aside (torn-records.bin) on its next append.
                    report.crash_truncated_at = checker.expected_seq
                    report.warnings.append(
                        f"{path.name}:{n}: crash-truncated at seq {checker.expected_seq} "
                        f"({len(raw)} bytes of an unfinished record; repaired on the next append)"
                    )
                    break
                if checker.feed(raw, path.name, n) is not None:
                    break
        if checker.issue is not None:
            break
    finish(checker, cps, report, tail)
    anchor_result(report, checker, anchors, pinned_key)
    for name in layout.stray_files(d):
        report.warnings.append(f"{name} is not part of the chain (ignored)")
    return report
