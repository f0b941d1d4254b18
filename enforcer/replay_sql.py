"""Replay beyond one machine: the launch-event filter pushed to SQL, the returned launches decided here.

One query, generated from the calls the intake decides (:func:`enforcer.replay_filter.launch_keys`,
i.e. the coverage table and the hand-written shapes), runs on the CloudTrail table as AWS documents it
for Athena (columns ``eventsource``, ``eventname``, ``useridentity`` struct, ``requestparameters`` as
JSON text ...). The same SQL text runs on:

- **Athena** (``athena://DATABASE.TABLE?workgroup=W&since=2026-01-01&until=...&output=s3://...``): the
  scan happens in AWS; only launch records come back (paginated ``GetQueryResults``);
- **DuckDB**, embedded (``duckdb:GLOB``, e.g. ``duckdb:/trail/AWSLogs/**/*.json.gz``): a view named
  like the Athena table is built over the CloudTrail log files (``Records`` unnested as JSON), so the
  filter a deployer runs in Athena is the one tested here. ``s3://`` globs need DuckDB's httpfs
  extension installed.

Rows become CloudTrail records again (the members normalise reads) and go through the same
:func:`enforcer.replay.replay` as files do.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

from enforcer.model import InputError
from enforcer.replay_filter import launch_keys

#: Columns selected from the CloudTrail table (names as in AWS's documented Athena DDL).
COLUMNS = (
    "eventversion",
    "eventtime",
    "eventsource",
    "eventname",
    "awsregion",
    "recipientaccountid",
    "useridentity.type AS identitytype",
    "useridentity.arn AS identityarn",
    "useridentity.accountid AS identityaccount",
    "useridentity.invokedby AS identityinvokedby",
    "sourceipaddress",
    "requestparameters",
    "responseelements",
    "eventid",
    "readonly",
    "errorcode",
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?$")
#: Wait at most this long for one Athena query.
ATHENA_TIMEOUT_S = 1800.0


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def launch_filter_sql(table: str, since: str | None = None, until: str | None = None) -> str:
    """The query: launch calls only (decided keys), successful ones, optionally within a time range.

    Parameters
    ----------
    table
        ``table`` or ``database.table`` (identifiers only: letters, digits, underscore).
    since, until
        ISO dates or times compared with ``eventtime`` (CloudTrail writes ISO 8601 UTC strings).

    Raises
    ------
    InputError
        On an identifier or time that is not plainly one (the text goes into SQL).
    """
    if not all(_IDENT.match(p) for p in table.split(".")) or table.count(".") > 1:
        raise InputError(f"not a table name: {table[:80]!r}", "BAD_INPUT")
    for t in (since, until):
        if t is not None and not _TIME.match(t):
            raise InputError(f"not an ISO date or time: {t[:40]!r}", "BAD_INPUT")
    keys = sorted(f"{source}:{name}" for source, name in launch_keys())
    names = sorted({name for _, name in launch_keys()})
    where = [
        f"eventname IN ({', '.join(map(_quote, names))})",
        f"eventsource || ':' || eventname IN ({', '.join(map(_quote, keys))})",
        "(errorcode IS NULL OR errorcode = '')",
    ]
    if since:
        where.append(f"eventtime >= {_quote(since)}")
    if until:
        where.append(f"eventtime < {_quote(until)}")
    return (
        f"SELECT {', '.join(COLUMNS)}\nFROM {table}\nWHERE " + "\n  AND ".join(where) + "\nORDER BY eventtime"
    )


def _json_member(text: Any) -> Any:
    if text is None or text == "" or text == "null":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text  # normalise rejects a non-object with a clear error


def row_to_record(row: dict[str, Any]) -> dict[str, Any]:
    """A CloudTrail record (as in a log file) from one row of :func:`launch_filter_sql`."""
    ident = {
        k: v
        for k, v in (
            ("type", row.get("identitytype")),
            ("arn", row.get("identityarn")),
            ("accountId", row.get("identityaccount")),
            ("invokedBy", row.get("identityinvokedby")),
        )
        if v is not None
    }
    ro = row.get("readonly")
    rec: dict[str, Any] = {
        "eventVersion": row.get("eventversion"),
        "eventTime": row.get("eventtime"),
        "eventSource": row.get("eventsource"),
        "eventName": row.get("eventname"),
        "awsRegion": row.get("awsregion"),
        "recipientAccountId": row.get("recipientaccountid"),
        "sourceIPAddress": row.get("sourceipaddress"),
        "userIdentity": ident,
        "requestParameters": _json_member(row.get("requestparameters")),
        "responseElements": _json_member(row.get("responseelements")),
        "eventID": row.get("eventid"),
        "readOnly": str(ro).lower() == "true" if ro is not None else None,
    }
    if row.get("errorcode"):
        rec["errorCode"] = row["errorcode"]
    return {k: v for k, v in rec.items() if v is not None}


# -- DuckDB ---------------------------------------------------------------------------------------
def duckdb_view_sql(glob: str, view: str = "cloudtrail", max_object_mb: int = 16) -> str:
    """A view shaped like the Athena CloudTrail table over CloudTrail log files (``{"Records": [...]}``).

    ``max_object_mb`` bounds one log file's uncompressed size (DuckDB buffers twice that per thread).
    """
    if not _IDENT.match(view):
        raise InputError(f"not a view name: {view!r}", "BAD_INPUT")
    # identifiers checked above, the glob quoted: nothing else reaches the text
    return f"""CREATE OR REPLACE VIEW {view} AS
