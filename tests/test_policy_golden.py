"""The policy decides 3,000 generated inputs exactly as recorded (scripts/policy_golden.py, recorded on 9c317c5).

A rewrite for speed must not change a decision: every input's whole decision document (effect, each
reason's code, message and severity, their order) is compared on the embedded engine, with the policy's
data as shipped and with break-glass grants loaded. An evaluation error must stay an error (the
pipeline fails closed on it); its text is compared without the module's line number. A deliberate
change of decisions regenerates the file (see the script) and shows up in review as a changed golden file.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import policy_golden  # noqa: E402


@pytest.fixture(scope="module")
def golden() -> list[dict[str, Any]]:
    return policy_golden.recorded()


def test_golden_file_is_the_generator_output(golden: list[dict[str, Any]]) -> None:
    """The recorded inputs are what the seeded generator makes (so the file can be regenerated)."""
    cases = policy_golden.corpus(len(golden))
    assert [(r["case"], r["input"]) for r in golden] == [(c, json.loads(json.dumps(d))) for c, d in cases]


def test_golden_file_reaches_every_reason_and_effect(golden: list[dict[str, Any]]) -> None:
    codes: Counter[str] = Counter()
    effects: Counter[str] = Counter()
    for rec in golden:
        d = rec["decision"]
        effects["error" if "error" in d else d["effect"]] += 1
        codes.update(r["code"] for r in d.get("reasons", []))
    reasons = json.loads((ROOT / "policies" / "gpu" / "reasons" / "data.json").read_text())
    policy_codes = {c for c in reasons if not c.startswith("_") and c != "POLICY_ENGINE_UNAVAILABLE"}
    assert policy_codes <= set(codes), policy_codes - set(codes)
    assert min(codes[c] for c in policy_codes) >= 10
    assert {"allow", "audit", "deny", "error"} <= set(effects)


def test_current_policy_decides_every_golden_input_the_same(golden: list[dict[str, Any]]) -> None:
    cases = [(r["case"], r["input"]) for r in golden]
    now = policy_golden.decide_all(ROOT / "policies", cases)
    diffs = []
    for i, (rec, got) in enumerate(zip(golden, now, strict=True)):
        want, have = policy_golden.normalised(rec["decision"]), policy_golden.normalised(got)
        if want != have:
            lines = difflib.unified_diff(
                json.dumps(want, indent=1, sort_keys=True).splitlines(),
                json.dumps(have, indent=1, sort_keys=True).splitlines(),
                "recorded",
                "now",
                lineterm="",
            )
            diffs.append(f"case {i} ({rec['case']}): input {json.dumps(rec['input'])}\n" + "\n".join(lines))
    assert not diffs, f"{len(diffs)} of {len(golden)} decisions changed; first:\n" + "\n\n".join(diffs[:3])


def test_the_comparison_sees_a_changed_decision(tmp_path: Path, golden: list[dict[str, Any]]) -> None:
    """Not vacuous: a policy whose Cyprus suspension ends a day early decides some golden input differently."""
    import shutil

    pol = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", pol)
    groups = pol / "gpu" / "country_groups" / "data.json"
    data = json.loads(groups.read_text())
    for s in data["suspensions"]:
        if s["country"] == "CY":
            s["until"] = "2026-09-30"
    groups.write_text(json.dumps(data))
    sample = golden[:1000]
    changed = policy_golden.decide_all(pol, [(r["case"], r["input"]) for r in sample])
    assert any(
        policy_golden.normalised(r["decision"]) != policy_golden.normalised(c)
        for r, c in zip(sample, changed, strict=True)
    )
