"""One CLI convention (docs/cli.md), checked over the whole click command tree as a user meets it.

Every leaf command must be classified below: a new command fails ``test_every_command_is_classified``
until its author says whether it prints records (then it must take ``--format table|json|jsonl``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from enforcer.cli import cli
from tests.conftest import EVENTS, ROOT

ACCOUNT = "111122223333"
CN_ACCOUNT = "222233334444"

#: Commands that print records: each takes --format table|json|jsonl (and the hidden --json).
RECORDS = {
    "catalog list",
    "account list",
    "attest list",
    "reseller list",
    "licence list",
    "screening check",
    "ledger show",
    "audit query",
    "coverage",
}
#: Commands that print one document, a report, an artefact or a stream in a format set elsewhere.
OTHERS = {
    "decide": "one decision JSON; the exit code is the effect",
    "replay": "decisions JSONL (the decide documents) to --out or stdout; summary tables on stderr",
    "demo": "a narrated run for people",
    "catalog classify": "one classification JSON",
    "account add": "the stored account JSON",
    "account show": "one account JSON",
    "account import": "one summary JSON",
    "attest keygen": "a PEM public key",
    "attest sign": "a token",
    "attest inspect": "one token's header and claims JSON",
    "attest submit": "the stored jti",
    "reseller add": "one line",
    "reseller revoke-key": "one line",
    "reseller trust-ca": "one line",
    "reseller revoke-cert": "one line",
    "reseller add-crl": "one line",
    "licence add": "the stored licence JSON",
    "licence revoke": "the revoked licence JSON",
    "screening load": "one summary JSON",
    "policy test": "`opa test` output: -f/--format pretty|json like opa",
    "policy check": "problems on stderr",
    "policy push": "one report JSON",
    "policy sign": "one summary JSON",
    "policy verify": "one summary JSON",
    "policy build": "one summary JSON",
    "policy eval": "one result JSON, like opa eval",
    "audit verify": "a report: text, or JSON with --json (also on failure)",
    "audit report": "an HTML file",
    "audit export": "OPA decision-log events, one per line (OPA's format)",
    "audit anchor": "one checkpoint JSON",
    "audit pubkey": "a PEM public key",
    "audit ingest": "a server: one JSON line when listening, one when stopped",
    "scp generate": "SCP documents (AWS policy JSON), one per line or one file each",
}
LICENCE = [
    "licence",
    "add",
    "BIS-1",
    "--account",
    "222233334444",
    "--countries",
    "CN",
    "--classes",
    "3A090.a",
    "--max-tpp",
    "2000000",
    "--expires",
    "2099-01-01",
    "--evidence",
    "https://example.com/l/1",
]
#: Commands that only read the local state folder: a missing one is exit 2 with one line.
READERS = [
    ["account", "list"],
    ["account", "show", ACCOUNT],
    ["attest", "list"],
    ["reseller", "list"],
    ["licence", "list"],
    ["screening", "check", "Acme"],
    ["ledger", "show"],
    ["audit", "verify"],
    ["audit", "query"],
    ["audit", "report", "--html", "r.html"],
    ["audit", "export"],
    ["audit", "anchor"],
    ["replay", str(EVENTS / "cloudtrail_runinstances.json")],
]


def leaves(cmd: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):  # as click sees the tree: the root loads its groups on demand
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, name
            yield from leaves(sub, f"{path} {name}".strip())
    else:
        yield path, cmd


def option(cmd: click.Command, flag: str) -> click.Option | None:
    return next((p for p in cmd.params if isinstance(p, click.Option) and flag in p.opts), None)


def run(state: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--state", str(state), *args], input=input)


def one_error_line(res: Result) -> str:
    """The failure was one line on stderr, no traceback."""
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


# -- the tree -------------------------------------------------------------------------------------
def test_every_command_is_classified() -> None:
    names = {path for path, _ in leaves(cli)}
    listing = {
        n for n in names if n.split()[-1] in ("list", "query", "show", "check") and n != "policy check"
    }
    assert listing - {"account show"} <= RECORDS, "a list command must print records with --format"
    assert not RECORDS & set(OTHERS)
    assert names == RECORDS | set(OTHERS), (
        f"unclassified: {sorted(names - RECORDS - set(OTHERS))}; gone: {sorted(RECORDS | set(OTHERS) - names)}"
    )


@pytest.mark.parametrize("path", sorted(RECORDS))
def test_record_commands_take_format_and_the_hidden_json_alias(path: str) -> None:
    cmd = dict(leaves(cli))[path]
    fmt = option(cmd, "--format")
    assert fmt is not None and isinstance(fmt.type, click.Choice)
    assert tuple(fmt.type.choices) == ("table", "json", "jsonl")
    alias = option(cmd, "--json")
    assert alias is not None and alias.hidden and alias.is_flag
    assert "--format" in CliRunner().invoke(cli, [*path.split(), "--help"]).output


# -- every list command prints JSON that parses, over a state with something in every list --------
@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("filled")
    state = base / "state"
    ok = [
        run(state, "account", "add", ACCOUNT, "--country", "SG", "--reseller", "lb-sg", "--name", "Acme SG"),
        run(state, "account", "add", CN_ACCOUNT, "--country", "CN", "--kyc", "verified"),
        run(state, "attest", "keygen", "--out", str(base / "r.pem")),
    ]
    (base / "r.pub.pem").write_text(ok[-1].stdout)
    ok.append(run(state, "reseller", "add", "lb-sg", "--public-key", str(base / "r.pub.pem"), "--kid", "k1"))
    sign = run(
        state, "attest", "sign", "--key", str(base / "r.pem"), "--kid", "k1", "--issuer", "lb-sg",
        "--account", ACCOUNT, "--end-customer-country", "SG", "--end-customer-hq-country", "SG",
        "--end-customer-parent-hq-country", "SG", "--end-customer-kyc-level", "verified",
    )  # fmt: skip
    (base / "a.jwt").write_text(sign.stdout)
    ok += [
        sign,
        run(state, "attest", "submit", str(base / "a.jwt")),
        run(state, *LICENCE),
        run(state, "screening", "load", str(ROOT / "tests" / "data" / "csl_sample.csv")),
    ]
    for res in ok:
        assert res.exit_code == 0, res.output
    for event in ("runinstances-p5.json", "runinstances-p5-cn.json"):
        assert run(state, "decide", str(ROOT / "examples" / "events" / event)).exit_code in (0, 3)
    return state


def _screened_name() -> str:
    import csv

    with open(ROOT / "tests" / "data" / "csl_sample.csv", newline="", encoding="utf-8") as fh:
        return str(next(csv.DictReader(fh))["name"])


LISTS = {
    "catalog list": ["catalog", "list"],
    "account list": ["account", "list"],
    "attest list": ["attest", "list"],
    "reseller list": ["reseller", "list"],
    "licence list": ["licence", "list"],
    "screening check": ["screening", "check", "@NAME"],
    "ledger show": ["ledger", "show", "--now", "2030-01-01T00:00:00Z"],  # TPP-hours grow with the clock
    "audit query": ["audit", "query"],
    "coverage": ["coverage"],
}


def test_lists_cover_every_record_command() -> None:
    assert set(LISTS) == RECORDS


@pytest.mark.parametrize("path", sorted(LISTS))
def test_every_list_prints_json_and_jsonl_that_parse(path: str, filled: Path) -> None:
    args = [_screened_name() if a == "@NAME" else a for a in LISTS[path]]
    ok_codes = (0, 3) if path == "screening check" else (0,)  # a screening hit exits 3
    as_json = run(filled, *args, "--format", "json")
    assert as_json.exit_code in ok_codes, as_json.output
    rows = json.loads(as_json.stdout)
    assert isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows), path
    lines = run(filled, *args, "--format", "jsonl")
    assert [json.loads(x) for x in lines.stdout.splitlines()] == rows
    table = run(filled, *args, "--format", "table")
    assert (
        table.exit_code in ok_codes
        and table.stdout.strip()
        and not table.stdout.lstrip().startswith(("[", "{"))
    )
    alias = run(filled, *args, "--json")
    assert alias.stdout in (as_json.stdout, lines.stdout), (
        "--json is --format json (jsonl where it was lines)"
    )
    clash = run(filled, *args, "--json", "--format", "table")
    assert clash.exit_code == 2 and "--json" in clash.stderr


def test_defaults_kept_for_scripts_that_parse_them(filled: Path) -> None:
    """What each list printed before --format still comes out without it."""
    assert isinstance(json.loads(run(filled, "attest", "list").stdout), list)
    assert isinstance(json.loads(run(filled, "reseller", "list").stdout), list)
    assert json.loads(run(filled, "licence", "list").stdout.splitlines()[0])["licence_id"] == "BIS-1"
    lines = run(filled, "catalog", "list", "--json").stdout.splitlines()
    assert len(lines) > 10 and all(json.loads(x)["instance_type"] for x in lines)
    assert ACCOUNT in run(filled, "account", "list").stdout


# -- exit codes -----------------------------------------------------------------------------------
def test_exit_codes_allow_deny_bad_input_and_could_not_log(tmp_path: Path) -> None:
    state, cn = tmp_path / "state", tmp_path / "cn"
    assert run(state, "account", "add", ACCOUNT, "--country", "US", "--kyc", "verified").exit_code == 0
    assert run(state, "decide", str(EVENTS / "cloudtrail_runinstances.json")).exit_code == 0
    assert run(cn, "account", "add", ACCOUNT, "--country", "CN").exit_code == 0
    assert run(cn, "decide", str(EVENTS / "cloudtrail_runinstances.json")).exit_code == 3
    bad = run(state, "decide", "-", input='{"detail": ')
    assert bad.exit_code == 2 and one_error_line(bad).startswith("error: ")
    missing = run(state, "decide", str(tmp_path / "no-such-event.json"))
    assert missing.exit_code == 2 and "no-such-event.json" in one_error_line(missing)
    # the audit log cannot be written (its folder is a file): the launch is treated as denied, exit 1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "audit").write_text("not a folder")
    assert run(broken, "account", "add", ACCOUNT, "--country", "US", "--kyc", "verified").exit_code == 0
    nolog = run(broken, "decide", str(EVENTS / "cloudtrail_runinstances.json"))
    assert nolog.exit_code == 1 and "denied" in one_error_line(nolog)


def test_exit_code_table_is_documented_once_in_docs_and_readme() -> None:
    for doc in (ROOT / "docs" / "cli.md", ROOT / "README.md"):
        text = doc.read_text(encoding="utf-8")
        for row in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
            assert row in text, f"{doc.name} lacks the exit-code row {row}"


# -- missing state folder, missing replay path ----------------------------------------------------
@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_state_folder_is_an_error_not_an_empty_log(args: list[str], tmp_path: Path) -> None:
    state = tmp_path / "typo"
    res = CliRunner().invoke(cli, ["--state", str(state), *args])
    assert res.exit_code == 2, res.output
    assert "no state folder" in one_error_line(res) and str(state) in res.stderr
    assert not state.exists(), "a reader must not create the state folder"


def test_env_state_is_checked_the_same_way(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["audit", "query"], env={"ENFORCER_STATE": str(tmp_path / "nope")})
    assert res.exit_code == 2 and "no state folder" in one_error_line(res)


def test_an_existing_state_without_a_log_is_still_an_empty_query_and_a_failed_verify(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert run(state, "account", "add", ACCOUNT, "--country", "US").exit_code == 0
    assert json.loads(run(state, "audit", "query", "--format", "json").stdout) == []
    verify = run(state, "audit", "verify", "--json")
    assert verify.exit_code == 1 and json.loads(verify.stdout)["ok"] is False


@pytest.mark.parametrize(
    "source", ["no-such-dir/", "trail.json.gz", "a/b/../c.jsonl", "duckdb:@/AWSLogs/**/*.json.gz"]
)
def test_replay_of_a_missing_path_exits_2(source: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    source = source.replace("@", str(tmp_path)) if source.startswith("duckdb:") else str(tmp_path / source)
    res = run(state, "replay", source)
    assert res.exit_code == 2 and "no such file or directory" in one_error_line(res)
    with_out = run(state, "replay", str(EVENTS / "cloudtrail_runinstances.json"), source,
                   "--out", str(tmp_path / "o.jsonl"))  # fmt: skip
    assert with_out.exit_code == 2 and not (tmp_path / "o.jsonl").exists()


# -- audit verify --json --------------------------------------------------------------------------
def test_audit_verify_json_is_json_on_success_and_on_every_failure(filled: Path, tmp_path: Path) -> None:
    ok = run(filled, "audit", "verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    copy = tmp_path / "copy"
    shutil.copytree(filled, copy)
    seg = sorted((copy / "audit").glob("segment-*"))
    assert seg, sorted(p.name for p in (copy / "audit").rglob("*"))
    text = seg[0].read_text(encoding="utf-8")
    assert '"country":"SG"' in text
    seg[0].write_text(text.replace('"country":"SG"', '"country":"US"', 1))  # an edited record
    bad = run(copy, "audit", "verify", "--json")
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)  # the summary goes to stderr, stdout stays one JSON document
    assert doc["ok"] is False
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    badkey = run(filled, "audit", "verify", "--json", "--public-key", str(junk))
    assert badkey.exit_code == 2 and json.loads(badkey.stdout)["ok"] is False
    gone = run(tmp_path / "nope", "audit", "verify", "--json")
    assert gone.exit_code == 2 and json.loads(gone.stdout)["error"].startswith("no state folder")


# -- one-line errors ------------------------------------------------------------------------------
@pytest.mark.parametrize("content", ["{not json", "[1]", '{"accounts": {"1": 5}}', '{"accounts": []}'])
def test_corrupt_state_files_are_one_line_errors(content: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "accounts.json").write_text(content)
    for args in (
        ["account", "list"],
        ["account", "show", ACCOUNT],
        ["decide", str(EVENTS / "cloudtrail_runinstances.json")],
    ):
        res = run(state, *args)
        assert res.exit_code == 2, res.output
        assert "accounts.json" in one_error_line(res)


def test_a_command_loads_only_its_own_module() -> None:
    """``enforcer catalog classify`` must not import the audit report, the attestation stack or the intake."""
    code = (
        "import sys; from enforcer.cli import main; sys.argv = ['enforcer', 'catalog', 'classify', 'p5.48xlarge']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import json; print(json.dumps([m for m in sys.modules if m.startswith('enforcer.')]), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout)["chip_class"] == "3A090.a"
    loaded = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert "enforcer.cli.catalog" in loaded
    for heavy in ("enforcer.cli.audit", "enforcer.audit.report", "enforcer.attestation", "enforcer.intake"):
        assert heavy not in loaded, heavy


def test_an_unexpected_error_is_one_line_unless_debugging() -> None:
    from enforcer.cli.root import EnforcerGroup

    @click.group(cls=EnforcerGroup)
    def group() -> None:
        """A root group like enforcer's."""

    @group.command("boom")
    def boom() -> None:
        raise KeyError("a bug")

    res = CliRunner().invoke(group, ["boom"])
    assert res.exit_code == 1 and "internal error: KeyError" in one_error_line(res)
    debug = CliRunner().invoke(group, ["boom"], env={"ENFORCER_DEBUG": "1"})
    assert isinstance(debug.exception, KeyError)


