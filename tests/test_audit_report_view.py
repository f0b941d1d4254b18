"""The report a reviewer reads: why each decision was made, and forged rows marked where they stand.

The log is written by the real pipeline (embedded OPA) and the real local store, then tampered with
in its stored bytes as an attacker with write access to the folder would: a denial turned into an
allow, once leaving the hash as it was and once recomputing the whole chain after it. The page is
rendered in headless Chromium at 1,280 and 1,920 px: a probe script added to a copy of the page
writes the layout (page and table widths against the viewport, every cell's overflow, where the
denial's message and the forged row's marker landed) into the DOM, which ``--dump-dom`` returns.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from enforcer.audit.defaults import default_public_key
from enforcer.audit.query import LoggedRecord, iter_records
from enforcer.audit.report import collect, render_html
from enforcer.audit.report_rows import CSV_COLUMNS, write_csv
from enforcer.audit.row_check import check_rows, local_checkpoints
from enforcer.audit.verify import open_verify
from tests.audit_report_kit import (
    GENUINE_SEQ,
    ISSUER,
    JTI,
    PLAN,
    PRINCIPAL,
    TAMPERED_SEQ,
    flip_effect,
    rechain,
    write_log,
)
from tests.test_audit_report import _chromium, _console, _png_pixels, chromium  # noqa: F401

CN_PARENT_MESSAGE = "account 555566667777: parent_hq_country=CN (Country Group D:5 or Macau)"
MARK = (183, 28, 28)  # #b71c1c: the forged row's border and NOT VERIFIED tag


def _report(audit: Path, keys: Path) -> tuple[str, dict[int, str], list[LoggedRecord]]:
    pem = default_public_key(keys)
    verification = open_verify(audit, pem)
    failures = check_rows(iter_records(audit), local_checkpoints(audit, pem), verification)
    records = list(iter_records(audit))
    page = render_html(records, source=str(audit), verification=verification, failures=failures)
    return page, failures, records


@pytest.fixture()
def log(tmp_path: Path, engine: Any, catalog: Any) -> Path:
    return write_log(tmp_path / "state", engine, catalog)


def _card(page: str, name: str) -> int:
    m = re.search(rf"<span>{name}</span><b>(\d+)</b>", page)
    assert m, name
    return int(m.group(1))


def test_genuine_log_lists_why_who_when_policy_and_attestation(log: Path) -> None:
    page, failures, records = _report(log, log.parent / "keys")
    assert failures == {}
    assert len(records) == len(PLAN)
    assert (
        _card(page, "decisions") == 12
        and _card(page, "deny") == 5
        and _card(page, "failed verification") == 0
    )
    # A US account denied for its Chinese parent: the message says so, not only the code.
    assert "ORIGIN_RESTRICTED" in page and CN_PARENT_MESSAGE in page
    genuine = records[GENUINE_SEQ].record
    assert genuine["result"]["effect"] == "deny"
    for value in (
        PRINCIPAL,
        genuine["trigger"]["event_time"],  # when the launch happened
        genuine["timestamp"],  # when it was decided
        genuine["policy"]["revision"],
        ISSUER,
        JTI,
        "attested end customer of reseller acme: parent_hq_country=CN",
    ):
        assert value.split("T")[-1] in page, value
    assert "class='tampered'" not in page and "FAILED VERIFICATION" not in page


def test_edited_row_is_marked_in_place_and_left_out_of_the_counts(log: Path) -> None:
    flip_effect(log, TAMPERED_SEQ)
    page, failures, records = _report(log, log.parent / "keys")
    assert list(failures) == [TAMPERED_SEQ] and "hash does not match" in failures[TAMPERED_SEQ]
    assert records[TAMPERED_SEQ].record["result"]["effect"] == "allow"  # what the attacker wants counted
    # 11 genuine decisions: the forged allow is neither an allow nor a decision; the genuine deny stays.
    assert _card(page, "decisions") == 11 and _card(page, "allow") == 6 and _card(page, "deny") == 4
    assert _card(page, "failed verification") == 1
    rows = re.findall(r"<tr( class='tampered')?><td>(\d+)</td>", page)
    assert ("", str(GENUINE_SEQ)) in rows and (" class='tampered'", str(TAMPERED_SEQ)) in rows
    assert sum(1 for cls, _ in rows if cls) == 1
    forged = page[page.index("<tr class='tampered'>") :]
    forged = forged[: forged.index("</tr>")]
    assert "NOT VERIFIED" in forged and "FAILED VERIFICATION" in forged and "hash does not match" in forged
    data = collect(records, failures)
    assert data.total == 11 and data.failed == 1 and data.effects["allow"] == 6


def test_rewritten_chain_is_caught_by_the_signed_checkpoints_and_every_descendant_marked(log: Path) -> None:
    rechain(log, TAMPERED_SEQ)  # the chain links again: only the signed checkpoints disagree
    page, failures, _records = _report(log, log.parent / "keys")
    assert TAMPERED_SEQ in failures and "signed checkpoint" in failures[TAMPERED_SEQ]
    # Records up to the last checkpoint that still matches (seq 3) are genuine and counted.
    assert all(p not in failures for p in range(4)) and set(failures) == set(range(4, len(PLAN)))
    assert _card(page, "decisions") == 4 and _card(page, "failed verification") == len(PLAN) - 4
    assert "Integrity: FAIL" in page


def test_without_checkpoints_a_rewrite_the_verifier_blames_marks_from_there_on(log: Path) -> None:
    rechain(log, TAMPERED_SEQ)
    pem = default_public_key(log.parent / "keys")
    verification = open_verify(log, pem)
    assert not verification.ok
    # Chain only (as for a store read without its checkpoints): the chain links, nothing can be
    # pinpointed, and where the rewrite began is not known: no record is trusted or counted.
    failures = check_rows(iter_records(log), None, verification)
    assert set(failures) == set(range(len(PLAN)))
    assert all("cannot be located" in why for why in failures.values())
    # An edit the verifier pins on one record marks that record (found by the chain check itself).
    flip_effect_log = check_rows(iter_records(log), None, None)
    assert flip_effect_log == {}  # the rewritten chain links: only a checkpoint or anchor can tell


def test_csv_has_every_decision_with_its_verification(log: Path, tmp_path: Path) -> None:
    flip_effect(log, TAMPERED_SEQ)
    pem = default_public_key(log.parent / "keys")
    failures = check_rows(iter_records(log), local_checkpoints(log, pem), open_verify(log, pem))
    out = tmp_path / "report.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        assert write_csv(fh, iter_records(log), failures) == len(PLAN)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == len(PLAN)
    assert [r["verified"] for r in rows].count("no") == 1
    forged = rows[TAMPERED_SEQ]
    assert forged["verified"] == "no" and "hash does not match" in forged["verification_failure"]
    genuine = rows[GENUINE_SEQ]
    assert genuine["effect"] == "deny" and genuine["principal"] == PRINCIPAL
    assert genuine["reason_messages"] == f"ORIGIN_RESTRICTED: {CN_PARENT_MESSAGE}"
    assert rows[3]["attestation_issuer"] == ISSUER and rows[3]["attestation_jti"] == JTI
    assert genuine["event_time"].startswith("2026-11-30T") and genuine["policy_revision"].startswith(
        "sha256:"
    )


_PROBE = """<script>
(function(){
  var de=document.documentElement, t=document.getElementById('launches');
  var cut=[];
  var cells=t.querySelectorAll('td,th');
  for(var i=0;i<cells.length;i++){
    if(cells[i].scrollWidth>cells[i].clientWidth+1){cut.push(cells[i].textContent.slice(0,60));}
  }
  function box(el){
    if(!el){return null;}
    var r=el.getBoundingClientRect();
    return {left:r.left,right:r.right,width:r.width,height:r.height,text:el.textContent.slice(0,200)};
  }
  var msgs=[], ms=t.querySelectorAll('tr:not(.tampered) .msg');
  for(var j=0;j<ms.length;j++){msgs.push(box(ms[j]));}
  var out={inner:window.innerWidth, page:de.scrollWidth, table:t.scrollWidth, tableBox:box(t),
           wrap:t.parentNode.clientWidth, cut:cut, messages:msgs,
           tag:box(document.querySelector('tr.tampered .tamper-tag')),
           note:box(document.querySelector('tr.tampered .tamper-note'))};
  var pre=document.createElement('pre'); pre.id='probe'; pre.textContent=JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script></body>"""


def _probe(binary: str, page: str, tmp_path: Path, width: int) -> dict[str, Any]:
    probed = tmp_path / f"probe-{width}.html"
    assert page.count("</body>") == 1
    probed.write_text(page.replace("</body>", _PROBE), encoding="utf-8")
    run = _chromium(binary, probed, tmp_path, "--dump-dom", f"--window-size={width},1000")
    m = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert m, run.stderr[-2000:]
    text = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return dict(json.loads(text))


@pytest.mark.parametrize("width", [1280, 1920])
def test_screenshot_shows_the_forged_row_marked_and_the_denial_message(
    log: Path,
    tmp_path: Path,
    chromium: str,  # noqa: F811
    width: int,
) -> None:
    flip_effect(log, TAMPERED_SEQ)
    page, _failures, _records = _report(log, log.parent / "keys")
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    probe = _probe(chromium, page, tmp_path, width)
    assert probe["inner"] == width
    # Nothing is cut: the page and the table fit the viewport; no cell's content overflows it.
    assert probe["page"] <= probe["inner"], probe
    assert probe["table"] <= probe["wrap"] and probe["tableBox"]["right"] <= width, probe
    assert probe["cut"] == [], probe["cut"]
    # The denial's message is laid out inside the viewport, and the forged row carries its marker.
    shown = [m for m in probe["messages"] if CN_PARENT_MESSAGE in m["text"]]
    assert shown and all(m["width"] > 0 and m["height"] > 0 and m["right"] <= width for m in shown), shown
    for mark in (probe["tag"], probe["note"]):
        assert mark is not None and mark["width"] > 0 and mark["right"] <= width
    assert "NOT VERIFIED" in probe["tag"]["text"] and "hash does not match" in probe["note"]["text"]
    # The picture: the forged row's red frame is there (and is not there for the genuine log).
    png = tmp_path / f"shot-{width}.png"
    run = _chromium(chromium, html_file, tmp_path, f"--screenshot={png}", f"--window-size={width},3200")
    assert png.exists(), run.stderr[-2000:]
    assert _console(run.stderr) == []
    w, _h, pixels = _png_pixels(png)
    assert w == width
    marked = sum(1 for p in pixels if p == MARK)
    assert marked > 2000, marked


def test_screenshot_of_a_genuine_log_has_no_forged_row_frame(
    log: Path,
    tmp_path: Path,
    chromium: str,  # noqa: F811
) -> None:
    page, _failures, _records = _report(log, log.parent / "keys")
    html_file = tmp_path / "report.html"
    html_file.write_text(page, encoding="utf-8")
    png = tmp_path / "shot.png"
    _chromium(chromium, html_file, tmp_path, f"--screenshot={png}", "--window-size=1280,3200")
    _w, _h, pixels = _png_pixels(png)
    assert sum(1 for p in pixels if p == MARK) < 500


def test_cli_report_writes_html_and_csv_of_a_tampered_log_only_when_asked(log: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from enforcer.cli.root import cli

    flip_effect(log, TAMPERED_SEQ)
    state = str(log.parent)
    html_file, csv_file = tmp_path / "r.html", tmp_path / "r.csv"
    runner = CliRunner()
    refused = runner.invoke(cli, ["--state", state, "audit", "report", "--html", str(html_file)])
    assert refused.exit_code == 1 and not html_file.exists()  # a log that does not verify: refused
    neither = runner.invoke(cli, ["--state", state, "audit", "report", "--unverified"])
    assert neither.exit_code == 2 and "--csv" in neither.output
    args = [
        "--state",
        state,
        "audit",
        "report",
        "--unverified",
        "--html",
        str(html_file),
        "--csv",
        str(csv_file),
    ]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    page = html_file.read_text(encoding="utf-8")
    assert page.count("<tr class='tampered'>") == 1 and _card(page, "decisions") == len(PLAN) - 1
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text(encoding="utf-8"))))
    assert [r["seq"] for r in rows if r["verified"] == "no"] == [str(TAMPERED_SEQ)]


def test_cli_export_unverified_says_which_events_fail(log: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from enforcer.cli.root import cli

    state = str(log.parent)
    clean = CliRunner().invoke(cli, ["--state", state, "audit", "export"])
    assert clean.exit_code == 0 and "verification_failure" not in clean.stdout
    flip_effect(log, TAMPERED_SEQ)
    res = CliRunner().invoke(cli, ["--state", state, "audit", "export", "--unverified"])
    assert res.exit_code == 0 and "DOES NOT VERIFY" in res.stderr
    events = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(events) == len(PLAN)
    flagged = [e["gpu_enforcer"]["seq"] for e in events if "verification_failure" in e["gpu_enforcer"]]
    assert flagged == [TAMPERED_SEQ] and events[TAMPERED_SEQ]["result"]["effect"] == "allow"
