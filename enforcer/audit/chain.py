"""The hash chain: how a record becomes one line, and how a line is checked.

``hash = sha256(rfc8785(record without "hash"))`` in hex, ``prev_hash`` of record 0 is 64 zeros.
A record is canonicalised once; its line is those canonical bytes with the hash appended as the
last member::

    <rfc8785 bytes of the record without "hash", minus the closing "}">,"hash":"<64 hex>"}\\n

so a verifier recovers the exact hashed bytes by cutting the fixed-size suffix, with no
re-serialisation. Any other verifier can also parse the line, drop ``hash``, canonicalise with
RFC 8785 and hash: it gets the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from enforcer.audit.jcs import canonical
from enforcer.audit.record import bound_record

#: ``prev_hash`` of the first record.
GENESIS = "0" * 64
_SUFFIX_HEAD = b',"hash":"'
_SUFFIX_LEN = len(_SUFFIX_HEAD) + 64 + 2  # ,"hash":"<64>"}
_HEX = frozenset(b"0123456789abcdef")


class LineError(ValueError):
    """A log line is not a well-formed chained record."""


@dataclass(slots=True, frozen=True)
class Sealed:
    """A record with its chain fields, as written."""

    seq: int
    hash: str
    line: bytes
    record: dict[str, Any]


def seal_record(record: dict[str, Any], seq: int, prev_hash: str) -> Sealed:
    """Add the chain fields to ``record`` and encode it as one line.

    Parameters
    ----------
    record
        Output of ``build_record`` (no chain fields).
    seq
        Position in the chain, from 0.
    prev_hash
        Hash of record ``seq - 1`` (``GENESIS`` for record 0).

    Returns
    -------
    Sealed
        The record (with ``seq``, ``prev_hash``, ``hash``), its hash and its line (ending in ``\\n``).
    """
    trusted = bool(getattr(record, "jcs_safe", False))
    rec = dict(record)
    rec["seq"] = seq
    rec["prev_hash"] = prev_hash
    rec.pop("hash", None)
    rec, body = bound_record(rec, canonical(rec, trusted=trusted))
    digest = hashlib.sha256(body).hexdigest()
    line = body[:-1] + _SUFFIX_HEAD + digest.encode("ascii") + b'"}\n'
    rec["hash"] = digest
    return Sealed(seq=seq, hash=digest, line=line, record=rec)


def split_line(line: bytes) -> tuple[bytes, str]:
    """Split a log line into the hashed body and the stated hash.

    Parameters
    ----------
    line
        One line, with or without the trailing newline.

    Returns
    -------
    tuple
        ``(body, stated_hash)``, where body is the canonical record without ``hash``.

    Raises
    ------
    LineError
        When the line does not end with a well-formed hash member.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if len(line) < _SUFFIX_LEN + 2 or not line.endswith(b'"}'):
        raise LineError("line does not end with a hash member")
    cut = len(line) - _SUFFIX_LEN
    if line[cut : cut + len(_SUFFIX_HEAD)] != _SUFFIX_HEAD:
        raise LineError("line does not end with a hash member")
    stated = line[cut + len(_SUFFIX_HEAD) : -2]
    if not _HEX.issuperset(stated):
        raise LineError("hash is not 64 lowercase hex digits")
    return line[:cut] + b"}", stated.decode("ascii")


def parse_line(line: bytes) -> tuple[dict[str, Any], str, str]:
    """Parse a log line and compute its hash.

    Returns
    -------
    tuple
        ``(record_without_hash, computed_hash, stated_hash)``.

    Raises
    ------
    LineError
        When the line is malformed.
    """
    body, stated = split_line(line)
    try:
        rec = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LineError(f"line is not JSON: {exc}") from exc
    if not isinstance(rec, dict):
        raise LineError("line is not a JSON object")
    return rec, hashlib.sha256(body).hexdigest(), stated


def is_canonical(record_without_hash: dict[str, Any], body: bytes) -> bool:
    """Return True when ``body`` is exactly the RFC 8785 form of the record (deep check)."""
    try:
        return canonical(record_without_hash) == body
    except ValueError:
        return False
