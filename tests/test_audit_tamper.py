"""Tamper evidence: every kind of tampering is detected and the first bad record is named."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from benchmarks.audit_bench import sample_decision
from enforcer.audit.chain import seal_record
from enforcer.audit.defaults import open_local_store
from enforcer.audit.local import LocalAuditStore
from enforcer.audit.record import build_record, canonical
from enforcer.audit.signing import LocalEd25519Signer, make_checkpoint
from enforcer.audit.verify import open_verify
from enforcer.cli.audit import audit_group
from enforcer.state import CliState

N = 30
EVERY = 10
SEG = "segment-000001.jsonl"


@pytest.fixture()
def log(tmp_path: Path) -> tuple[Path, LocalEd25519Signer]:
    signer = LocalEd25519Signer(tmp_path / "keys" / "cp.pem")
    store = LocalAuditStore(tmp_path / "audit", signer, checkpoint_every=EVERY, salt=b"salt-for-tests-0001")
    for i in range(N):
        store.write(sample_decision(i, effect="deny" if i % 3 else "allow"), "stop")
    store.close()
    return tmp_path / "audit", signer


def _lines(d: Path) -> list[bytes]:
    return (d / SEG).read_bytes().splitlines(keepends=True)


def _put(d: Path, lines: list[bytes]) -> None:
    (d / SEG).write_bytes(b"".join(lines))


def test_untouched_log_verifies(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    rep = open_verify(d, signer.public_key_pem())
    assert rep.ok, rep.issues
    assert rep.records == N
    assert rep.checkpoints == 3  # seq 9, 19, 29 (the last one written on close)
    assert rep.signatures_verified
    assert rep.summary() == f"OK: {N} records, 3 checkpoints"
    assert [w for w in rep.warnings if not w.startswith("not anchored")] == []
    assert open_verify(d, signer.public_key_pem(), deep=True).ok
    pinned = open_verify(d, signer.public_key_pem(), pinned_key=True)
    assert pinned.warnings == [] and pinned.anchored_through == N - 1
    assert pinned.summary() == f"OK: {N} records, 3 checkpoints; anchored through seq {N - 1} by " + (
        "a checkpoint signed with the pinned public key"
    )


def test_edit_is_detected_and_named(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    assert b'"effect":"deny"' in lines[5]
    lines[5] = lines[5].replace(b'"effect":"deny"', b'"effect":"allow"')
    _put(d, lines)
    rep = open_verify(d, signer.public_key_pem())
    issue = rep.first_issue
    assert not rep.ok and issue is not None
    assert (issue.kind, issue.file, issue.line, issue.seq) == ("hash_mismatch", SEG, 6, 5)
    assert "edited" in issue.message


def test_edit_with_recomputed_hash_breaks_the_next_link(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    rec = json.loads(lines[5])
    rec["result"]["effect"] = "allow"
    forged = seal_record(
        {k: v for k, v in rec.items() if k not in ("seq", "prev_hash", "hash")}, 5, rec["prev_hash"]
    )
    lines[5] = forged.line
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.line, issue.seq) == ("prev_hash_mismatch", 7, 6)


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    prev = json.loads(lines[11])["prev_hash"]
    out = lines[:11]
    for i in range(11, N):  # forge record 11 and re-chain everything after it
        rec = json.loads(lines[i])
        if i == 11:
            rec["result"]["effect"] = "allow"
        body = {k: v for k, v in rec.items() if k not in ("seq", "prev_hash", "hash")}
        sealed = seal_record(body, i, prev)
        prev = sealed.hash
        out.append(sealed.line)
    _put(d, out)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.line, issue.seq) == ("checkpoint_mismatch", 20, 19)
    assert "between seq 10 and 19" in issue.message


def test_deletion_is_detected_and_named(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    del lines[12]
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.file, issue.line, issue.seq) == ("seq_gap", SEG, 13, 13)
    assert "record 12 deleted" in issue.message


def test_insertion_is_detected_and_named(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    lines.insert(8, lines[3])  # replay an old record
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.line, issue.seq) == ("seq_order", 9, 3)


def test_forged_insertion_is_detected(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    prev = json.loads(lines[7])["hash"]
    forged = seal_record(build_record(sample_decision(999, effect="allow"), None), 8, prev)
    lines.insert(8, forged.line)
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    # The forged record fits in; the genuine record 8 after it no longer does.
    assert (issue.kind, issue.line, issue.seq) == ("seq_order", 10, 8)


def test_swap_is_detected_and_named(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    lines[14], lines[15] = lines[15], lines[14]
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.line, issue.seq) == ("seq_gap", 15, 15)


def test_truncation_past_last_checkpoint_is_detected(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    _put(d, _lines(d)[:25])  # the checkpoint signs seq 29
    rep = open_verify(d, signer.public_key_pem())
    issue = rep.first_issue
    assert issue is not None
    assert (issue.kind, issue.file, issue.seq) == ("truncated", SEG, 25)
    assert "records 25..29 were removed" in issue.message


def test_checkpoint_resigned_with_wrong_key_is_detected(
    log: tuple[Path, LocalEd25519Signer], tmp_path: Path
) -> None:
    d, signer = log
    cps = (d / "checkpoints.jsonl").read_bytes().splitlines(keepends=True)
    cp = json.loads(cps[1])
    evil = LocalEd25519Signer(tmp_path / "evil.pem")
    cps[1] = canonical(make_checkpoint(evil, cp["seq"], cp["hash"], cp["timestamp"])) + b"\n"
    (d / "checkpoints.jsonl").write_bytes(b"".join(cps))
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.file, issue.line, issue.seq) == (
        "checkpoint_invalid",
        "checkpoints.jsonl",
        2,
        19,
    )
    assert "expected" in issue.message


def test_checkpoint_signed_by_wrong_key_under_right_key_id_is_detected(
    log: tuple[Path, LocalEd25519Signer], tmp_path: Path
) -> None:
    d, signer = log
    cps = (d / "checkpoints.jsonl").read_bytes().splitlines(keepends=True)
    cp = json.loads(cps[0])
    evil = LocalEd25519Signer(tmp_path / "evil.pem")
    evil.key_id = signer.key_id  # claims to be the real key
    cps[0] = canonical(make_checkpoint(evil, cp["seq"], cp["hash"], cp["timestamp"])) + b"\n"
    (d / "checkpoints.jsonl").write_bytes(b"".join(cps))
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None
    assert (issue.kind, issue.line, issue.seq) == ("checkpoint_invalid", 1, 9)
    assert "does not verify" in issue.message


def test_edited_checkpoint_hash_is_detected(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    cps = (d / "checkpoints.jsonl").read_bytes().splitlines(keepends=True)
    cp = json.loads(cps[2])
    cp["hash"] = "0" * 64
    cps[2] = canonical(cp) + b"\n"
    (d / "checkpoints.jsonl").write_bytes(b"".join(cps))
    assert not open_verify(d, signer.public_key_pem()).ok
    # Even without the public key, the checkpoint no longer matches the record it names.
    issue = open_verify(d).first_issue
    assert issue is not None and issue.kind == "checkpoint_mismatch" and issue.seq == 29


def test_deleted_middle_segment_is_detected(tmp_path: Path) -> None:
    store = LocalAuditStore(tmp_path / "a", None, segment_max_bytes=8192, salt=b"s" * 16)
    for i in range(40):
        store.write(sample_decision(i))
    store.close()
    segs = sorted((tmp_path / "a").glob("segment-*.jsonl"))
    assert len(segs) >= 3
    assert open_verify(tmp_path / "a").ok
    first_of_third = json.loads(segs[2].read_bytes().splitlines()[0])["seq"]
    segs[1].unlink()
    issue = open_verify(tmp_path / "a").first_issue
    assert issue is not None
    assert (issue.kind, issue.file, issue.line, issue.seq) == ("seq_gap", segs[2].name, 1, first_of_third)


def test_garbage_line_is_named(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    lines[2] = b"this is not a record\n"
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None and (issue.kind, issue.line, issue.seq) == ("malformed", 3, 2)


# ---------------------------------------------------------------------------- CLI


@click.group()
@click.option("--state", type=click.Path(file_okay=False), required=True)
@click.pass_context
def root(ctx: click.Context, state: str) -> None:
    ctx.obj = CliState(Path(state))


root.add_command(audit_group)


def _state_with_log(tmp_path: Path) -> CliState:
    state = CliState(tmp_path / "state")
    store = open_local_store(state.audit_dir, state.keys_dir, checkpoint_every=5)
    for i in range(12):
        store.write(sample_decision(i))
    store.close()
    return state


def test_cli_verify_ok_then_tampered(tmp_path: Path) -> None:
    state = _state_with_log(tmp_path)
    runner = CliRunner()
    res = runner.invoke(root, ["--state", str(state.state), "audit", "verify"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "OK: 12 records, 3 checkpoints"
    # the key and checkpoints come from the log's own state folder: nothing outside anchors it
    assert "not anchored" in res.stderr
    seg = state.audit_dir / SEG
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b"RunInstances", b"RunInstancez", 1)
    seg.write_bytes(b"".join(lines))
    res = runner.invoke(root, ["--state", str(state.state), "audit", "verify"])
    assert res.exit_code == 1
    assert f"FAIL: {SEG}:5 seq 4:" in res.output and "edited" in res.output


def test_cli_verify_with_explicit_wrong_public_key_fails(tmp_path: Path) -> None:
    state = _state_with_log(tmp_path)
    other = LocalEd25519Signer(tmp_path / "other.pem")
    pub = tmp_path / "other.pub.pem"
    res = CliRunner().invoke(root, ["--state", str(state.state), "audit", "verify", "--public-key", str(pub)])
    assert other.key_id
    assert res.exit_code == 1
    assert "checkpoints.jsonl:1 seq 4" in res.output and "[checkpoint_invalid]" in res.output


def test_cli_verify_bad_inputs(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(root, ["--state", str(tmp_path / "nothing"), "audit", "verify"])
    assert res.exit_code == 2 and "no state folder" in res.output  # a mistyped --state is bad input
    (tmp_path / "empty").mkdir()
    res = runner.invoke(root, ["--state", str(tmp_path / "empty"), "audit", "verify"])
    assert res.exit_code == 1 and "no audit log" in res.output  # a state folder without its log fails
    state = _state_with_log(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    res = runner.invoke(root, ["--state", str(state.state), "audit", "verify", "--public-key", str(junk)])
    assert res.exit_code == 2 and "not a PEM public key" in res.output
    res = runner.invoke(
        root, ["--state", str(state.state), "audit", "verify", "--public-key", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "cannot read public key" in res.output


def test_cli_verify_json_output(tmp_path: Path) -> None:
    state = _state_with_log(tmp_path)
    res = CliRunner().invoke(root, ["--state", str(state.state), "audit", "verify", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["ok"] is True and doc["records"] == 12 and doc["signatures_verified"] is True
    assert doc["anchored_through"] == -1


def test_overlong_line_is_named_without_reading_it_whole(log: tuple[Path, LocalEd25519Signer]) -> None:
    d, signer = log
    lines = _lines(d)
    lines[4] = b"{" + b"x" * (2 * 1024 * 1024) + b"}\n"
    _put(d, lines)
    issue = open_verify(d, signer.public_key_pem()).first_issue
    assert issue is not None and (issue.kind, issue.line, issue.seq) == ("malformed", 5, 4)


def test_signatures_verified_means_checked(tmp_path: Path, log: tuple[Path, LocalEd25519Signer]) -> None:
    """Passing a key is not enough: no checkpoint, or one under another key, is not 'verified'."""
    d, signer = log
    other = LocalEd25519Signer(tmp_path / "keys" / "other.pem")
    assert not open_verify(d, other.public_key_pem()).signatures_verified
    unsigned = LocalAuditStore(tmp_path / "bare", None, checkpoint_every=1000, salt=b"salt-for-tests-0001")
    unsigned.write(sample_decision(0), "stop")
    unsigned.close()
    assert not open_verify(tmp_path / "bare", signer.public_key_pem()).signatures_verified
