"""Replay at scale: the realistic mix, the pre-filter's exactness, parallel processes, resumable output."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import enforcer.replay as replay_mod
from enforcer.cli import cli
from enforcer.intake import normalise
from enforcer.model import Ignored
from enforcer.replay import iter_events, replay
from enforcer.replay_filter import launch_keys, skippable
from enforcer.replay_run import MARKER, RunConfig, RunError, run_files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from synth_cloudtrail import NON_LAUNCH, Mix, launch_shapes, mix_accounts, write_mix  # noqa: E402

VOLATILE = ("decision_id", "timestamp", "latency_ms", "timings")


def _records(files: list[Path]) -> list[dict[str, Any]]:
    return [r for f in files for r in orjson.loads(gzip.open(f).read())["Records"]]


def _stable(text: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in text.splitlines()]


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mix")
    files = write_mix(root / "ct", 1200, per_file=200, accounts=400, launch_share=0.05, state=root / "state")
    return {"root": root, "files": sorted(files), "records": _records(files)}


def test_the_mix_is_shaped_like_an_organisation(tmp_path: Path) -> None:
    files = write_mix(tmp_path / "ct", 20_000, per_file=5000, accounts=2500, launch_share=0.02)
    recs = _records(files)
    keys = launch_keys()
    launches = [r for r in recs if (r["eventSource"], r["eventName"]) in keys]
    assert len(recs) == 20_000 and len(launches) / len(recs) <= 0.05  # >= 95 % non-launch
    assert len({r["eventSource"] for r in recs}) >= 20  # many services
    assert len({r["recipientAccountId"] for r in recs}) >= 2000  # thousands of accounts
    # launch inputs are mostly distinct (account, region, type, principal, time all vary)
    inputs = {json.dumps([r["recipientAccountId"], r["awsRegion"], r["requestParameters"]]) for r in launches}
    assert len(inputs) >= 0.95 * len(launches)
    # files sit where CloudTrail writes them
    assert all("/AWSLogs/" in str(f) and "/CloudTrail/" in str(f) for f in files)


def test_every_synthesisable_decided_shape_is_generated() -> None:
    shapes = launch_shapes()
    ops = {(s.event_source, s.operation) for s in shapes}
    assert ("ec2.amazonaws.com", "RunInstances") in ops and len(ops) >= 80
    assert {s.style for s in shapes} == {"cloudtrail", "wrapped"}
    mix = Mix(mix_accounts(50, 1), 1.0, 1)
    seen = {(r["eventSource"], r["eventName"]) for r in (mix.record(i) for i in range(len(shapes) * 12))}
    assert len(seen & ops) >= 0.9 * len(ops)


def test_synth_has_a_real_help() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "synth_cloudtrail.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--launch-share" in out and "--accounts" in out and "--kind" in out


def _adversarial(mix_records: list[dict[str, Any]]) -> list[Any]:
    base = next(r for r in mix_records if r["eventName"] == "GetObject")
    run = dict(base, eventSource="ec2.amazonaws.com", eventName="RunInstances")
    return [
        dict(base, eventName=7),
        dict(base, eventName="x" * 200),
        dict(base, eventSource=None),
        dict(base, eventSource="s" * 129),
        dict(base, eventID=12),
        dict(base, eventID="e" * 300),
        dict(base, eventName=""),
        dict(base, eventName="Get\x00Object"),
        dict(base, eventSource="s3.amazonaws.com\n"),
        dict(base, eventID=""),
        {
            "detail-type": "AWS API Call via CloudTrail",
            "detail": run,
            "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject",
            "id": "eb-1",
            "source": "aws.ec2",
        },
        dict(base, Records=[run]),
        [base],
        "GetObject",
        None,
    ]


def test_the_prefilter_only_skips_what_normalise_ignores(mix: dict[str, Any]) -> None:
    recs = mix["records"] + _adversarial(mix["records"])
    skipped = 0
    # normalise ignores a non-launch call before looking at its identity: skipping it is the same answer
    recs.append(dict(mix["records"][0], userIdentity="not an object", eventName="GetObject"))
    for rec in recs:
        if skippable(rec):
            skipped += 1
            assert isinstance(normalise(rec), Ignored), rec  # never raises, never decides
    assert skipped >= 0.9 * len(mix["records"])
    for rec in _adversarial(mix["records"]):
        assert not skippable(rec)  # malformed or claimed by another detector: normalise judges it


def test_the_prefilter_keys_are_what_the_intake_decides() -> None:
    from enforcer.intake import CLOUDTRAIL_SHAPES
    from enforcer.intake.cloudtrail_generic import extractor_for

    for source, name in launch_keys():
        assert (source, name) in CLOUDTRAIL_SHAPES or extractor_for(source, name) is not None
    for source, name, _, _ in NON_LAUNCH:
        assert (source, name) not in CLOUDTRAIL_SHAPES and extractor_for(source, name) is None


def test_replay_with_and_without_the_prefilter_agree(
    mix: dict[str, Any], make_enforcer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from enforcer.accounts import LocalAccountDirectory

    origins = LocalAccountDirectory(mix["root"] / "state" / "accounts.json").list()
    files = [str(f) for f in mix["files"][:3]]
    fast, slow = io.StringIO(), io.StringIO()
    s1 = replay(iter_events(files), make_enforcer(origins), fast, now=1.8e9)
    monkeypatch.setattr(replay_mod, "skippable", lambda rec: False)
    s2 = replay(iter_events(files, prefilter=False), make_enforcer(origins), slow, now=1.8e9)
    assert (s1.events, s1.decided, s1.ignored, s1.errors) == (s2.events, s2.decided, s2.ignored, s2.errors)
    assert s1.decided > 0 and _stable(fast.getvalue()) == _stable(slow.getvalue())


def _cfg(mix: dict[str, Any]) -> RunConfig:
    return RunConfig(str(mix["root"] / "state"), "embedded", None, None, None, False, 1.8e9)


def test_interrupted_run_is_marked_and_resumes_to_the_same_output(
    mix: dict[str, Any], tmp_path: Path
) -> None:
    files, cfg = mix["files"], _cfg(mix)
    whole = tmp_path / "whole.jsonl"
    clean = run_files(files, cfg, whole)
    assert not clean.interrupted and not Path(f"{whole}.parts").exists()

    out = tmp_path / "out.jsonl"

    def stop_after_two(done: int, total: int, events: int, elapsed: float) -> None:
        if done == 2:
            raise KeyboardInterrupt

    res = run_files(files, cfg, out, progress=stop_after_two)
    parts = Path(f"{out}.parts")
    assert res.interrupted and not out.exists()
    assert (parts / MARKER).exists() and "--resume" in (parts / MARKER).read_text()
    assert len(list(parts.glob("*.summary.json"))) == 2
    with pytest.raises(RunError, match="--resume"):
        run_files(files, cfg, out)
    # a torn part (its summary never written) is replayed again, not reused
    (parts / "00000005.jsonl").write_text('{"torn": ')
    again = run_files(files, cfg, out, resume=True)
    assert again.reused == 2 and not again.interrupted and not parts.exists()
    assert _stable(out.read_text()) == _stable(whole.read_text())
    assert again.summary.events == clean.summary.events == 1200
    assert again.summary.by_effect == clean.summary.by_effect


def test_a_changed_source_is_not_reused(mix: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "ct"
    src.mkdir()
    copies = []
    for f in mix["files"][:2]:
        (src / f.name).write_bytes(f.read_bytes())
        copies.append(src / f.name)
    out = tmp_path / "o.jsonl"

    def stop(done: int, total: int, events: int, elapsed: float) -> None:
        raise KeyboardInterrupt

    run_files(copies, _cfg(mix), out, progress=stop)
    recs = _records([copies[0]])[:10]
    with gzip.open(copies[0], "wb") as fh:
        fh.write(json.dumps({"Records": recs}).encode())
    res = run_files(copies, _cfg(mix), out, resume=True)
    assert res.reused == 0 and res.summary.events == 10 + 200


def test_two_processes_give_the_one_process_output(mix: dict[str, Any], tmp_path: Path) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    r1 = run_files(mix["files"], _cfg(mix), one, jobs=1)
    r2 = run_files(mix["files"], _cfg(mix), two, jobs=2)
    assert _stable(one.read_text()) == _stable(two.read_text())
    assert r1.summary.by_account == r2.summary.by_account and r2.summary.events == 1200


def test_cli_jobs_resume_and_progress(mix: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl"
    state = str(mix["root"] / "state")
    r = CliRunner().invoke(cli, ["--state", state, "replay", str(mix["root"] / "ct"), "--jobs", "2"])
    assert r.exit_code != 0 and "--out" in r.output
    r = CliRunner().invoke(
        cli, ["--state", state, "replay", str(mix["root"] / "ct"), "--out", str(out), "--jobs", "2"]
    )
    assert r.exit_code == 0, r.output
    assert "Replayed 1200 events" in r.output and "[replay] 6/6 files" in r.output
    decided = int(r.output.split(" decided")[0].rsplit(" ", 1)[-1])
    assert decided > 0 and len(out.read_text().splitlines()) == decided


def test_bad_json_file_is_an_error_line_in_its_part(mix: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"Records": [')
    good = mix["files"][0]
    out = tmp_path / "o.jsonl"
    res = run_files([tmp_path / "bad.json", good], _cfg(mix), out)
    lines = out.read_text().splitlines()
    assert res.summary.errors == 1 and json.loads(lines[0])["error"] == "BAD_INPUT"
    assert res.summary.events == 201


def test_out_inside_the_source_tree_is_never_read_back(mix: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "trail"
    src.mkdir()
    for f in mix["files"][:2]:
        (src / f.name).write_bytes(f.read_bytes())
    state = str(mix["root"] / "state")
    args = ["--state", state, "replay", str(src), "--out", str(src / "decisions.jsonl")]
    for _ in range(2):  # the second run finds decisions.jsonl in the tree and must not replay it
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, r.output
        assert "Replayed 400 events" in r.output and "0 malformed" in r.output


def test_unwritable_parts_and_empty_sources_are_clear(mix: dict[str, Any], tmp_path: Path) -> None:
    blocker = tmp_path / "o.jsonl.parts"
    blocker.write_text("a file where the parts directory goes")
    with pytest.raises(RunError, match="cannot write"):
        run_files(mix["files"][:1], _cfg(mix), tmp_path / "o.jsonl")
    with pytest.raises(RunError, match="cannot write"):
        run_files(mix["files"][:1], _cfg(mix), blocker / "x.jsonl")  # its folder is a file
    empty = tmp_path / "empty"
    empty.mkdir()
    state = str(mix["root"] / "state")
    r = CliRunner().invoke(cli, ["--state", state, "replay", str(empty), "--out", str(tmp_path / "e.jsonl")])
    assert r.exit_code == 0 and "Replayed 0 events" in r.output and (tmp_path / "e.jsonl").read_text() == ""


def test_workers_do_not_rerun_the_console_script(mix: dict[str, Any], tmp_path: Path) -> None:
    # spawn re-runs a script __main__ in every worker (the whole CLI import); the workers need none of it
    script, mark, out = tmp_path / "enforcer_script.py", tmp_path / "ran", tmp_path / "o.jsonl"
    script.write_text(
        "import os, sys\n"
        "with open(os.environ['MARK'], 'a') as fh:\n"
        "    fh.write(f'{os.getpid()}\\n')\n"
        "from enforcer.cli import main\n"
        "if __name__ == '__main__':\n"
        "    sys.exit(main())\n"
    )
    args = ["--state", str(mix["root"] / "state"), "replay", str(mix["root"] / "ct"), "--out", str(out)]
    p = subprocess.run(
        [sys.executable, str(script), *args, "--jobs", "2", "--no-memo"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "MARK": str(mark), "COLUMNS": "200"},
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "2 process(es)" in " ".join(p.stderr.split())
    assert len(mark.read_text().split()) == 1  # the parent only
    assert len(out.read_text().splitlines()) > 0


def test_spawned_workers_get_the_deployed_go_settings_unless_the_caller_set_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from enforcer.policy.go_env import DEPLOYED
    from enforcer.replay_run import _worker_go_env

    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)
    with _worker_go_env():
        assert {k: os.environ[k] for k in DEPLOYED} == DEPLOYED == {"GOGC": "off", "GOMEMLIMIT": "128MiB"}
    assert "GOGC" not in os.environ and "GOMEMLIMIT" not in os.environ  # the parent's own is left as it was
    monkeypatch.setenv("GOGC", "150")
    with _worker_go_env():  # the caller's choice of policy: not mixed with ours (no limit added)
        assert os.environ["GOGC"] == "150" and "GOMEMLIMIT" not in os.environ
    assert os.environ["GOGC"] == "150"
    monkeypatch.delenv("GOGC")
    monkeypatch.setenv("GOMEMLIMIT", "1GiB")
    with _worker_go_env():
        assert os.environ["GOMEMLIMIT"] == "1GiB" and "GOGC" not in os.environ


def test_an_accounts_files_stay_on_one_worker_so_its_ledger_sums_them_all(
    mix: dict[str, Any], tmp_path: Path
) -> None:
    """Six log files of one account, one 8 x p5.48xlarge launch each: the sixth crosses the account's
    AGGREGATE_COMPUTE deny threshold (5,000,000 running TPP) only when one ledger books all six, as one
    process does. Two processes must not spread the account's files over both ledgers."""
    import random

    from synth_cloudtrail import record

    from enforcer.accounts import LocalAccountDirectory

    origins = LocalAccountDirectory(mix["root"] / "state" / "accounts.json").list()
    acct_id = next(
        o.account_id for o in origins if o.country == "US" and o.kyc == "verified" and not o.reseller
    )
    folder = tmp_path / "AWSLogs" / acct_id / "CloudTrail" / "us-east-1" / "2026" / "10" / "01"
    folder.mkdir(parents=True)
    files = []
    for k in range(6):
        rec = record(9000 + k, random.Random(k))
        rec["eventTime"] = f"2026-10-01T0{k}:00:00Z"
        rec["recipientAccountId"] = rec["userIdentity"]["accountId"] = acct_id
        rec["requestParameters"]["instanceType"] = "p5.48xlarge"
        rec["responseElements"]["instancesSet"]["items"] = [
            {"instanceId": f"i-{k:08x}{n:09x}", "instanceType": "p5.48xlarge"} for n in range(8)
        ]
        path = folder / f"{acct_id}_CloudTrail_us-east-1_20261001T0{k}00Z_{k:04d}.json.gz"
        with gzip.open(path, "wt") as fh:
            json.dump({"Records": [rec]}, fh)
        files.append(path)
    # interleave another account's files, as a sorted listing of many accounts would
    for f in mix["files"][:4]:
        files.append(f)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    run_files(files, _cfg(mix), one, jobs=1)
    run_files(files, _cfg(mix), two, jobs=2)

    def aggregate(out: Path) -> list[tuple[str, str]]:
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        return sorted(
            (x["request"]["event_id"], x["effect"])
            for x in lines
            if x.get("request", {}).get("account_id") == acct_id
            and any(r["code"] == "AGGREGATE_COMPUTE" for r in x.get("reasons", []))
        )

    assert any(effect == "deny" for _, effect in aggregate(one)), aggregate(one)
    assert aggregate(two) == aggregate(one)


