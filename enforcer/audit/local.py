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
import errno
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.chain import GENESIS, LineError, Sealed, parse_line, seal_record
from enforcer.audit.jcs import canonical
from enforcer.audit.record import build_record
from enforcer.audit.signing import Signer, make_checkpoint
from enforcer.model import Decision
from enforcer.ports import AuditReceipt, AuditWriteError

DEFAULT_CHECKPOINT_EVERY = 1000
#: Seconds a writer waits for the log's lock before failing with AUDIT_LOCKED.
DEFAULT_LOCK_TIMEOUT = 10.0
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


def _wrap(what: str, exc: BaseException) -> AuditWriteError:
    code = error_code(exc)
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if code == "AUDIT_DISK_FULL":
        return AuditWriteError(f"{what}: no space left on the device ({detail})", code)
    if code == "AUDIT_READ_ONLY":
        return AuditWriteError(f"{what}: the log is read-only ({detail})", code)
    return AuditWriteError(f"{what}: {type(exc).__name__}: {detail}", code)


#: ``YYYY-MM-DDTHH:MM:SS[.fraction]Z``: the form every decision carries (read without datetime).
_UTC_TS = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{1,6}))?Z\Z")


def _ts_key(ts: Any) -> str:
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


DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024
_MAX_TAIL_READ = 512 * 1024 * 1024


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


def _clean_id(value: str | None) -> str:
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


