"""Review tools: HTML report (escaping, self-contained, renders in headless Chromium), query, export, pubkey."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from benchmarks.audit_bench import sample_decision
from enforcer.audit.defaults import default_public_key, open_local_store
from enforcer.audit.query import iter_records, to_opa_event
from enforcer.audit.report import render_html
from enforcer.audit.verify import open_verify
from enforcer.cli.audit import audit_group
from enforcer.model import Reason
from enforcer.state import CliState

EVIL = '<script>alert("x")</script>'
EVIL_ATTR = '"><img src=x onerror=alert(1)>'


@click.group()
@click.option("--state", type=click.Path(file_okay=False), required=True)
@click.pass_context
def root(ctx: click.Context, state: str) -> None:
    ctx.obj = CliState(Path(state))


root.add_command(audit_group)


@pytest.fixture()
def state(tmp_path: Path) -> CliState:
    st = CliState(tmp_path / "state")
    store = open_local_store(st.audit_dir, st.keys_dir, checkpoint_every=10)
    countries = ["CN", "US", "SG", "RU", "DE"]
    for i in range(40):
        effect = ("allow", "deny", "audit", "deny")[i % 4]
        reasons = {
            "allow": [],
            "deny": [Reason("ORIGIN_RESTRICTED", "origin restricted", "high")],
            "audit": [Reason("LARGE_COMPUTE_REQUEST", "large request", "medium")],
        }[effect]
        store.write(
            sample_decision(
                i,
                effect=effect,  # type: ignore[arg-type]
                country=countries[i % 5],
                account_id=f"{100000000000 + i % 3}",
                chip_class=("3A090.a", "3A090.b", "none")[i % 3],
                timestamp=f"2025-03-{1 + i // 8:02d}T{i % 24:02d}:15:00Z",
                reasons=reasons,
            ),
            "stop" if effect == "deny" else None,
        )
    # Hostile values from the log must come out escaped.
    store.write(
        sample_decision(
            99,
            effect="deny",
            country=EVIL,
            account_id=EVIL_ATTR,
            chip_class="3A090.a",
            timestamp="2025-03-06T10:00:00Z",
            reasons=[Reason("ORIGIN_RESTRICTED", EVIL, "high")],
        ),
        EVIL,
    )
    store.close()
    return st


def test_report_is_self_contained_and_escaped(state: CliState) -> None:
    page = render_html(
        iter_records(state.audit_dir), source=str(state.audit_dir), verification=open_verify(state.audit_dir)
    )
    assert page.startswith("<!DOCTYPE html>")
    assert EVIL not in page and EVIL_ATTR not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert (
        "http:" not in page
        and "https:" not in page
        and "//" not in re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    )
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"<[a-zA-Z][^>]*\s(src|href)\s*=", page)  # no tag loads anything
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count("<script>") == 1  # only ours
    # Counts by effect, country, chip class and reason, a timeline, and the listed launches.
    for heading in (
        "By effect",
        "By account origin country",
        "By chip class",
        "By reason",
        "Decisions over time",
    ):
        assert heading in page
    assert "ORIGIN_RESTRICTED" in page and "LARGE_COMPUTE_REQUEST" in page
    assert page.count("<tr><td>") >= 31  # 21 denied + 10 audited launches (+ count tables)
    assert "<svg" in page and "Integrity: OK: 41 records" in page


def _png_pixels(path: Path) -> tuple[int, int, list[tuple[int, ...]]]:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) with zlib only."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = ctype = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _c, _f, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 0xFF
            elif f == 2:
                line[x] = (line[x] + b) & 0xFF
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        pixels.extend(tuple(line[i : i + 3]) for i in range(0, stride, bpp))
        prev = line
    return width, height, pixels


@pytest.fixture(scope="session")
def chromium() -> str:
    # Installed by the test setup (`make test-deps`, run by .ci/run), never from inside a test.
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.skip(
            "headless Chromium is not installed: run `make test-deps` (apt-get install chromium) as root"
        )
    return path


def _chromium(binary: str, page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


def test_report_renders_in_headless_chromium(state: CliState, tmp_path: Path, chromium: str) -> None:
    html_file = tmp_path / "report.html"
    res = CliRunner().invoke(root, ["--state", str(state.state), "audit", "report", "--html", str(html_file)])
    assert res.exit_code == 0, res.output
    png = tmp_path / "shot.png"
    run = _chromium(chromium, html_file, tmp_path, f"--screenshot={png}", "--window-size=1200,900")
    assert png.exists(), run.stderr[-2000:]
    console = _console(run.stderr)
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    assert console == [], console  # the page logs nothing at all (no CSP violation either)
    width, height, pixels = _png_pixels(png)
    assert (width, height) == (1200, 900)
    colours = set(pixels[::7])
    assert len(colours) > 20  # not blank
    lum = [sum(p) / 3 for p in pixels[::13]]
    mean = sum(lum) / len(lum)
    assert sum((v - mean) ** 2 for v in lum) / len(lum) > 50
    red = sum(1 for p in pixels if p[0] > 170 and p[1] < 80 and p[2] < 80)  # deny bars / cards
    assert red > 100
    # The inline script ran (and left the DOM as expected).
    dom = _chromium(chromium, html_file, tmp_path, "--dump-dom")
    assert 'class="js-ready"' in dom.stdout
    assert '<span id="shown">31</span>' in dom.stdout


def test_console_error_detection_works(tmp_path: Path, chromium: str) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>notDefined();</script></body></html>")
    run = _chromium(chromium, bad, tmp_path, f"--screenshot={tmp_path / 'bad.png'}", "--window-size=400,300")
    assert any("Uncaught" in line for line in _console(run.stderr))


def test_query_filters_and_formats(state: CliState) -> None:
    runner = CliRunner()
    base = ["--state", str(state.state), "audit", "query", "--format", "jsonl"]
    res = runner.invoke(root, [*base, "--effect", "audit"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert len(rows) == 10 and {r["result"]["effect"] for r in rows} == {"audit"}
    res = runner.invoke(root, [*base, "--reason", "ORIGIN_RESTRICTED", "--chip-class", "3A090.a"])
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert rows and all("3A090.a" in r["chip_classes"] for r in rows)
    assert all(r["result"]["reasons"][0]["code"] == "ORIGIN_RESTRICTED" for r in rows)
    res = runner.invoke(root, [*base, "--account", "100000000001"])
    assert {json.loads(x)["account_id"] for x in res.output.splitlines()} == {"100000000001"}
    res = runner.invoke(root, [*base, "--since", "2025-03-02T00:00:00Z", "--until", "2025-03-02T23:59:59Z"])
    rows = [json.loads(x) for x in res.output.splitlines()]
    assert len(rows) == 8 and all(r["timestamp"].startswith("2025-03-02") for r in rows)
    res = runner.invoke(root, [*base, "--limit", "3"])
    assert len(res.output.splitlines()) == 3
    res = runner.invoke(
        root, ["--state", str(state.state), "audit", "query", "--effect", "deny", "--limit", "5"]
    )
    assert res.exit_code == 0 and "5 decision(s)" in res.output and "deny" in res.output
    res = runner.invoke(root, [*base, "--since", "yesterday"])
    assert res.exit_code == 2 and "RFC 3339" in res.output


def test_export_is_opa_decision_log_jsonl(state: CliState, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"
    res = CliRunner().invoke(root, ["--state", str(state.state), "audit", "export", "--out", str(out)])
    assert res.exit_code == 0, res.output
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(events) == 41
    ev = events[1]
    for key in ("decision_id", "path", "input", "result", "timestamp", "metrics", "bundles", "labels"):
        assert key in ev
    assert "req_id" not in ev and "revision" not in ev and "enforcer" not in ev  # OPA's members only
    assert ev["path"] == "gpu/launch/decision" and ev["result"]["effect"] == "deny"
    assert ev["bundles"] == {"gpu-launch-enforcer": {"revision": "rev-1"}}
    assert set(ev["labels"]) == {"app", "id", "version"} and ev["labels"]["version"] != "0.1.0"
    assert len({e["labels"]["id"] for e in events}) == 1  # one instance wrote the log
    assert ev["gpu_enforcer"]["seq"] == 1 and len(ev["gpu_enforcer"]["hash"]) == 64
    assert "/input/attestation/claims/end_use" in ev["masked"]
    stdout = CliRunner().invoke(root, ["--state", str(state.state), "audit", "export"])
    assert [json.loads(x) for x in stdout.output.splitlines()] == events
    first = next(iter(iter_records(state.audit_dir)))
    assert to_opa_event(first.record)["decision_id"] == "decision-0"


def test_pubkey_prints_the_checkpoint_key(state: CliState) -> None:
    res = CliRunner().invoke(root, ["--state", str(state.state), "audit", "pubkey"])
    assert res.exit_code == 0
    assert res.output.startswith("-----BEGIN PUBLIC KEY-----")
    assert res.output.encode() == default_public_key(state.keys_dir)
    assert open_verify(state.audit_dir, res.output.encode()).signatures_verified


def test_report_of_empty_log(tmp_path: Path) -> None:
    page = render_html([], source="empty")
    assert "no data" in page and "(<span id='shown'>0</span> shown)" in page
