"""What the audit stores share: error codes, the idempotency key, timestamps, the masking salt."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enforcer.audit.jcs import canonical
from enforcer.ports import AuditWriteError

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


def error_code(exc: BaseException) -> str:
    """The AuditWriteError code of an exception (disk full, read-only, or a generic failure)."""
    while exc is not None:
        if isinstance(exc, AuditWriteError):
            return exc.code
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return "AUDIT_DISK_FULL"
        if isinstance(exc, OSError) and exc.errno in _READ_ONLY:
            return "AUDIT_READ_ONLY"
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return "AUDIT_WRITE_FAILED"


def wrap_error(what: str, exc: BaseException) -> AuditWriteError:
    """An AuditWriteError saying ``what`` failed, with the code of ``exc`` (disk full, read-only ...)."""
    code = error_code(exc)
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if code == "AUDIT_DISK_FULL":
        return AuditWriteError(f"{what}: no space left on the device ({detail})", code)
    if code == "AUDIT_READ_ONLY":
        return AuditWriteError(f"{what}: the log is read-only ({detail})", code)
    return AuditWriteError(f"{what}: {type(exc).__name__}: {detail}", code)


#: ``YYYY-MM-DDTHH:MM:SS[.fraction]Z``: the form every decision carries (read without datetime).
_UTC_TS = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?Z\Z")


def ts_key(ts: Any) -> str:
    """A sortable form of an RFC 3339 UTC timestamp (fixed width), or '' when unreadable."""
    if not isinstance(ts, str):
        return ""
    m = _UTC_TS.match(ts)
    if m is not None:  # already UTC and fixed width: validate the date, keep the text (no strftime)
        try:
            datetime.fromisoformat(m.group(1))
        except ValueError:
            return ""
        return f"{m.group(1)}.{(m.group(2) or '').ljust(6, '0')}"
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_event_key(record: dict[str, Any]) -> str | None:
    """Return the idempotency key (``source:event_id``) of a built record, or None."""
    trig = record.get("trigger")
    if not isinstance(trig, dict):
        return None
    ev = trig.get("event_id")
    if ev is None or ev == "":
        return None
    if not isinstance(ev, str):
        ev = canonical(ev).decode("utf-8")
    return f"{trig.get('source')}:{ev}"


def event_digest(key: str) -> bytes:
    """Return the 16-byte digest under which an event key is indexed."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:16]


def clean_id(value: str | None) -> str:
    """A decision id as one index.tsv field (no tabs or newlines, at most 200 characters; ``-`` when none)."""
    if not value:
        return "-"
    return value.replace("\t", " ").replace("\n", " ").replace("\r", " ")[:200]


def load_salt(path: Path) -> bytes:
    """Load the masking salt at ``path``, creating 32 random bytes (mode 0600) when absent.

    Raises
    ------
    OSError
        When the file cannot be read or created.
    """
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(salt)
    return salt