SELECT
  r->>'eventVersion' AS eventversion,
  {{'type': r->'userIdentity'->>'type', 'arn': r->'userIdentity'->>'arn',
    'accountid': r->'userIdentity'->>'accountId', 'invokedby': r->'userIdentity'->>'invokedBy'}}
    AS useridentity,
  r->>'sourceIPAddress' AS sourceipaddress,
  r->>'eventTime' AS eventtime,
  r->>'eventSource' AS eventsource,
  r->>'eventName' AS eventname,
  r->>'awsRegion' AS awsregion,
  r->>'errorCode' AS errorcode,
  CAST(r->'requestParameters' AS VARCHAR) AS requestparameters,
  CAST(r->'responseElements' AS VARCHAR) AS responseelements,
  r->>'eventID' AS eventid,
  CAST(r->'readOnly' AS VARCHAR) AS readonly,
  r->>'recipientAccountId' AS recipientaccountid
FROM (
  SELECT unnest(Records) AS r
  FROM read_json({_quote(glob)}, columns = {{'Records': 'JSON[]'}}, format = 'auto',
                 maximum_object_size = {int(max_object_mb) << 20}, ignore_errors = false)
)"""  # noqa: S608


def iter_duckdb(glob: str, since: str | None = None, until: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(label, record)`` for every launch record the filter returns from the files matching ``glob``."""
    try:
        import duckdb
    except ImportError:
        yield f"duckdb:{glob}", InputError("duckdb: pip install duckdb (the replay extra)", "BAD_INPUT")
        return
    # bounded: two threads, a memory cap, no insertion-order buffering (the filter sorts by time anyway)
    config: dict[str, Any] = {"threads": 2, "memory_limit": "2GB", "preserve_insertion_order": False}
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(duckdb_view_sql(glob))
        cur = con.execute(launch_filter_sql("cloudtrail", since, until))
    except duckdb.Error as exc:
        yield f"duckdb:{glob}", InputError(f"duckdb: {' '.join(str(exc).split())[:300]}", "BAD_INPUT")
        return
    cols = [d[0] for d in cur.description]
    n = 0
    while True:
        try:  # a file that turns out malformed mid-scan fails the query here: one error line, no crash
            batch = cur.fetchmany(2048)
        except duckdb.Error as exc:
            msg = f"duckdb: {' '.join(str(exc).split())[:300]}"
            yield f"duckdb:{glob}#{n + 1}", InputError(msg, "BAD_INPUT")
            return
        if not batch:
            return
        for values in batch:
            n += 1
            yield f"duckdb:{glob}#{n}", row_to_record(dict(zip(cols, values, strict=True)))


# -- Athena ---------------------------------------------------------------------------------------
def parse_athena_url(url: str) -> dict[str, Any]:
    """``athena://DB.TABLE?workgroup=W&since=...&until=...&output=s3://...&region=...`` as its parts."""
    u = urlparse(url)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    table = (u.netloc + u.path).strip("/")
    return {
        "table": table,
        "workgroup": q.get("workgroup", "primary"),
        "since": q.get("since"),
        "until": q.get("until"),
        "output": q.get("output"),
        "region": q.get("region"),
    }


def iter_athena(url: str, athena: Any, sleep: Any = time.sleep) -> Iterator[tuple[str, Any]]:
    """Run the filter in Athena and yield the returned launch records (see the module docstring)."""
    if athena is None:
        yield url, InputError("an Athena client is needed for athena:// sources", "BAD_INPUT")
        return
    try:
        p = parse_athena_url(url)
        sql = launch_filter_sql(p["table"], p["since"], p["until"])
    except InputError as exc:
        yield url, exc
        return
    kwargs: dict[str, Any] = {"QueryString": sql, "WorkGroup": p["workgroup"]}
    if "." in p["table"]:
        kwargs["QueryExecutionContext"] = {"Database": p["table"].split(".", 1)[0]}
    if p["output"]:
        kwargs["ResultConfiguration"] = {"OutputLocation": p["output"]}
    qid = athena.start_query_execution(**kwargs)["QueryExecutionId"]
    waited, delay = 0.0, 0.25
    while True:
        status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED") or waited >= ATHENA_TIMEOUT_S:
            reason = status.get("StateChangeReason", state if waited < ATHENA_TIMEOUT_S else "timed out")
            yield url, InputError(f"athena query {qid}: {reason}"[:400], "BAD_INPUT")
            return
        sleep(delay)
        waited, delay = waited + delay, min(delay * 2, 5.0)
    header: list[str] | None = None
    n = 0
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=qid):
        for row in page["ResultSet"]["Rows"]:
            values = [d.get("VarCharValue") for d in row.get("Data", [])]
            if header is None:
                header = [str(v) for v in values]  # the first row of the first page names the columns
                continue
            n += 1
            yield f"athena:{qid}#{n}", row_to_record(dict(zip(header, values, strict=False)))
