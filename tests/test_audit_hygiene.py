"""Issue 11: the local store under real faults, and verification anchored outside the log's folder.

Faults are real: a writer process killed with SIGKILL in the middle of an append, a file-size limit
(RLIMIT_FSIZE: the kernel answers EFBIG, as a full disk answers ENOSPC), a tmpfs remounted read-only
(root) or a read-only directory, a lock held by another open file description.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from benchmarks.audit_bench import sample_decision
from enforcer.audit.defaults import open_local_store
from enforcer.audit.local import LocalAuditStore
from enforcer.audit.verify import Anchor, open_verify
from enforcer.cli.audit import audit_group
from enforcer.ports import AuditWriteError
from enforcer.state import CliState

ROOT = Path(__file__).resolve().parents[1]
SALT = b"hygiene-salt-0000000"
SEG = "segment-000001.jsonl"


@click.group()
@click.option("--state", required=True)
@click.pass_context
def cli(ctx: click.Context, state: str) -> None:
    ctx.obj = CliState(Path(state))


cli.add_command(audit_group)


def _run(script: str, *args: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[arg-type]
    )


# -- kill -9 mid-append ---------------------------------------------------------------------------
_HALF_WRITER = """
import os, sys, time
from benchmarks.audit_bench import sample_decision
from enforcer.audit.local import LocalAuditStore
store = LocalAuditStore(sys.argv[1], salt=b"hygiene-salt-0000000")
for i in range(5):
    store.write(sample_decision(i))
