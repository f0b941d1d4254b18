"""Local audit store: appends, idempotency, rotation, checkpoints, crash recovery, multi-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.audit_bench import bench_audit, sample_decision
from enforcer.audit.chain import GENESIS, seal_record
from enforcer.audit.local import LocalAuditStore
from enforcer.audit.record import build_record
from enforcer.audit.signing import LocalEd25519Signer, SignerError, verify_checkpoint
from enforcer.audit.verify import open_verify
from enforcer.ports import AuditSink, AuditWriteError

SALT = b"local-store-salt-000"


def _seqs(d: Path) -> list[int]:
    out = []
    for seg in sorted(d.glob("segment-*.jsonl")):
        out.extend(json.loads(line)["seq"] for line in seg.read_bytes().splitlines())
    return out


def test_store_is_an_audit_sink_and_chains_records(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    assert isinstance(store, AuditSink)
    r0 = store.write(sample_decision(0), "stop")
    r1 = store.write(sample_decision(1))
    assert (r0.seq, r1.seq) == (0, 1)
    assert not r0.duplicate and r0.decision_id == "decision-0"
    lines = (tmp_path / "a" / "segment-000001.jsonl").read_bytes().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["prev_hash"] == GENESIS and first["hash"] == r0.hash
    assert second["prev_hash"] == r0.hash and second["hash"] == r1.hash
    assert first["action"] == "stop" and second["action"] is None
    store.close()
    assert open_verify(tmp_path / "a").ok


def test_same_event_twice_writes_one_record(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    first = store.write(sample_decision(1))
    again = store.write(sample_decision(1))
    assert again.duplicate and (again.seq, again.hash, again.decision_id) == (
        first.seq,
        first.hash,
        "decision-1",
    )
    other_source = store.write(sample_decision(1, source="state_change"))  # same id, other source
    assert not other_source.duplicate and other_source.seq == 1
    store.close()
    # Still a duplicate for a new store instance (index reloaded from disk).
    reopened = LocalAuditStore(tmp_path / "a", salt=SALT)
    assert reopened.write(sample_decision(1)).duplicate
    assert reopened.head[0] == 1
    reopened.close()
    assert _seqs(tmp_path / "a") == [0, 1]


def test_decisions_without_event_id_are_always_written(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    a = store.write(sample_decision(1, event_id=""))
    b = store.write(sample_decision(1, event_id=""))
    assert (a.seq, b.seq, b.duplicate) == (0, 1, False)
    store.close()


def test_checkpoints_every_n_and_on_close(tmp_path: Path) -> None:
    signer = LocalEd25519Signer(tmp_path / "k" / "cp.pem")
    store = LocalAuditStore(
        tmp_path / "a", signer, checkpoint_every=10, salt=SALT, clock=lambda: "2025-01-01T00:00:00Z"
    )
    for i in range(25):
        store.write(sample_decision(i))
    cps = [json.loads(x) for x in (tmp_path / "a" / "checkpoints.jsonl").read_bytes().splitlines()]
    assert [c["seq"] for c in cps] == [9, 19]
    store.close()
    store.close()  # idempotent
    cps = [json.loads(x) for x in (tmp_path / "a" / "checkpoints.jsonl").read_bytes().splitlines()]
    assert [c["seq"] for c in cps] == [9, 19, 24]
    for c in cps:
        verify_checkpoint(c, signer.public_key_pem())
        assert (
            c["alg"] == "EdDSA" and c["key_id"] == signer.key_id and c["timestamp"] == "2025-01-01T00:00:00Z"
        )
    lines = (tmp_path / "a" / "segment-000001.jsonl").read_bytes().splitlines()
    assert cps[-1]["hash"] == json.loads(lines[24])["hash"]


def test_segments_rotate_by_size(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT, segment_max_bytes=10_000)
    for i in range(30):
        store.write(sample_decision(i))
    store.close()
    segs = sorted(p.name for p in (tmp_path / "a").glob("segment-*.jsonl"))
    assert segs[:2] == ["segment-000001.jsonl", "segment-000002.jsonl"] and len(segs) >= 5
    assert all((tmp_path / "a" / s).stat().st_size <= 10_000 for s in segs)
    assert _seqs(tmp_path / "a") == list(range(30))
    assert open_verify(tmp_path / "a").ok
    reopened = LocalAuditStore(tmp_path / "a", salt=SALT, segment_max_bytes=10_000)
    assert reopened.write(sample_decision(30)).seq == 30
    assert reopened.write(sample_decision(3)).duplicate
    reopened.close()


def test_index_loss_is_rebuilt_from_segments(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT, segment_max_bytes=8192)
    for i in range(20):
        store.write(sample_decision(i))
    head = store.head
    store.close()
    (tmp_path / "a" / "index.tsv").unlink()
    reopened = LocalAuditStore(tmp_path / "a", salt=SALT, segment_max_bytes=8192)
    assert reopened.head == head
    assert reopened.write(sample_decision(7)).duplicate
    assert reopened.write(sample_decision(20)).seq == 20
    reopened.close()
    assert open_verify(tmp_path / "a").ok


def test_record_written_without_index_line_is_recovered(tmp_path: Path) -> None:
    """A writer that crashed between the segment and the index write must not fork the chain."""
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    r = store.write(sample_decision(0))
    store.close()
    orphan = seal_record(build_record(sample_decision(1), None, salt=SALT), 1, r.hash)
    with (tmp_path / "a" / "segment-000001.jsonl").open("ab") as fh:
        fh.write(orphan.line)
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    assert store.head == (1, orphan.hash)
    assert store.write(sample_decision(1)).duplicate
    assert store.write(sample_decision(2)).seq == 2
    store.close()
    assert open_verify(tmp_path / "a").ok


def test_torn_last_record_is_set_aside(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    store.write(sample_decision(0))
    store.close()
    partial = seal_record(build_record(sample_decision(1), None, salt=SALT), 1, GENESIS).line[:100]
    with (tmp_path / "a" / "segment-000001.jsonl").open("ab") as fh:
        fh.write(partial)
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    assert store.write(sample_decision(1)).seq == 1
    store.close()
    assert open_verify(tmp_path / "a").ok
    assert partial in (tmp_path / "a" / "torn-records.bin").read_bytes()


def test_truncated_segment_makes_writes_fail(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    for i in range(3):
        store.write(sample_decision(i))
    seg = tmp_path / "a" / "segment-000001.jsonl"
    data = seg.read_bytes()
    seg.write_bytes(data[: data.index(b"\n") + 1])
    with pytest.raises(AuditWriteError, match="shorter than index"):
        store.write(sample_decision(3))
    store._close_fds()


def test_broken_chain_on_disk_refuses_appends(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", salt=SALT)
    store.write(sample_decision(0))
    store.close()
    bogus = seal_record(build_record(sample_decision(1), None, salt=SALT), 5, GENESIS)  # wrong seq/prev
    with (tmp_path / "a" / "segment-000001.jsonl").open("ab") as fh:
        fh.write(bogus.line)
    with pytest.raises(AuditWriteError, match="chain broken"):
        LocalAuditStore(tmp_path / "a", salt=SALT)


class _FailingSigner:
    key_id = "sha256:0"
    alg = "EdDSA"

    def sign(self, message: bytes) -> bytes:
        raise SignerError("HSM unavailable")

    def public_key_pem(self) -> bytes:
        return b""


def test_signer_failure_after_the_write_is_reported_not_raised(tmp_path: Path) -> None:
    """Issue 11: the record is written; the checkpoint fails separately and is retried later."""
    store = LocalAuditStore(tmp_path / "a", _FailingSigner(), checkpoint_every=2, salt=SALT)
    store.write(sample_decision(0))
    receipt = store.write(sample_decision(1))
    assert receipt.seq == 1 and not receipt.duplicate
    assert receipt.seal_error is not None and "HSM unavailable" in receipt.seal_error
    assert store.seal_pending and store.head[0] == 1
    again = store.write(sample_decision(2))  # retried on the next write, still failing
    assert again.seal_error is not None and store.seal_pending
    with pytest.raises(AuditWriteError):  # an explicit checkpoint still reports the failure
        store.close()


def test_unwritable_location_is_an_audit_write_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(AuditWriteError):
        LocalAuditStore(tmp_path / "file" / "audit", salt=SALT)


def test_bad_parameters_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalAuditStore(tmp_path / "a", checkpoint_every=0)
    with pytest.raises(ValueError):
        LocalAuditStore(tmp_path / "b", segment_max_bytes=10)


def test_salt_is_created_once_and_kept_private(tmp_path: Path) -> None:
    s1 = LocalAuditStore(tmp_path / "a")
    s1.close()
    salt_file = tmp_path / "a" / ".salt"
    assert salt_file.stat().st_mode & 0o077 == 0
    s2 = LocalAuditStore(tmp_path / "a")
    assert s2.salt == s1.salt == salt_file.read_bytes()
    s2.close()


_WORKER = """
import sys
from benchmarks.audit_bench import sample_decision
from enforcer.audit.local import LocalAuditStore
from enforcer.audit.signing import LocalEd25519Signer
d, key, w = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = LocalAuditStore(d, LocalEd25519Signer(key), checkpoint_every=7, salt=b"multi-process-salt", segment_max_bytes=20000)
for i in range(40):
    store.write(sample_decision(w * 1000 + i), "stop")
    if i % 10 == 0:
        store.write(sample_decision(90000 + i))  # the same events from every worker: logged once
store.close()
"""


def test_concurrent_processes_share_one_chain(tmp_path: Path) -> None:
    key = tmp_path / "k" / "cp.pem"
    signer = LocalEd25519Signer(key)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path / "a"), str(key), str(w)], env=env)
        for w in range(4)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0, 0]
    rep = open_verify(tmp_path / "a", signer.public_key_pem())
    assert rep.ok, rep.issues
    assert rep.records == 4 * 40 + 4
    assert _seqs(tmp_path / "a") == list(range(rep.records))
    ids = []
    for seg in sorted((tmp_path / "a").glob("segment-*.jsonl")):
        ids.extend(json.loads(x)["trigger"]["event_id"] for x in seg.read_bytes().splitlines())
    expected = {f"event-{w * 1000 + i}" for w in range(4) for i in range(40)} | {
        f"event-{90000 + i}" for i in range(0, 40, 10)
    }
    assert len(ids) == len(set(ids)) and set(ids) == expected


def test_bench_function_runs_and_reports_rates(tmp_path: Path) -> None:
    res = bench_audit(200, tmp_path)
    assert res["records"] == 200 and res["append_per_s"] > 0 and res["verify_per_s"] > 0
