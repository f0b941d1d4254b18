"""``enforcer policy check``: data-file mistakes that used to change decisions silently are refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli
from enforcer.policy.check import check_policy_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target)
    return target


def edit(policy: Path, name: str, change: Callable[[Any], Any]) -> None:
    f = policy / "gpu" / name / "data.json"
    doc = json.loads(f.read_text())
    out = change(doc)
    f.write_text(json.dumps(doc if out is None else out))


def test_shipped_policy_is_sound() -> None:
    assert check_policy_dir(ROOT / "policies") == []


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        # "UAE" is not an ISO code: it would match nothing and quietly drop the UAE from D:4
        ("country_groups", lambda d: d["groups"]["D4"].update(UAE=[{"since": "2024-01-01", "source": "ear-740-supp1"}]),
         "'UAE' is not one of"),
        ("country_groups", lambda d: d["groups"]["D5"].update(XX=[{"since": "2024-01-01", "source": "ear-740-supp1"}]),
         "'XX' is not one of"),
        ("country_groups", lambda d: d["groups"]["D5"].update(AE="2024-01-01"), "groups/D5/AE"),
        ("country_groups", lambda d: d["groups"]["D5"].update(AE=[{"since": "2024-01-01"}]),
         "'source' is a required property"),
        ("country_groups", lambda d: d["groups"]["D5"].update(AE=[{"since": "2024-01-01", "source": "a-blog"}]),
         "'a-blog' is not in sources"),
        ("country_groups", lambda d: d["groups"]["D5"].update(AE=[{"since": "2024-13-45", "source": "ear-740-supp1"}]),
         "is not a date"),
        ("country_groups", lambda d: d["groups"]["D5"].update(AE=[{"since": "2024-05-01", "until": "2024-01-01", "source": "ear-740-supp1"}]),
         "before it starts"),
        ("country_groups", lambda d: d.update(D5=["AE"]), "Additional properties are not allowed"),
        ("config", lambda d: d["thresholds"].update(large_compute_tpp="1000000"), "is not of type 'number'"),
        ("config", lambda d: d.update(requried_kyc="verified"), "Additional properties"),
        ("config", lambda d: d["attestation_codes"].update(incomplete="ATTESTATION_PARTIAL"),
         "ATTESTATION_PARTIAL (used by config attestation_codes.incomplete) is not registered"),
        ("reasons", lambda d: d.pop("ORIGIN_LICENSE_REVIEW"),
         "ORIGIN_LICENSE_REVIEW (used by launch.rego) is not registered"),
        ("reasons", lambda d: d["ORIGIN_RESTRICTED"].update(effect="audit"), "never_waivable"),
        ("reasons", lambda d: d["KYC_NOT_VERIFIED"].update(effect="warn"), "'warn' is not one of"),
        ("reasons", lambda d: d["KYC_NOT_VERIFIED"].update(severity=3), "is not one of"),
        ("break_glass", lambda d: d["grants"].append({"id": "BG-1", "account_id": "111122223333",
                                                      "waives": ["KYC_NOT_VERIFED"], "expires": "2027-01-01T00:00:00Z",
                                                      "approved_by": "x"}), "KYC_NOT_VERIFED"),
        ("countries", lambda d: d["iso3166_alpha2"].__delitem__("NI"), "differs from the iso3166 package"),
        ("regions", lambda d: d["regions"]["ap-east-1"].update(country="GB"), "differs from botocore"),
    ],
)  # fmt: skip
def test_each_mistake_is_named(policy_copy: Path, name: str, change: Any, expected: str) -> None:
    edit(policy_copy, name, change)
    problems = check_policy_dir(policy_copy)
    assert any(expected in p for p in problems), problems


def test_rule_whose_code_is_missing_from_reasons_fails_the_check(policy_copy: Path) -> None:
    rego = policy_copy / "gpu" / "launch" / "launch.rego"
    rego.write_text(
        rego.read_text().replace('reason("LARGE_COMPUTE_REQUEST"', 'reason("HUGE_COMPUTE_REQUEST"')
    )
    problems = check_policy_dir(policy_copy)
    assert any("HUGE_COMPUTE_REQUEST (used by launch.rego) is not registered" in p for p in problems)


def test_cli_check_and_policy_test_refuse_bad_data(policy_copy: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["policy", "check", str(policy_copy)])
    assert ok.exit_code == 0 and "OK" in ok.output
    edit(policy_copy, "config", lambda d: d["thresholds"].update(large_compute_tpp="1000000"))
    bad = runner.invoke(cli, ["policy", "check", str(policy_copy)])
    assert bad.exit_code == 2 and "large_compute_tpp" in bad.stderr and "Traceback" not in bad.output
    tested = runner.invoke(cli, ["policy", "test", str(policy_copy)])
    assert tested.exit_code == 2 and "policy check" in tested.stderr
