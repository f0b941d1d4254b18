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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.chain import GENESIS, LineError, is_canonical, split_line
from enforcer.audit.signing import CheckpointError, check_checkpoint_shape, verify_checkpoint

_SEQ_KEY = b',"seq":'
_PREV_KEY = b',"prev_hash":"'
_BODY_START = b'{"account_id":'
_MAX_CHECKPOINT_LINE = 4096


@dataclass(slots=True)
class VerifyIssue:
    """One integrity problem, located as precisely as the evidence allows."""

    kind: str
    message: str
    seq: int | None = None
    file: str | None = None
    line: int | None = None

    def location(self) -> str:
        """Return ``file:line (seq N)`` (the parts that are known)."""
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line is not None else self.file)
        if self.seq is not None:
            parts.append(f"seq {self.seq}")
        return " ".join(parts) if parts else "log"

    def __str__(self) -> str:
        return f"{self.location()}: {self.message} [{self.kind}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "seq": self.seq,
            "file": self.file,
            "line": self.line,
        }


@dataclass(slots=True)
class VerifyReport:
    """Outcome of verifying a log."""

    records: int = 0
    checkpoints: int = 0
    signatures_verified: bool = False
    head_seq: int = -1
    head_hash: str = GENESIS
    issues: list[VerifyIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Highest seq proven by something outside the log's folder (a trusted checkpoint, or a
    #: checkpoint signed by a key pinned from elsewhere); -1 when nothing anchors the log.
    anchored_through: int = -1
    #: What anchors it (e.g. ``trusted checkpoint reviewer.json``); "" when nothing does.
    anchor: str = ""
    #: A record was being appended when the writer died (seq it would have had); None if not.
    crash_truncated_at: int | None = None

    @property
    def ok(self) -> bool:
        """True when no issue was found."""
        return not self.issues

    @property
    def first_issue(self) -> VerifyIssue | None:
        """Return the issue with the lowest seq (records before checkpoints at the same seq)."""
        if not self.issues:
            return None
        order = {k: i for i, k in enumerate(_RECORD_KINDS)}
        return min(
            self.issues,
            key=lambda i: (i.seq if i.seq is not None else 1 << 62, 0 if i.kind in order else 1),
        )

    def summary(self) -> str:
        """One line: ``OK: N records, M checkpoints`` or ``FAIL: <first issue>``."""
        if self.ok:
            line = f"OK: {self.records} records, {self.checkpoints} checkpoints"
            if self.anchored_through >= 0:
                line += f"; anchored through seq {self.anchored_through} by {self.anchor}"
            if self.crash_truncated_at is not None:
                line += f"; crash-truncated at seq {self.crash_truncated_at} (repaired on the next append)"
            return line
        return f"FAIL: {self.first_issue}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints": self.checkpoints,
            "signatures_verified": self.signatures_verified,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "anchored_through": self.anchored_through,
            "anchor": self.anchor,
            "crash_truncated_at": self.crash_truncated_at,
            "issues": [i.to_dict() for i in self.issues],
            "warnings": list(self.warnings),
        }


_RECORD_KINDS = (
    "malformed",
    "hash_mismatch",
    "seq_gap",
    "seq_order",
    "prev_hash_mismatch",
    "not_canonical",
    "checkpoint_mismatch",
    "truncated",
)


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


@dataclass(frozen=True, slots=True)
class Anchor:
    """A ``(seq, hash)`` the reviewer trusts from outside the log's folder."""

    seq: int
    hash: str
    label: str


def load_anchor(data: Any, label: str, public_key_pem: bytes | None) -> Anchor:
    """An anchor from a kept checkpoint (``{seq, hash}``, signed or not).

    A signed checkpoint's signature is checked when ``public_key_pem`` is given.

    Raises
    ------
    CheckpointError
        When the object is not a usable anchor or its signature does not verify.
    """
    if not isinstance(data, dict):
        raise CheckpointError(f"{label}: not a checkpoint object")
    seq, h = data.get("seq"), data.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CheckpointError(f"{label}: seq must be a non-negative integer")
    if not isinstance(h, str) or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise CheckpointError(f"{label}: hash must be 64 lowercase hex characters")
    if "signature" in data and public_key_pem is not None:
        check_checkpoint_shape(data)
        verify_checkpoint(data, public_key_pem)
    return Anchor(seq, h, label)


def apply_anchors(
    anchors: Iterable[Anchor], cps: dict[int, tuple[str, str]], report: VerifyReport
) -> dict[int, tuple[str, str]]:
    """Merge trusted anchors into the checkpoint map (an anchor wins a conflict, and says so)."""
    out = dict(cps)
    for a in anchors:
        have = out.get(a.seq)
        if have is not None and have[0] != a.hash:
            report.issues.append(
                VerifyIssue(
                    "checkpoint_conflict",
                    f"{have[1]} disagrees with {a.label} on seq {a.seq}: "
                    "the log's checkpoints were rewritten",
                    a.seq,
                    a.label,
                    None,
                )
            )
        out[a.seq] = (a.hash, a.label)
    return out


def anchor_result(
    report: VerifyReport, checker: ChainChecker, anchors: list[Anchor], pinned_key: bool
) -> None:
    """Set how far the log is anchored by evidence from outside its folder."""
    if not report.ok:
        return
    matched = [a for a in anchors if a.seq <= report.head_seq]
    if matched:
        best = max(matched, key=lambda a: a.seq)
        report.anchored_through, report.anchor = best.seq, best.label
    if pinned_key and report.signatures_verified and checker.last_checkpoint_ok > report.anchored_through:
        report.anchored_through = checker.last_checkpoint_ok
        report.anchor = "a checkpoint signed with the pinned public key"
    if report.anchored_through < 0:
        report.warnings.append(
            "not anchored: no trusted checkpoint and no pinned public key from outside the log's folder; "
            "whoever can write the folder can rewrite the log and its checkpoints together"
        )
    elif report.anchored_through < report.head_seq:
        report.warnings.append(
            f"records {report.anchored_through + 1}..{report.head_seq} are covered by the hash chain only "
            "(not yet anchored)"
        )


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