def test_files_are_grouped_by_the_account_folder_of_account_and_organization_trails() -> None:
    from enforcer.replay_run import _groups, account_folder

    acct = Path("logs/AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/01/x.json.gz")
    org = Path("logs/AWSLogs/o-abc123/444455556666/CloudTrail/eu-west-1/2026/10/01/y.json.gz")
    assert account_folder(acct) == "111122223333" and account_folder(org) == "444455556666"
    assert account_folder(Path("flat/z.json.gz")) == ""
    files = [acct, org, Path("flat/a.json.gz"), acct.with_name("x2.json.gz"), Path("flat/b.json.gz"), org]
    assert _groups(files, list(range(6))) == [[0, 3], [1, 5], [2], [4]]


def test_wasm_workers_share_one_compiled_policy_and_decide_as_the_go_evaluator(
    mix: dict[str, Any], tmp_path: Path
) -> None:
    """``--engine wasm --jobs 2``: the policy is compiled once by the parent (a private directory each
    worker loads, removed after the run) and the output is the embedded engine's, line for line."""
    from dataclasses import replace

    from enforcer.replay_run import _shared_wasm
    from tests.opa_real import require_opa

    require_opa()
    wasm_cfg = replace(_cfg(mix), engine="wasm")
    shared = _shared_wasm(wasm_cfg)
    assert shared is not None
    manifest = json.loads((Path(shared.name) / "manifest.json").read_text())
    assert manifest["precompiled"] and manifest["modules_digest"]
    shared.cleanup()
    assert _shared_wasm(_cfg(mix)) is None  # another engine: nothing compiled
    emb, wasm = tmp_path / "emb.jsonl", tmp_path / "wasm.jsonl"
    run_files(mix["files"], _cfg(mix), emb, jobs=1)
    before = set(Path(tempfile.gettempdir()).glob("enforcer-replay-wasm-*"))
    run_files(mix["files"], wasm_cfg, wasm, jobs=2)
    assert set(Path(tempfile.gettempdir()).glob("enforcer-replay-wasm-*")) == before
    engines: set[str] = set()

    def unnamed(text: str) -> list[dict[str, Any]]:  # the lines without the engine's name and version
        out = _stable(text)
        for line in out:
            pol = line.get("policy") or {}
            engines.add(str(pol.pop("engine", "")))
            pol.pop("engine_version", None)
        return out

    assert unnamed(emb.read_text()) == unnamed(wasm.read_text())
    assert {"embedded", "wasm"} <= engines
