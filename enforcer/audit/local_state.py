"""The local log's state and how a writer catches up with the files under the lock.

index.tsv lines first, then any record in the segments the index does not cover yet (a writer that
crashed between its two writes), then the checkpoints; a damaged index is rebuilt from the segments,
and a record that does not chain is refused (``AUDIT_CHAIN_BROKEN``). Records are read back through
the index (a redelivered event is answered with its logged record).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from enforcer.audit import layout
from enforcer.audit.chain import GENESIS, LineError, Sealed, parse_line
from enforcer.audit.store_support import clean_id, event_digest, record_event_key, ts_key
from enforcer.ports import AuditWriteError

#: A torn tail larger than this is not read into memory to be set aside.
_MAX_TAIL_READ = 512 * 1024 * 1024


class LocalLogState:
    """Head, index position and idempotency keys of a local log, kept in step with its files."""

    directory: Path
    _dir_s: str
    _index_fd: int
    _index_ino: int
    _last_ts: str | None

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

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

    def _path(self, name: str) -> str:
        return os.path.join(self._dir_s, name)

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
        return f"{sealed.seq}\t{seg}\t{end}\t{sealed.hash}\t{evs}\t{clean_id(decision_id)}\n".encode()

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

    def _accept(self, sealed: Sealed, ev: bytes | None, did: str | None, sort_key: str | None = None) -> None:
        self._seq = sealed.seq
        self._hash = sealed.hash
        if sort_key is None and isinstance(sealed.record, dict):
            sort_key = ts_key(sealed.record.get("timestamp"))
        self._last_ts = sort_key
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