real = LocalAuditStore._write_all
def torn(fd, data):
    if fd == store._seg_fd:
        os.write(fd, data[: len(data) // 2])
        print("torn", flush=True)
        time.sleep(60)  # killed here, half a record on disk
    real(fd, data)
LocalAuditStore._write_all = staticmethod(torn)
store.write(sample_decision(5))
"""


def test_kill_9_mid_append_is_crash_truncated_not_tampering_and_repaired(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    proc = _run(_HALF_WRITER, str(d))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"torn"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    rep = open_verify(d)
    assert rep.ok, rep.summary()
    assert rep.records == 5 and rep.crash_truncated_at == 5
    assert "crash-truncated at seq 5" in rep.summary()
    assert not any(i.kind == "malformed" for i in rep.issues)

    store = LocalAuditStore(d, salt=SALT)  # the next writer sets the torn record aside
    receipt = store.write(sample_decision(5))
    store.close()
    assert receipt.seq == 5 and not receipt.duplicate
    again = open_verify(d)
    assert again.ok and again.records == 6 and again.crash_truncated_at is None
    assert (d / "torn-records.bin").exists()


_LOOP_WRITER = """
import sys
from benchmarks.audit_bench import sample_decision
from enforcer.audit.local import LocalAuditStore
store = LocalAuditStore(sys.argv[1], salt=b"hygiene-salt-0000000", checkpoint_every=7)
print("ready", flush=True)
i = 0
while True:
    store.write(sample_decision(i, event_id=f"loop-{i}"))
    i += 1
"""


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_kill_9_of_a_busy_writer_leaves_a_verifying_log(tmp_path: Path, delay: float) -> None:
    d = tmp_path / "audit"
    proc = _run(_LOOP_WRITER, str(d))
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rep = open_verify(d)
    assert rep.ok, rep.summary()
    assert rep.records > 0
    store = LocalAuditStore(d, salt=SALT)
    store.write(sample_decision(10**6, event_id="after-crash"))
    store.close()
    after = open_verify(d)
    assert after.ok and after.records == rep.records + 1 and after.crash_truncated_at is None


# -- disk full, read-only, lock ---------------------------------------------------------------------
_FSIZE_WRITER = """
import resource, signal, sys
from benchmarks.audit_bench import sample_decision
from enforcer.audit.local import LocalAuditStore
from enforcer.ports import AuditWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
store = LocalAuditStore(sys.argv[1], salt=b"hygiene-salt-0000000")
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
n = 0
try:
    while True:
        store.write(sample_decision(n)); n += 1
except AuditWriteError as exc:
    print(n, exc.code, str(exc).replace(chr(10), " "), flush=True)
"""


def test_disk_full_is_one_clear_error_and_the_log_stays_whole(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    proc = _run(_FSIZE_WRITER, str(d))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    n_s, code, msg = out.decode().strip().split(" ", 2)
    assert code == "AUDIT_DISK_FULL" and "no space left" in msg and "\n" not in msg
    rep = open_verify(d)
    assert rep.ok and rep.records == int(n_s) and rep.crash_truncated_at is None  # the partial line undone
    store = LocalAuditStore(d, salt=SALT)  # with room again, the next write chains on
    store.write(sample_decision(int(n_s)))
    store.close()
    assert open_verify(d).records == int(n_s) + 1


@pytest.fixture
def read_only_dir(tmp_path: Path) -> object:
    """A log directory that cannot be written: a tmpfs remounted read-only (root), else mode 0555."""
    d = tmp_path / "ro"
    d.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)]).returncode == 0
    store = LocalAuditStore(d / "audit", salt=SALT)
    store.write(sample_decision(0))
    store.close()
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    else:
        for p in [d / "audit", *(d / "audit").iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
    yield d / "audit"
    if mounted:
        subprocess.run(["umount", str(d)], check=False)
    else:
        for p in [d / "audit", *(d / "audit").iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_read_only_log_is_one_clear_error(read_only_dir: Path) -> None:
    if os.geteuid() == 0 and not os.path.ismount(read_only_dir.parent):
        pytest.fail("root but the tmpfs could not be mounted")
    with pytest.raises(AuditWriteError) as ei:
        store = LocalAuditStore(read_only_dir, salt=SALT)
        store.write(sample_decision(1))
    assert ei.value.code == "AUDIT_READ_ONLY" and "read-only" in str(ei.value)
    assert "\n" not in str(ei.value)
    assert open_verify(read_only_dir).ok


def test_lock_held_elsewhere_is_audit_locked_within_the_timeout(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    LocalAuditStore(d, salt=SALT).close()
    fd = os.open(d / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        t0 = time.monotonic()
        with pytest.raises(AuditWriteError) as ei:
            LocalAuditStore(d, salt=SALT, lock_timeout=0.3)
        assert ei.value.code == "AUDIT_LOCKED" and time.monotonic() - t0 < 5  # 0.3 s, generous under load
    finally:
        os.close(fd)
    LocalAuditStore(d, salt=SALT).close()  # released: it opens again


def test_a_record_is_never_dated_before_the_previous_one(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    store = LocalAuditStore(d, salt=SALT)
    store.write(sample_decision(0, timestamp="2026-12-01T00:00:00.000Z"))
    store.close()
    store = LocalAuditStore(d, salt=SALT)  # a fresh process: the previous time is read back from disk
    store.write(sample_decision(1, timestamp="2026-01-14T23:59:59.000Z"))
    store.close()
    recs = [json.loads(line) for line in (d / SEG).read_text().splitlines()]
    assert [r["timestamp"] for r in recs] == ["2026-12-01T00:00:00.000Z"] * 2
    assert recs[1]["requested_timestamp"] == "2026-01-14T23:59:59.000Z"
    assert open_verify(d).ok


# -- anchors from outside the folder --------------------------------------------------------------
def _log(tmp_path: Path, n: int = 12) -> CliState:
    state = CliState(tmp_path / "state")
    store = open_local_store(state.audit_dir, state.keys_dir, checkpoint_every=5)
    for i in range(n):
        store.write(sample_decision(i))
    store.close()
    return state


def _drop_newest_with_their_checkpoints(state: CliState, keep: int) -> None:
    """What an insider does: delete the newest records AND the checkpoints that cover them."""
    d = state.audit_dir
    lines = (d / SEG).read_bytes().splitlines(keepends=True)
    (d / SEG).write_bytes(b"".join(lines[:keep]))
    cps = [c for c in (d / "checkpoints.jsonl").read_text().splitlines() if json.loads(c)["seq"] < keep]
    (d / "checkpoints.jsonl").write_text("".join(c + "\n" for c in cps))
    (d / "index.tsv").unlink()


def test_truncation_with_checkpoints_passes_without_an_anchor_and_fails_with_one(tmp_path: Path) -> None:
    state = _log(tmp_path)
    runner = CliRunner()
    kept = tmp_path / "reviewer-kept.json"  # outside the state folder
    res = runner.invoke(cli, ["--state", str(state.state), "audit", "anchor", "--out", str(kept)])
    assert res.exit_code == 0, res.output
    assert json.loads(kept.read_text())["seq"] == 11
    pub = tmp_path / "pinned.pub.pem"
    pub.write_bytes((state.keys_dir / "audit-checkpoint-ed25519.pub.pem").read_bytes())
    ok = runner.invoke(
        cli,
        [
            "--state",
            str(state.state),
            "audit",
            "verify",
            "--public-key",
            str(pub),
            "--trusted-checkpoint",
            str(kept),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "anchored through seq 11" in ok.stdout

    _drop_newest_with_their_checkpoints(state, keep=7)

    naive = open_verify(state.audit_dir)  # the old behaviour: nothing outside the folder, nothing to see
    assert naive.ok and naive.anchored_through == -1
    assert any("not anchored" in w for w in naive.warnings)
    res = runner.invoke(
        cli,
        [
            "--state",
            str(state.state),
            "audit",
            "verify",
            "--public-key",
            str(pub),
            "--trusted-checkpoint",
            str(kept),
        ],
    )
    assert res.exit_code == 1
    assert "[truncated]" in res.output and "records 7..11 were removed" in res.output
    h = json.loads(kept.read_text())["hash"]
    rep = open_verify(state.audit_dir, anchors=[Anchor(11, h, "kept")])
    assert not rep.ok and rep.first_issue is not None and rep.first_issue.kind == "truncated"


def test_anchor_option_and_a_rewritten_record_under_it(tmp_path: Path) -> None:
    state = _log(tmp_path)
    h4 = json.loads((state.audit_dir / SEG).read_text().splitlines()[4])["hash"]
    runner = CliRunner()
    res = runner.invoke(cli, ["--state", str(state.state), "audit", "verify", "--anchor", f"4:{h4}"])
    assert res.exit_code == 0 and "anchored through seq 4 by anchor 4" in res.stdout
    bad = runner.invoke(cli, ["--state", str(state.state), "audit", "verify", "--anchor", f"4:{'0' * 64}"])
    assert bad.exit_code == 1
    nonsense = runner.invoke(cli, ["--state", str(state.state), "audit", "verify", "--anchor", "x:y"])
    assert nonsense.exit_code == 2 and "SEQ:HASH" in nonsense.output


def test_query_export_report_refuse_a_log_that_does_not_verify(tmp_path: Path) -> None:
    state = _log(tmp_path)
    seg = state.audit_dir / SEG
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"RunInstances", b"RunInstancez", 1)
    seg.write_bytes(b"".join(lines))
    runner = CliRunner()
    for args in (
        ["audit", "query"],
        ["audit", "export"],
        ["audit", "report", "--html", str(tmp_path / "r.html")],
    ):
        res = runner.invoke(cli, ["--state", str(state.state), *args])
        assert res.exit_code == 1, (args, res.output)
        assert "does not verify" in res.stderr
    forced = runner.invoke(cli, ["--state", str(state.state), "audit", "export", "--unverified"])
    assert forced.exit_code == 0 and "WARNING: THE AUDIT LOG DOES NOT VERIFY" in forced.stderr
    assert len(forced.stdout.splitlines()) == 12


def test_reseller_ids_are_validated(tmp_path: Path) -> None:
    from enforcer.accounts import origin_from_dict
    from enforcer.model import InputError

    base = {"account_id": "111122223333", "country": "SG", "hq_country": "SG", "parent_hq_country": "SG"}
    assert origin_from_dict({**base, "reseller": "lionbridge-sg"}).reseller == "lionbridge-sg"
    for bad in ("../../etc", "a b", "x" * 200, "-lead", "r\n1"):
        with pytest.raises(InputError):
            origin_from_dict({**base, "reseller": bad})


def test_time_order_holds_across_processes_on_a_long_log(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    store = LocalAuditStore(d, salt=SALT)
    for i in range(200):  # index.tsv well past 8 KiB: the head is found from its tail
        store.write(sample_decision(i, timestamp=f"2026-12-01T00:{i // 60:02d}:{i % 60:02d}.000Z"))
    store.close()
    other = LocalAuditStore(d, salt=SALT)
    other.write(sample_decision(1000, timestamp="2026-11-30T00:00:00.000Z"))
    other.close()
    last = json.loads((d / SEG).read_text().splitlines()[-1])
    assert last["timestamp"] == "2026-12-01T00:03:19.000Z"
    assert last["requested_timestamp"] == "2026-11-30T00:00:00.000Z"
    assert open_verify(d).ok


# -- the same faults through `enforcer decide` (a real process): one line, a code, exit 1 ----------
def _decide(state: Path, event: Path, preexec: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "enforcer"), "--state", str(state), "decide", str(event)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
    )


def _event(tmp_path: Path, n: int) -> Path:
    ev = json.loads((ROOT / "examples/events/runinstances-p5.json").read_text())
    ev["id"] = ev["detail"]["eventID"] = f"hygiene-{n}"
    f = tmp_path / f"ev-{n}.json"
    f.write_text(json.dumps(ev))
    return f


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored signals stay ignored across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_decide_on_a_full_disk_is_one_line_and_exit_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _decide(state, _event(tmp_path, 0))
    assert first.returncode == 3, first.stderr  # unknown account: deny, logged
    size = (state / "audit" / SEG).stat().st_size
    full = _decide(state, _event(tmp_path, 1), _limit_file_size(size + 100))
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: AUDIT_DISK_FULL:"), full.stderr
    assert "Traceback" not in full.stderr
    assert open_verify(state / "audit").records == 1


@pytest.mark.skipif(
    os.geteuid() != 0, reason="needs a tmpfs mount (root); the library-level test covers non-root"
)
def test_decide_on_a_read_only_log_is_one_line_and_exit_1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)]).returncode == 0
    try:
        assert _decide(state, _event(tmp_path, 0)).returncode == 3
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        ro = _decide(state, _event(tmp_path, 1))
        assert ro.returncode == 1, ro.stderr
        lines = ro.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: AUDIT_READ_ONLY:"), ro.stderr
    finally:
        subprocess.run(["umount", str(state)], check=False)
