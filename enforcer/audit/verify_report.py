"""The result of verifying an audit log: its issues, located as precisely as the evidence allows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from enforcer.audit.chain import GENESIS

#: Issue kinds about records, in the order the first bad record is chosen by.
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
