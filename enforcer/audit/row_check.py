"""Which records of a log fail verification, each one located (for the report and its CSV).

``open_verify`` stops at the first break and names it; a reviewer reading the report needs every
forged row marked where it stands and left out of the figures. ``check_rows`` walks the records in
the order read and returns ``{position: why}`` for each record that cannot be trusted:

- its hash does not match its bytes (edited in place, e.g. ``deny`` changed to ``allow``);
- its ``seq`` is not the next one (records deleted, inserted, duplicated or reordered);
- the chain is broken at it: its ``prev_hash`` is not the hash of the record before (then the
  record before was replaced with a recomputed hash: both are marked);
- a signed checkpoint disagrees (the chain was recomputed): every record since the last matching
  checkpoint, and every later record that descends from it, is marked.

When the verifier found a problem that no record here can be blamed for (records and checkpoints
rewritten together, caught by a trusted anchor; a store read without its checkpoints), every record
it could concern is marked: from its first issue on, or all of them when where the rewrite began is
not known. Records missing at the end (truncation) mark nothing: those that remain are genuine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.chain import GENESIS
from enforcer.audit.query import LoggedRecord
from enforcer.audit.record import RecordError, canonical
from enforcer.audit.verify import VerifyReport, _read_checkpoint_file, check_checkpoints


def record_hash(lr: LoggedRecord) -> str | None:
    """sha256 of the record as stored (from the reader, else of its RFC 8785 form); None if unencodable."""
    if lr.computed is not None:
        return lr.computed
    body = {k: v for k, v in lr.record.items() if k != "hash"}
    try:
        return hashlib.sha256(canonical(body)).hexdigest()
    except (RecordError, ValueError, TypeError):
        return None


def local_checkpoints(directory: str | Path, public_key_pem: bytes | None) -> dict[int, str]:
    """``seq -> hash`` of the local log's checkpoints that pass their checks (signature, given a key)."""
    scratch = VerifyReport()
    entries = _read_checkpoint_file(Path(directory) / layout.CHECKPOINTS, scratch)
    return {seq: h for seq, (h, _label) in check_checkpoints(entries, public_key_pem, scratch).items()}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


#: Issues the verifier pins on one record (everything from it on is suspect when nothing else was located).
_LOCATED = frozenset(
    {"malformed", "hash_mismatch", "seq_gap", "seq_order", "prev_hash_mismatch", "not_canonical"}
)


def _blame_all(bad: dict[int, str], verification: VerifyReport, moved: dict[int, int], n: int) -> None:
    """The verifier failed and no record was located here: mark what it could concern (conservatively)."""
    first = verification.first_issue
    if first is None or first.kind == "truncated":  # records missing at the end: those read are genuine
        return
    if first.kind in _LOCATED and first.seq is not None:
        start = first.seq
        why = f"the log does not verify from seq {start} ({first.message})"
    else:  # a rewrite proven by a checkpoint or anchor: where it began is not known, nothing is trusted
        start = -1
        why = f"the log does not verify ({first.message}); the rewritten records cannot be located"
    for p in range(n):
        if moved.get(p, p) >= start:
            bad[p] = why


def check_rows(
    records: Iterable[LoggedRecord],
    checkpoints: dict[int, str] | None = None,
    verification: VerifyReport | None = None,
) -> dict[int, str]:
    """Locate every record that fails verification.

    Parameters
    ----------
    records
        The log's records in the order read (the same order the report reads them again).
    checkpoints
        ``seq -> hash`` of trusted checkpoints (``local_checkpoints``); None: chain only.
    verification
        The verifier's report: an issue no record can be blamed for marks every record from it on.

    Returns
    -------
    dict
        Position (0-based, in reading order) -> one line saying why the record is not trusted.
    """
    bad: dict[int, str] = {}
    cps = checkpoints or {}
    # The chain continues from the last record accepted in sequence (an inserted or repeated one is not).
    expected, last_hash, last_pos = 0, GENESIS, -1
    last_ok, last_ok_seq = -1, -1  # the last record a signed checkpoint confirmed
    rewritten: str | None = None
    moved: dict[int, int] = {}  # position -> seq where they differ (a genuine log has none)
    pos = -1
    for pos, lr in enumerate(records):
        rec = lr.record
        stated = rec.get("hash")
        seq = _int(rec.get("seq"))
        if seq != pos:
            moved[pos] = -1 if seq is None else seq
        computed = record_hash(lr)
        why: list[str] = []
        if computed is None or computed != stated:
            why.append("record edited: its hash does not match its content")
        accepted = True
        if seq is None:
            why.append("record has no sequence number")
            accepted = False
        elif seq < expected:
            why.append(f"seq {seq} again after seq {expected - 1}: record inserted, duplicated or reordered")
            accepted = False
        elif seq > expected:
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
            why.append(f"{missing} missing before it: records deleted or moved")
        elif rec.get("prev_hash") != last_hash:
            why.append("chain broken: prev_hash is not the hash of the record before it")
            if last_pos >= 0:  # that record was replaced (its hash recomputed), or this one was
                bad.setdefault(last_pos, "replaced or inserted: the next record does not chain to its hash")
        if accepted and seq is not None and seq in cps:
            if cps[seq] != stated or computed != stated:
                rewritten = f"log rewritten: differs from the signed checkpoint at seq {seq}"
                for p in range(last_ok + 1, pos + 1):
                    bad.setdefault(p, f"{rewritten} (rewritten between seq {last_ok_seq + 1} and {seq})")
            else:
                last_ok, last_ok_seq, rewritten = pos, seq, None
        elif rewritten is not None:
            why.append(f"descends from a rewritten record ({rewritten})")
        if why:
            bad[pos] = "; ".join(why)
        if accepted and seq is not None:
            expected, last_hash, last_pos = seq + 1, stated if isinstance(stated, str) else "", pos
    if verification is not None and not verification.ok and not bad:
        _blame_all(bad, verification, moved, pos + 1)
    return dict(sorted(bad.items()))