class LocalAuditStore:
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
            raise _wrap(f"cannot open audit log {self.directory}", exc) from exc
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
            raise _wrap(f"cannot open audit log {self.directory}", exc) from exc

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self._seq = -1
        self._hash = GENESIS
        self._seg = 1
        self._end = 0
        self._index_off = 0
        self._events: dict[bytes, tuple[int, str, str | None]] = {}
        self._cp_off = 0
        self._last_cp_seq = -1

    @property
    def head(self) -> tuple[int, str]:
        """Return ``(seq, hash)`` of the last record this store knows of (``(-1, GENESIS)`` when empty)."""
        return self._seq, self._hash

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

    def _path(self, name: str) -> str:
        return os.path.join(self._dir_s, name)

    # ------------------------------------------------------------------ catch-up
    def _open_index(self) -> None:
        if self._index_fd >= 0:
            os.close(self._index_fd)
        self._index_fd = os.open(self._path(layout.INDEX), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._index_ino = os.fstat(self._index_fd).st_ino

    def _sync(self) -> None:
        """Bring the in-memory head up to date with the files (caller holds the lock)."""
        try:
            st = os.stat(self._path(layout.INDEX))
            if st.st_ino != self._index_ino:
                raise FileNotFoundError
        except FileNotFoundError:
            # First open, or the index was replaced/removed: reload everything.
            self._reset_state()
            self._open_index()
            st = os.fstat(self._index_fd)
        if st.st_size > self._index_off:
            self._read_index(st.st_size)
        elif st.st_size < self._index_off:
            self._rebuild_index("index.tsv shrank")
        self._catch_up_segments()

    def _read_index(self, size: int) -> None:
        data = os.pread(self._index_fd, size - self._index_off, self._index_off)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A torn last line (writer crashed mid-write): drop it; the segments are the truth.
            os.ftruncate(self._index_fd, self._index_off + end)
            data = data[:end]
        if not data:
            return
        try:
            for raw in data.split(b"\n")[:-1]:
                self._apply_index_line(raw)
        except (ValueError, IndexError) as exc:
            self._rebuild_index(f"index.tsv damaged ({exc})")
            return
        self._index_off += end

    def _apply_index_line(self, raw: bytes) -> None:
        seq_s, seg_s, end_s, h, ev, did = raw.decode("utf-8").split("\t")
        seq = int(seq_s)
        if seq != self._seq + 1 or len(h) != 64:
            raise ValueError(f"index line for seq {seq} does not follow seq {self._seq}")
        self._seq = seq
        self._hash = h
        self._seg = int(seg_s)
        self._end = int(end_s)
        self._last_ts = None  # another writer's record: its time is read back when needed
        if ev != "-":
            self._events[bytes.fromhex(ev)] = (seq, h, None if did == "-" else did)

    def _index_line(
        self, sealed: Sealed, seg: int, end: int, ev: bytes | None, decision_id: str | None
    ) -> bytes:
        evs = ev.hex() if ev is not None else "-"
        return f"{sealed.seq}\t{seg}\t{end}\t{sealed.hash}\t{evs}\t{_clean_id(decision_id)}\n".encode()

    def _rebuild_index(self, why: str) -> None:
        """Rebuild index.tsv from the segments (new file, atomically renamed into place)."""
        self._reset_state()
        lines: list[bytes] = []
        for num, path in layout.segment_files(self.directory):
            self._seg = num
            self._end = 0
            with path.open("rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        raise AuditWriteError(f"{path.name} ends with a torn record; cannot rebuild ({why})")
                    sealed, ev, did = self._check_line(raw, path.name)
                    self._end += len(raw)
                    lines.append(self._index_line(sealed, num, self._end, ev, did))
                    self._accept(sealed, ev, did)
        tmp = self._path(layout.INDEX + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(b"".join(lines))
        os.replace(tmp, self._path(layout.INDEX))
        self._open_index()
        self._index_off = os.fstat(self._index_fd).st_size

    def _check_line(self, raw: bytes, name: str) -> tuple[Sealed, bytes | None, str | None]:
        try:
            rec, computed, stated = parse_line(raw)
        except LineError as exc:
            raise AuditWriteError(f"{name}: unreadable record after seq {self._seq}: {exc}") from exc
        seq = rec.get("seq")
        if computed != stated or seq != self._seq + 1 or rec.get("prev_hash") != self._hash:
            raise AuditWriteError(
                f"{name}: chain broken after seq {self._seq}; refusing to append "
                "(run `enforcer audit verify`)",
                "AUDIT_CHAIN_BROKEN",
            )
        key = record_event_key(rec)
        did = rec.get("decision_id")
        return (
            Sealed(seq=int(seq), hash=computed, line=raw, record=rec),
            event_digest(key) if key else None,
            did if isinstance(did, str) else None,
        )

    def _accept(self, sealed: Sealed, ev: bytes | None, did: str | None, ts_key: str | None = None) -> None:
        self._seq = sealed.seq
        self._hash = sealed.hash
        if ts_key is None and isinstance(sealed.record, dict):
            ts_key = _ts_key(sealed.record.get("timestamp"))
        self._last_ts = ts_key
        if ev is not None:
            self._events[ev] = (sealed.seq, sealed.hash, did)

    def _catch_up_segments(self) -> None:
        """Index any record that is in the segments but not (yet) in index.tsv."""
        name = layout.segment_name(self._seg)
        path = self._path(name)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
            if self._end > 0:
                raise AuditWriteError(
                    f"{name} is missing but index.tsv lists records in it (run `enforcer audit verify`)"
                ) from None
        if size < self._end:
            raise AuditWriteError(
                f"{name} is shorter than index.tsv says (truncated?); run `enforcer audit verify`"
            )
        if size > self._end:
            self._recover(path, self._seg, self._end, size)
        nxt = self._path(layout.segment_name(self._seg + 1))
        while os.path.exists(nxt):
            self._seg += 1
            self._end = 0
            size = os.stat(nxt).st_size
            if size:
                self._recover(nxt, self._seg, 0, size)
            nxt = self._path(layout.segment_name(self._seg + 1))

    def _recover(self, path: str, seg: int, start: int, size: int) -> None:
        if size - start > _MAX_TAIL_READ:
            self._rebuild_index("large unindexed tail")
            return
        name = os.path.basename(path)
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(size - start)
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # Torn record from a writer that crashed mid-write (never acknowledged): set it aside.
            torn = data[end:]
            with open(self._path("torn-records.bin"), "ab") as tf:
                tf.write(f"# {name} offset {start + end} {len(torn)} bytes\n".encode() + torn + b"\n")
            os.truncate(path, start + end)
            data = data[:end]
        offset = start
        out: list[bytes] = []
        for raw in data.splitlines(keepends=True):
            sealed, ev, did = self._check_line(raw, name)
            offset += len(raw)
            out.append(self._index_line(sealed, seg, offset, ev, did))
            self._accept(sealed, ev, did)
        self._end = offset
        if out:
            self._write_all(self._index_fd, b"".join(out))
            self._index_off = os.fstat(self._index_fd).st_size

    def _read_checkpoints(self) -> None:
        path = self._path(layout.CHECKPOINTS)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            self._cp_off = 0
            return
        if size <= self._cp_off:
            self._cp_off = min(self._cp_off, size)
            return
        with open(path, "rb") as fh:
            fh.seek(self._cp_off)
            data = fh.read(size - self._cp_off)
        end = data.rfind(b"\n") + 1
        for raw in data[:end].split(b"\n")[:-1]:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                self._last_cp_seq = max(self._last_cp_seq, int(json.loads(raw)["seq"]))
        self._cp_off += end

    # ------------------------------------------------------------------ writing
    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

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
                ts_key = self._keep_time_order(record)
                sealed = seal_record(record, self._seq + 1, self._hash)
                self._append(sealed, ev, record.get("decision_id"), ts_key)
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
            raise _wrap("audit write failed", exc) from exc

    def _read_record(self, seq: int) -> dict[str, Any] | None:
        """The logged record ``seq`` (located through index.tsv), or None when unreadable.

        The head record (the common case: time order) is found from the index's last lines.
        """
        try:
            found = self._locate(seq, tail=True) if seq == self._seq else None
            if found is None:
                found = self._locate(seq, tail=False)
            if found is None:
                return None
            seg, start, end = found
            with open(self._path(layout.segment_name(seg)), "rb") as sf:
                sf.seek(start)
                rec, _computed, _stated = parse_line(sf.read(end - start))
        except (OSError, ValueError, IndexError, LineError):
            return None
        return rec if isinstance(rec, dict) and rec.get("seq") == seq else None

    def _locate(self, seq: int, *, tail: bool) -> tuple[int, int, int] | None:
        """``(segment, start, end)`` of record ``seq`` from index.tsv (``tail``: its last 8 KiB only)."""
        with open(self._path(layout.INDEX), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if tail and size > 8192:
                fh.seek(size - 8192)
                fh.readline()  # skip a partial line
            prev: tuple[int, int] | None = None
            first = fh.tell() == 0
            for raw in fh:
                parts = raw.split(b"\t", 3)
                s_, seg, end = int(parts[0]), int(parts[1]), int(parts[2])
                if s_ == seq:
                    if prev is None and not first:
                        return None  # the line before is outside the window: scan the whole index
                    start = prev[1] if prev is not None and prev[0] == seg else 0
                    return seg, start, end
                prev = (seg, end)
        return None

    def _keep_time_order(self, record: dict[str, Any]) -> str:
        """A record is never dated before the previous one (e.g. ``decide --now`` in the past).

        The policy still judged the launch at the time it was given (``input.now``); the record's
        ``timestamp`` is raised to the previous record's, and the time asked for is kept in
        ``requested_timestamp``. Returns the sortable key of the record's (final) timestamp.
        """
        mine = _ts_key(record.get("timestamp"))
        if self._seq < 0:
            return mine
        if self._last_ts is None:
            prev = self._read_record(self._seq)
            self._last_ts = _ts_key(prev.get("timestamp")) if prev is not None else ""
        if self._last_ts and mine < self._last_ts:
            prev_rec = self._read_record(self._seq)
            if prev_rec is not None and isinstance(prev_rec.get("timestamp"), str):
                record["requested_timestamp"] = record.get("timestamp")
                record["timestamp"] = prev_rec["timestamp"]
                return _ts_key(prev_rec["timestamp"])
        return mine

    def _append(
        self, sealed: Sealed, ev: bytes | None, decision_id: str | None, ts_key: str | None = None
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
        self._accept(sealed, ev, decision_id, ts_key)

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
            raise _wrap("audit checkpoint failed", exc) from exc

    def flush(self) -> None:
        """Checkpoint the head (when a signer is set) and fsync the log files."""
        self.checkpoint()
        try:
            for fd in (self._seg_fd, self._index_fd):
                if fd >= 0:
                    os.fsync(fd)
        except OSError as exc:
            raise _wrap("audit flush failed", exc) from exc

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