def test_unreadable_inputs_are_one_line_errors(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for args in (
        ["attest", "inspect", str(tmp_path / "none.jwt")],
        ["policy", "eval", str(tmp_path / "none.json")],
        ["account", "import", "--csv", str(tmp_path / "none.csv")],
        ["screening", "load", str(tmp_path / "none.csv")],
        ["attest", "list", "--account", "12"],
        ["scp", "generate", "--out", "/dev/null/x"],
        ["policy", "build", "-o", str(tmp_path / "no" / "dir" / "b.tar.gz")],
    ):
        res = run(state, *args)
        assert res.exit_code == 2, (args, res.output)
        one_error_line(res)


# -- scripts take --help without side effects -----------------------------------------------------
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py"))


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_takes_help_without_side_effects(script: str, tmp_path: Path) -> None:
    """Run a copy whose ROOT (parents[1]) is a scratch folder, from an empty cwd: nothing may appear."""
    repo, cwd = tmp_path / "repo", tmp_path / "cwd"
    (repo / "scripts").mkdir(parents=True)
    cwd.mkdir()
    shutil.copy(ROOT / "scripts" / script, repo / "scripts" / script)
    before = _tree(repo)
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts")])}
    for flag in ("--help", "-h"):
        proc = subprocess.run(
            [sys.executable, str(repo / "scripts" / script), flag],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "usage:" in proc.stdout.lower() and "Traceback" not in proc.stderr
    assert _tree(repo) == before and _tree(cwd) == set(), "--help wrote files"
