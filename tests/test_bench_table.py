"""The README's benchmark table is what benchmarks/readme_table.py writes from bench-results/bench.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.cold_start import cold_rows, warm_row
from benchmarks.readme_table import BENCH_JSON, README, main, render, rewrite

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_generated_from_the_checked_in_json() -> None:
    assert main(["--check"]) == 0, "README table differs: python -m benchmarks.readme_table"


def test_every_row_comes_from_a_run() -> None:
    doc = json.loads(BENCH_JSON.read_text())
    assert doc["rows"] and doc["machine"]["cores"]
    for r in doc["rows"]:
        assert r["section"] and r["measured_at"] and r["load_before"], r["figure"]
        assert set(r) >= {"figure", "value", "compare", "target", "met"}
    sections = {r["section"] for r in doc["rows"]}
    assert {"cold", "guard-inprocess", "replay"} <= sections


def test_check_fails_when_someone_types_into_the_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    text = README.read_text()
    readme.write_text(text.replace("| figure | measured |", "| figure | measured (typed) |", 1))
    assert main(["--check", "--readme", str(readme)]) == 1
    assert main(["--readme", str(readme)]) == 0  # regenerates
    assert readme.read_text() == text


def test_render_shows_met_and_missing_markers_are_an_error() -> None:
    doc = {
        "machine": {"cores": 2, "python": "3.11"},
        "rows": [
            {"figure": "a|b", "value": "1", "compare": "", "target": "t", "met": True, "measured_at": "x"},
            {"figure": "c", "value": "2", "compare": "", "target": "t", "met": False, "measured_at": "x"},
            {"figure": "d", "value": "3", "compare": "", "target": "", "met": None, "measured_at": "x"},
        ],
    }
    block = render(doc)
    assert "| a\\|b | 1 |  | t | yes |" in block and "| **no** |" in block and "| d | 3 |  |  |  |" in block
    with pytest.raises(ValueError, match="markers"):
        rewrite("no markers here", block)


def test_cold_rows_without_custodian_say_not_measured() -> None:
    res = {
        "rounds": 2,
        "guard_ms": [300.0, 320.0],
        "control_ms": [250.0, 260.0],
        "custodian_ms": None,
        "guard_minus_control_ms": [50.0, 60.0],
        "guard_over_custodian": None,
    }
    rows = cold_rows(res)
    assert rows[0]["met"] is True and "not measured in this run" in rows[0]["compare"]
    assert rows[1]["value"] == "not measured in this run" and rows[1]["met"] is None
    res.update(custodian_ms=[600.0, 500.0], guard_over_custodian=[0.5, 0.64])
    rows = cold_rows(res)
    assert rows[1]["met"] is True and "0.57x" in rows[1]["value"]
    res.update(guard_minus_control_ms=[150.0, 90.0, 200.0])
    assert cold_rows(res)[0]["met"] is False


def test_warm_row_targets() -> None:
    control = {"n": 10, "p50_ms": 6.0, "p99_ms": 9.0}
    assert warm_row([10.0] * 99 + [19.0], control)["met"] is True
    assert warm_row([13.0] * 100, control)["met"] is False  # p50 > 2x control
    assert warm_row([10.0] * 98 + [25.0] * 2, control)["met"] is False  # p99 > 20 ms
