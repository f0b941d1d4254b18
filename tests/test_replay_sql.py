"""The launch filter in SQL: run on DuckDB over local CloudTrail files, and sent to Athena (moto).

moto's Athena does not execute queries: it records the query and returns results queued through its
``/moto-api/static/athena/query-results`` endpoint. The rows queued here are the ones DuckDB returns
for the same SQL text over the same files, so the Athena path is exercised end to end with real rows.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
import requests
from moto import mock_aws

from enforcer.accounts import LocalAccountDirectory
from enforcer.model import InputError
from enforcer.replay import iter_events, replay
from enforcer.replay_filter import launch_keys
from enforcer.replay_sql import (
    COLUMNS,
    duckdb_view_sql,
    iter_athena,
    iter_duckdb,
    launch_filter_sql,
    parse_athena_url,
)

duckdb = pytest.importorskip("duckdb")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from synth_cloudtrail import write_mix  # noqa: E402

VOLATILE = ("decision_id", "timestamp", "latency_ms", "timings", "source")


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("trail")
    files = write_mix(root / "ct", 900, per_file=300, accounts=200, launch_share=0.2, state=root / "state")
    recs = []
    for f in files:
        with gzip.open(f) as fh:
            recs += orjson.loads(fh.read())["Records"]
    return {"root": root, "glob": str(root / "ct" / "AWSLogs" / "**" / "*.json.gz"), "records": recs}


def _expected(recs: list[dict[str, Any]], since: str = "") -> set[str]:
    keys = launch_keys()
    return {
        r["eventID"]
        for r in recs
        if (r["eventSource"], r["eventName"]) in keys and not r.get("errorCode") and r["eventTime"] >= since
    }


def _stable(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        d = {k: v for k, v in json.loads(line).items() if k not in VOLATILE}
        out.append(json.dumps(d, sort_keys=True))
    return sorted(out)


def test_duckdb_returns_exactly_the_successful_launch_calls(trail: dict[str, Any]) -> None:
    got = [rec for _, rec in iter_duckdb(trail["glob"])]
    assert not any(isinstance(r, InputError) for r in got)
    assert {r["eventID"] for r in got} == _expected(trail["records"]) and len(got) > 50
    assert [r["eventTime"] for r in got] == sorted(r["eventTime"] for r in got)


def test_duckdb_time_range(trail: dict[str, Any]) -> None:
    con = duckdb.connect(":memory:")
    con.execute(duckdb_view_sql(trail["glob"]))
    rows = con.execute(launch_filter_sql("cloudtrail", since="2026-10-15")).fetchall()
    assert {r[COLUMNS.index("eventid")] for r in rows} == _expected(trail["records"], "2026-10-15")


def test_replay_via_duckdb_decides_as_replay_of_the_files(trail: dict[str, Any], make_enforcer: Any) -> None:
    origins = LocalAccountDirectory(trail["root"] / "state" / "accounts.json").list()
    a, b = io.StringIO(), io.StringIO()
    s1 = replay(iter_events([str(trail["root"] / "ct")]), make_enforcer(origins), a, now=1.8e9)
    s2 = replay(iter_events([f"duckdb:{trail['glob']}"]), make_enforcer(origins), b, now=1.8e9)
    assert s2.decided == s1.decided > 0 and s2.errors == s1.errors == 0
    assert _stable(a.getvalue()) == _stable(b.getvalue())


@pytest.mark.parametrize(
    ("table", "since"),
    [("db.t; DROP TABLE x", None), ("a.b.c", None), ("db.t", "2026-01-01' OR '1'='1"), ("", None)],
)
def test_sql_text_takes_only_plain_identifiers_and_times(table: str, since: str | None) -> None:
    with pytest.raises(InputError):
        launch_filter_sql(table, since)


def test_a_missing_glob_is_an_error_line_not_a_crash(tmp_path: Path) -> None:
    (_label, err), *rest = list(iter_duckdb(str(tmp_path / "nothing" / "*.json.gz")))
    assert isinstance(err, InputError) and err.code == "BAD_INPUT" and not rest


def _athena_rows(trail: dict[str, Any], sql: str) -> dict[str, Any]:
    con = duckdb.connect(":memory:")
    con.execute(duckdb_view_sql(trail["glob"]))
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]

    def row(values: list[Any]) -> dict[str, Any]:
        return {"Data": [{} if v is None else {"VarCharValue": str(v)} for v in values]}

    rows = [row(names)] + [row(list(v)) for v in cur.fetchall()]
    info = [{"Name": n, "Type": "varchar"} for n in names]
    return {"region": "us-east-1", "results": [{"rows": rows, "column_info": info}]}


def test_athena_runs_the_generated_filter_and_the_rows_are_decided(
    trail: dict[str, Any], make_enforcer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    url = "athena://cloudtrail_db.cloudtrail_logs?workgroup=audit&since=2026-10-10&output=s3://res/q/"
    p = parse_athena_url(url)
    assert p == {
        "table": "cloudtrail_db.cloudtrail_logs",
        "workgroup": "audit",
        "since": "2026-10-10",
        "until": None,
        "output": "s3://res/q/",
        "region": None,
    }
    with mock_aws():
        athena = boto3.client("athena", region_name="us-east-1")
        athena.create_work_group(Name="audit")
        local_sql = launch_filter_sql("cloudtrail", since="2026-10-10")
        canned = _athena_rows(trail, local_sql)
        r = requests.post("http://motoapi.amazonaws.com/moto-api/static/athena/query-results", json=canned)
        assert r.status_code == 201
        origins = LocalAccountDirectory(trail["root"] / "state" / "accounts.json").list()
        out = io.StringIO()
        s = replay(iter_events([url], athena_client=athena), make_enforcer(origins), out, now=1.8e9)
        qid = athena.list_query_executions(WorkGroup="audit")["QueryExecutionIds"][0]
        sent = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
    # the query Athena received is the generated filter over the named table, in the named database
    assert sent["Query"] == launch_filter_sql("cloudtrail_db.cloudtrail_logs", since="2026-10-10")
    assert sent["QueryExecutionContext"]["Database"] == "cloudtrail_db"
    assert sent["ResultConfiguration"]["OutputLocation"].startswith("s3://res/q/")  # + the query id
    decided_ids = {json.loads(x)["request"]["event_id"] for x in out.getvalue().splitlines()}
    expected = _expected(trail["records"], "2026-10-10")
    assert s.events == len(expected) and s.errors == 0
    assert decided_ids <= expected and s.decided + s.ignored == len(expected)


class _FailingAthena:
    """Athena reporting a failed query (moto's queries always succeed)."""

    def start_query_execution(self, **kw: Any) -> dict[str, Any]:
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        return {"QueryExecution": {"Status": {"State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND"}}}


def test_a_failed_athena_query_is_an_error_line() -> None:
    (_label, err), *rest = list(iter_athena("athena://db.t", _FailingAthena(), sleep=lambda s: None))
    assert isinstance(err, InputError) and "TABLE_NOT_FOUND" in str(err) and not rest
    (_label, err), *_ = list(iter_athena("athena://db.t", None))
    assert isinstance(err, InputError) and "Athena client" in str(err)


def test_cli_athena_without_a_region_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from enforcer.cli import cli

    for k in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    r = CliRunner().invoke(cli, ["--state", str(tmp_path), "replay", "athena://db.t?since=2026-01-01"])
    assert r.exit_code != 0 and "region" in r.output and "Traceback" not in r.output
    two = ["athena://db.t?region=us-east-1", "athena://db.u?region=eu-west-1"]
    r = CliRunner().invoke(cli, ["--state", str(tmp_path), "replay", *two])
    assert r.exit_code != 0 and "one region at a time" in r.output


def test_a_malformed_file_in_the_glob_is_one_error_line(trail: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    for f in list((trail["root"] / "ct").rglob("*.json.gz"))[:1]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "zz.json").write_text('{"Records": [ {"eventName": 5}, "x" ] ')
    got = list(iter_duckdb(str(tmp_path / "*")))
    assert len(got) == 1 and isinstance(got[0][1], InputError) and got[0][1].code == "BAD_INPUT"
