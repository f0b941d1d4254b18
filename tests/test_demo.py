"""The main job: `enforcer demo` runs the whole product on a moto server and tells the story right."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from enforcer.demo import run_demo


def test_demo_end_to_end(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_demo(tmp_path, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert code == 0, text
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^│ (\d+)\s+│.*$", text, re.M)}
    assert len(rows) == 15

    def row(n: int) -> str:
        return rows[n]

    assert "stored" in row(1) and "ATTESTATION_INVALID" in row(4) and "not stored" in row(4)
    assert "allow" in row(5) and "running" in row(5)  # verified US customer
    assert "allow" in row(6)  # properly attested Singapore customer
    assert "END_CUSTOMER_RESTRICTED" in row(7) and "2 stopped, tagged" in row(7)  # university, A100
    assert "END_CUSTOMER_RESTRICTED" in row(8) and "stopped" in row(8)  # lab, H100 fleet, parent HQ CN
    assert "audit" in row(9) and "ORIGIN_LICENSE_REVIEW" in row(9) and "running" in row(9)  # UAE
    assert "ORIGIN_RESTRICTED" in row(10) and "stopped" in row(10)
    assert "none" in row(11) and "allow" in row(11)  # an uncontrolled chip stays allowed
    assert "FAILED/NonCompliant" in row(12) and "SUCCESS" in row(13)
    assert "200" in row(14) and "403" in row(15)
    assert "duplicate=True" in text and "acted once, logged once" in text
    assert "chain verified" in text
    report = tmp_path / "demo-report.html"
    assert report.exists() and "END_CUSTOMER_RESTRICTED" in report.read_text()
    assert list((tmp_path / "scp").glob("*.json"))
    # the log outlives the moto server: the CLI verifies it with the KMS key's public half, and
    # catches an edit of any record
    from click.testing import CliRunner

    from enforcer.cli import cli

    key = tmp_path / "audit-kms-public.pem"
    verify = ["--state", str(tmp_path), "audit", "verify", "--public-key", str(key)]
    ok = CliRunner().invoke(cli, verify)
    assert ok.exit_code == 0 and "signed with the pinned public key" in ok.output, ok.output
    segment = tmp_path / "audit" / "segment-000001.jsonl"
    lines = segment.read_text().splitlines(keepends=True)
    assert len(lines) == 11  # 15 rows less the 4 attestation submissions (the redelivery logged nothing)
    edited = lines[6].replace('"us-east-1"', '"eu-west-1"', 1)
    assert edited != lines[6]
    lines[6] = edited
    segment.write_text("".join(lines))
    bad = CliRunner().invoke(cli, verify)
    assert bad.exit_code == 1 and "seq 6" in bad.output, bad.output
