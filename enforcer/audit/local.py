"""Local append-only audit store: hash-chained JSONL segments plus signed checkpoints.

See ``enforcer.audit.layout`` for the files. Writers in several processes are serialised with
``fcntl.flock`` on ``.lock``; under the lock each writer first catches up with what others
appended (new ``index.tsv`` lines, then any record in the segments that the index does not
yet cover, e.g. after a crash between the two writes), so the chain never forks.

Idempotency: the trigger's ``source:event_id`` (as logged) is keyed by a 16-byte SHA-256
digest; a second write for a logged event writes nothing and returns the first receipt with
``duplicate=True``. The key set is loaded from ``index.tsv`` on open (about 0.1 s per 100,000
records) and kept in memory.

Durability: each record is one ``write(2)`` to a file opened with ``O_APPEND``; pass
``fsync=True`` to also ``fsync`` every record (much slower on real disks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.chain import Sealed, seal_record
from enforcer.audit.jcs import canonical
from enforcer.audit.local_state import LocalLogState
from enforcer.audit.record import build_record
from enforcer.audit.signing import Signer, make_checkpoint
from enforcer.audit.store_support import (
    event_digest,
    load_salt,
    record_event_key,
    ts_key,
    utc_now,
    wrap_error,
)
from enforcer.model import Decision
from enforcer.ports import AuditReceipt, AuditWriteError

DEFAULT_CHECKPOINT_EVERY = 1000
#: Seconds a writer waits for the log's lock before failing with AUDIT_LOCKED.
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024

__all__ = [
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_SEGMENT_MAX_BYTES",
    "LocalAuditStore",
    "event_digest",
    "load_salt",
    "record_event_key",
    "utc_now",
]


class LocalAuditStore(LocalLogState):
    """Hash-chained, checkpointed decision log in a local directory (implements ``ports.AuditSink``).

    Parameters
    ----------
    directory
        The log directory (``STATE/audit``); created when absent.
    signer
        Checkpoint signer; None writes no checkpoints (the chain is still verifiable).
    checkpoint_every
        Sign the head after every this many records (and on ``flush``/``close``).
    segment_max_bytes
        Start a new segment before one would grow past this size.
    salt
        Masking salt for personal data; None loads or creates ``directory/.salt``.
    fsync
        ``fsync`` after every record.
    clock
        Returns the RFC 3339 time used in checkpoints (tests may pin it).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        signer: Signer | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        *,
        salt: bytes | None = None,
        fsync: bool = False,
        clock: Callable[[], str] = utc_now,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if segment_max_bytes < 4096:
            raise ValueError("segment_max_bytes must be at least 4096")
        self.directory = Path(directory)
        self._dir_s = str(self.directory)
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.segment_max_bytes = segment_max_bytes
        self.fsync = fsync
        self.clock = clock
        self.seal_pending = False  # a checkpoint failed after its record was written: retried next write
        self.lock_timeout = lock_timeout
        self._last_ts: str | None = None  # sortable timestamp of the head record (loaded when needed)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.salt = salt if salt is not None else load_salt(self.directory / layout.SALT)
            self._lock_fd = os.open(self.directory / layout.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise wrap_error(f"cannot open audit log {self.directory}", exc) from exc
        self._index_fd = -1
        self._index_ino = -1
        self._seg_fd = -1
        self._seg_fd_num = 0
        self._reset_state()
        try:
            with self._locked():
                self._sync()
        except AuditWriteError:
            self._close_fds()
            raise
        except Exception as exc:
            self._close_fds()
            raise wrap_error(f"cannot open audit log {self.directory}", exc) from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AuditWriteError(
                        f"audit log {self.directory} is locked by another writer "
                        f"(waited {self.lock_timeout:g} s)",
                        "AUDIT_LOCKED",
                    ) from None
                time.sleep(0.01)
            except OSError as exc:
                raise AuditWriteError(
                    f"cannot lock audit log {self.directory}: {exc}", "AUDIT_LOCKED"
                ) from exc
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ writing
    def _segment_fd(self) -> int:
        if self._seg_fd < 0 or self._seg_fd_num != self._seg:
            if self._seg_fd >= 0:
                os.close(self._seg_fd)
            self._seg_fd = os.open(
                self._path(layout.segment_name(self._seg)), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640
            )
            self._seg_fd_num = self._seg
        return self._seg_fd

    def write(self, decision: Decision, action: str | None = None) -> AuditReceipt:
        """Append the record of ``decision`` (see ``ports.AuditSink.write``).

        Raises
        ------
        AuditWriteError
            On any failure (I/O, a record that cannot be encoded, a broken chain on disk, signing).
        """
        try:
            record = build_record(decision, action, salt=self.salt)
            key = record_event_key(record)
            ev = event_digest(key) if key else None
            with self._locked():
                self._sync()
                if ev is not None and ev in self._events:
                    seq, h, did = self._events[ev]
                    return AuditReceipt(
                        seq=seq, hash=h, duplicate=True, decision_id=did, record=self._read_record(seq)
                    )
                sort_key = self._keep_time_order(record)
                sealed = seal_record(record, self._seq + 1, self._hash)
                self._append(sealed, ev, record.get("decision_id"), sort_key)
                seal_error = None
                if self.signer is not None and (
                    self.seal_pending or (sealed.seq + 1) % self.checkpoint_every == 0
                ):
                    # The record is written: a signing failure must not hide that (it is retried).
                    try:
                        self._checkpoint_locked()
                        self.seal_pending = False
                    except Exception as exc:
                        self.seal_pending = True
                        seal_error = f"checkpoint failed: {type(exc).__name__}: {str(exc)[:200]}"
            return AuditReceipt(
                seq=sealed.seq,
                hash=sealed.hash,
                duplicate=False,
                decision_id=decision.decision_id,
                seal_error=seal_error,
            )
        except AuditWriteError:
            raise
        except Exception as exc:
            raise wrap_error("audit write failed", exc) from exc

    def _keep_time_order(self, record: dict[str, Any]) -> str:
        """A record is never dated before the previous one (e.g. ``decide --now`` in the past).

        The policy still judged the launch at the time it was given (``input.now``); the record's
        ``timestamp`` is raised to the previous record's, and the time asked for is kept in
        ``requested_timestamp``. Returns the sortable key of the record's (final) timestamp.
        """
        mine = ts_key(record.get("timestamp"))
        if self._seq < 0:
            return mine
        if self._last_ts is None:
            prev = self._read_record(self._seq)
            self._last_ts = ts_key(prev.get("timestamp")) if prev is not None else ""
        if self._last_ts and mine < self._last_ts:
            prev_rec = self._read_record(self._seq)
            if prev_rec is not None and isinstance(prev_rec.get("timestamp"), str):
                record["requested_timestamp"] = record.get("timestamp")
                record["timestamp"] = prev_rec["timestamp"]
                return ts_key(prev_rec["timestamp"])
        return mine

    def _append(
        self, sealed: Sealed, ev: bytes | None, decision_id: str | None, sort_key: str | None = None
    ) -> None:
        line = sealed.line
        seg_before, end_before = self._seg, self._end
        if self._end > 0 and self._end + len(line) > self.segment_max_bytes:
            self._seg += 1
            self._end = 0
        try:
            fd = self._segment_fd()
            self._write_all(fd, line)
            end = self._end + len(line)
            idx = self._index_line(sealed, self._seg, end, ev, decision_id)
            self._write_all(self._index_fd, idx)
            if self.fsync:
                os.fsync(fd)
                os.fsync(self._index_fd)
        except BaseException:
            # Disk full, read-only, I/O error: undo the partial line so "failed" means "not logged"
            # (a crash here instead leaves a torn tail, set aside on the next append).
            with contextlib.suppress(OSError):
                if self._seg_fd >= 0:
                    os.ftruncate(self._seg_fd, self._end)
                os.ftruncate(self._index_fd, self._index_off)
            self._seg, self._end = seg_before, end_before
            raise
        self._end = end
        self._index_off += len(idx)
        self._accept(sealed, ev, decision_id, sort_key)

    def _checkpoint_locked(self) -> dict[str, Any] | None:
        if self.signer is None or self._seq < 0:
            return None
        self._read_checkpoints()
        if self._last_cp_seq >= self._seq:
            return None
        cp = make_checkpoint(self.signer, self._seq, self._hash, self.clock())
        path = self._path(layout.CHECKPOINTS)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            self._write_all(fd, canonical(cp) + b"\n")
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._last_cp_seq = self._seq
        self._cp_off = os.stat(path).st_size
        return cp

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the current head now (if newer than the last checkpoint); return the checkpoint.

        Raises
        ------
        AuditWriteError
            When reading the head or signing fails.
        """
        try:
            with self._locked():
                self._sync()
                return self._checkpoint_locked()
        except AuditWriteError:
            raise
        except Exception as exc:
            raise wrap_error("audit checkpoint failed", exc) from exc

    def flush(self) -> None:
        """Checkpoint the head (when a signer is set) and fsync the log files."""
        self.checkpoint()
        try:
            for fd in (self._seg_fd, self._index_fd):
                if fd >= 0:
                    os.fsync(fd)
        except OSError as exc:
            raise wrap_error("audit flush failed", exc) from exc

    def _close_fds(self) -> None:
        for name in ("_seg_fd", "_index_fd", "_lock_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)

    def close(self) -> None:
        """Flush (signed checkpoint over the head) and release the files."""
        if self._lock_fd < 0:
            return
        try:
            self.flush()
        finally:
            self._close_fds()

    def __enter__(self) -> LocalAuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
