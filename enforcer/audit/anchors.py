"""Anchors: a ``(seq, hash)`` a reviewer trusts from outside the log's folder (an exported checkpoint).

A log whose tail was cut together with its checkpoints still chains; only a head known from outside
tells. ``load_anchor`` reads one (verifying its signature when a key is given), ``apply_anchors`` checks
the log against them, ``anchor_result`` says how far the log is anchored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from enforcer.audit.signing import CheckpointError, check_checkpoint_shape, verify_checkpoint
from enforcer.audit.verify_report import VerifyIssue, VerifyReport

if TYPE_CHECKING:
    from enforcer.audit.verify import ChainChecker


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
