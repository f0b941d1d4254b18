"""Old policy against new policy: the Rego rewritten for speed decides exactly as commit 9c317c5 did.

``tests/data/policy_9c317c5/`` holds that commit's ``launch.rego`` and ``evidence.rego`` (the last
policy logic before the speed rewrite). Both are loaded, with the CURRENT data documents, into two
embedded engines and evaluated on the same input documents: hypothesis-generated decision inputs
(odd and lowercase country codes, aliases, missing fields, group-membership dates at their
boundaries, suspensions, licences, grants, attestations, evidence, ledger figures just below and
above thresholds, decision times at day boundaries in several offsets), every input the coverage
cases build through the real pipeline, and the shipped examples. Any difference in the decision
(effect, reasons, messages, severities) or in whether evaluation fails is a failure.

When a decision change is INTENDED, the policy author refreshes the baseline (copy the new modules
over the ones here, in the same commit as the intended change) and says so in the commit message.
"""

from __future__ import annotations

import copy
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.loader import load_bundle

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BASELINE = Path(__file__).resolve().parent / "data" / "policy_9c317c5"
EXAMPLES = ROOT / "examples"

ACCOUNTS = ["100000000001", "100000000002", "100000000003"]
COUNTRIES = ["CN", "HK", "MO", "CY", "IL", "AE", "US", "GB", "RU", "SG", "TW", "AM", "IR", "BH"]
ODD_COUNTRIES = ["UK", "cn", "Cn", "XX", "", "CHN", "hk", " CN", "CN\u0000"]
# Day boundaries of the dated data (CY suspension 2025-10-01..2026-10-01, groups since 2023-10-25,
# HK treated as CN since 2020-07-31), in UTC and in other offsets, and some that do not parse.
NOWS = [
    "2020-07-30T23:59:59Z",
    "2020-07-31T00:00:00Z",
    "2020-07-31T01:00:00+02:00",
    "2023-10-24T23:59:59.999999999Z",
    "2023-10-25T00:00:00Z",
    "2023-10-24T20:00:00-04:00",
    "2023-10-25T00:30:00+01:00",
    "2025-09-30T23:59:59Z",
    "2025-10-01T00:00:00Z",
    "2025-09-30T22:00:00-02:00",
    "2026-09-30T23:59:59.5Z",
    "2026-10-01T00:00:00Z",
    "2026-10-01T00:00:00+00:00",
    "2026-10-01T01:00:00+01:00",
    "2026-09-30T23:30:00-00:30",
    "2026-10-01T00:00:00,5Z",
    "2026-05-28T20:26:40Z",
    "2026-10-01t00:00:00Z",
    "2026-10-01T00:00:00z",
    "2026-10-01",
    "",
]
CLASSES = ["3A090.a", "3A090.b", "indeterminate", "unknown", "4A090", "none", "EAR99"]
REGIONS = ["us-east-1", "ap-east-1", "cn-north-1", "il-central-1", "me-central-1", "eu-west-2", "mars-1"]
STATUSES = [
    "valid",
    "missing",
    "invalid",
    "expired",
    "not_required",
    "incomplete",
    "account_mismatch",
    "weird",
]
TIMES = [
    "2026-09-30T23:59:59Z",
    "2026-10-01T00:00:00Z",
    "2026-10-01T00:00:01Z",
    "2030-01-01T00:00:00Z",
    "2020-01-01T00:00:00Z",
]
TPP = [0, 999_999, 1_000_000, 1_000_001, 4_000_000, 4_999_999, 5_000_000, 9_999_999, 10_000_000]

# Mostly real codes (so that the country rules, not ACCOUNT_UNKNOWN, decide), sometimes odd ones.
country = st.integers(0, 19).flatmap(
    lambda k: (
        st.sampled_from(COUNTRIES)
        if k > 2
        else st.one_of(st.sampled_from(ODD_COUNTRIES), st.none(), st.integers(0, 2))
    )
)
maybe = st.booleans()


@st.composite
def origin(draw: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = dict(extra or {})
    for f in ("country", "hq_country", "parent_hq_country"):
        if draw(st.integers(0, 29)) > 0:
            d[f] = draw(country)
    return d


@st.composite
def item(draw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"count": draw(st.integers(0, 3)), "chip_class": draw(st.sampled_from(CLASSES))}
    if draw(maybe):
        d["instance_type"] = draw(st.sampled_from(["p5.48xlarge", "g5.xlarge", "trn1.32xlarge", "zz9.x"]))
    else:
        d["ref"] = {"kind": "launch_template", "id": "lt-0abc"}
    if draw(st.integers(0, 3)) == 0:
        d["unresolved"] = draw(st.sampled_from([True, False, 1, "yes"]))
    return d


@st.composite
def licence(draw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": draw(st.sampled_from(["L-1", "L-2"])),
        "account_id": draw(st.sampled_from(ACCOUNTS)),
        "expires": draw(st.sampled_from(TIMES)),
        "countries": draw(st.lists(st.sampled_from(["CN", "HK", "MO", "RU", "cn"]), max_size=3)),
    }
    if draw(maybe):
        d["status"] = draw(st.sampled_from(["active", "revoked", "suspended"]))
        d["revoked_at"] = draw(st.sampled_from(TIMES))
    if draw(maybe):
        d["valid_from"] = draw(st.sampled_from(TIMES))
    if draw(maybe):
        d["classes"] = draw(st.lists(st.sampled_from(CLASSES), max_size=2))
    if draw(maybe):
        d["max_tpp"] = draw(st.sampled_from([*TPP, "1000"]))
    return d


@st.composite
def evidence(draw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k in ("caller", "contact"):
        if draw(maybe):
            d[k] = {"country": draw(country), "source": "s", "time": "t"}
    if draw(maybe):
        cs = draw(st.lists(st.sampled_from(["CN", "HK", "US", "RU", "MO", "SG"]), max_size=3, unique=True))
        d["call_share"] = {
            "total": draw(st.sampled_from([0, 4, 5, 6, 100])),
            "shares": {c: draw(st.sampled_from([0.0, 0.05, 0.19, 0.2, 0.49, 0.5, 1])) for c in cs},
            "counts": {c: draw(st.sampled_from([0, 9, 10, 11])) for c in cs},
            "source": "s",
            "time": "t",
        }
    return d


@st.composite
def ledger(draw: Any) -> dict[str, Any]:
    if draw(st.integers(0, 5)) == 0:
        return {"status": "unavailable", "detail": "x"}
    owners = [
        {
            "kind": draw(st.sampled_from(["account", "end_customer", "parent", "reseller", "other"])),
            "owner": "o",
            "running_tpp": draw(st.sampled_from(TPP)),
            "tpp_hours": draw(st.sampled_from([0, 99_999_999, 100_000_000])),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    return {"owners": owners}


@st.composite
def screening(draw: Any) -> dict[str, Any]:
    if draw(st.integers(0, 5)) == 0:
        return {"status": "unavailable"}
    hits = [
        {
            "subject": "account",
            "entry": "E",
            "list": "L",
            "entry_id": 1,
            "score": draw(st.sampled_from([79, 80, 91, 92, 100])),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    return {"hits": hits}


@st.composite
def decision_input(draw: Any) -> dict[str, Any]:
    account_id = draw(st.sampled_from(ACCOUNTS))
    items = draw(st.lists(item(), max_size=3))
    doc: dict[str, Any] = {
        "request": {
            "account_id": account_id,
            "region": draw(st.sampled_from(REGIONS)),
            "total_tpp": draw(st.sampled_from(TPP)),
            "items": items,
        },
    }
    if draw(st.integers(0, 9)) > 0:
        doc["now"] = draw(st.sampled_from(NOWS))
    if draw(st.integers(0, 9)) > 0:
        extra: dict[str, Any] = {
            "account_id": account_id,
            "kyc": draw(st.sampled_from(["verified", "pending", "none"])),
        }
        if draw(maybe):
            extra["reseller"] = draw(st.sampled_from(["acme-cloud", 7]))
        doc["account"] = draw(origin(extra))
    if draw(maybe):
        r = draw(origin({"id": "acme-cloud"}))
        if draw(maybe):
            r["status"] = draw(st.sampled_from(["active", "suspended"]))
        doc["reseller"] = r
    att: dict[str, Any] = {"status": draw(st.sampled_from(STATUSES))}
    if draw(maybe):
        att["detail"] = draw(st.sampled_from(["", "why", 3]))
    ecs = draw(st.lists(origin({"kyc_level": "verified"}), max_size=2))
    for ec in ecs:
        if draw(maybe):
            ec["kyc_level"] = draw(st.sampled_from(["enhanced", "none", "basic"]))
    if draw(maybe):
        att["end_customers"] = ecs
    elif ecs:
        att["claims"] = {"end_customer": ecs[0]}
    doc["attestation"] = att
    if draw(maybe):
        doc["licences"] = draw(st.lists(licence(), max_size=2))
    if draw(st.integers(0, 2)) == 0:
        doc["evidence"] = draw(evidence())
    if draw(st.integers(0, 2)) == 0:
        doc["screening"] = draw(screening())
    if draw(st.integers(0, 2)) == 0:
        doc["ledger"] = draw(ledger())
    return doc


def _tree(dst: Path, modules_from: Path | None, grants: bool) -> Path:
    shutil.copytree(POLICIES, dst, ignore=shutil.ignore_patterns("*_test.rego"))
    if modules_from is not None:
        for name in ("launch.rego", "evidence.rego"):
            shutil.copyfile(modules_from / name, dst / "gpu" / "launch" / name)
    if grants:  # break-glass grants and an extra suspension: the same data for both sides
        bg = dst / "gpu" / "break_glass" / "data.json"
        doc = json.loads(bg.read_text())
        doc["grants"] = [
            {
                "id": "BG-1",
                "account_id": a,
                "waives": [
                    "KYC_NOT_VERIFIED",
                    "ORIGIN_RESTRICTED",
                    "ATTESTATION_MISSING",
                    "AGGREGATE_COMPUTE",
                ],
                "expires": "2026-10-01T00:00:00Z",
                "approved_by": "x",
            }
            for a in ACCOUNTS[:2]
        ]
        bg.write_text(json.dumps(doc))
        cg = dst / "gpu" / "country_groups" / "data.json"
        groups = json.loads(cg.read_text())
        groups["suspensions"].append({"group": "D5", "country": "RU", "since": "2026-10-01", "source": "x"})
        groups["suspensions"].append(
            {"group": "D1", "country": "AM", "since": "2020-01-01", "until": "2026-10-01"}
        )
        cg.write_text(json.dumps(groups))
    return dst


@pytest.fixture(scope="module", params=[False, True], ids=["shipped-data", "grants-and-suspensions"])
def engines(request: Any, tmp_path_factory: Any) -> tuple[EmbeddedEngine, EmbeddedEngine]:
    return _pair(tmp_path_factory.mktemp("diff"), request.param)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: Any) -> tuple[EmbeddedEngine, EmbeddedEngine]:
    return _pair(tmp_path_factory.mktemp("diff"), False)


def _pair(base: Path, grants: bool) -> tuple[EmbeddedEngine, EmbeddedEngine]:
    old = _tree(base / "old", BASELINE, grants)
    new = _tree(base / "new", None, grants)
    return EmbeddedEngine(load_bundle(old)), EmbeddedEngine(load_bundle(new))


def outcome(engine: EmbeddedEngine, doc: dict[str, Any]) -> Any:
    try:
        return engine.evaluate(copy.deepcopy(doc))
    except Exception as exc:  # an evaluation error on one side only is a difference too
        return ("error", type(exc).__name__)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(doc=decision_input())
def test_generated_inputs_decide_as_9c317c5(
    engines: tuple[EmbeddedEngine, EmbeddedEngine], doc: dict[str, Any]
) -> None:
    old, new = engines
    assert outcome(new, doc) == outcome(old, doc), json.dumps(doc)


class _Both:
    """Policy engine for the real pipeline that evaluates both policies and keeps every mismatch."""

    name = "embedded"

    def __init__(self, old: EmbeddedEngine, new: EmbeddedEngine) -> None:
        self.old, self.new = old, new
        self.revision = new.revision
        self.inputs = 0
        self.mismatches: list[dict[str, Any]] = []

    def evaluate(self, input_doc: dict[str, Any]) -> dict[str, Any]:
        self.inputs += 1
        if outcome(self.old, input_doc) != outcome(self.new, input_doc):
            self.mismatches.append(input_doc)
        return self.new.evaluate(input_doc)


def test_pipeline_inputs_decide_as_9c317c5(
    shipped: tuple[EmbeddedEngine, EmbeddedEngine], catalog: Any
) -> None:
    """The coverage cases (every decided operation, controlled type, CN and US accounts) and the examples."""
    from enforcer.accounts import AccountOrigin, StaticAccountDirectory
    from enforcer.intake import normalise
    from enforcer.model import LaunchRequest
    from enforcer.pipeline import Enforcer
    from tests.test_coverage_decided import CASES, controlled_value

    both = _Both(*shipped)
    accounts = StaticAccountDirectory(
        [
            AccountOrigin("210987654321", "CN", "CN", "CN", "verified", None),
            AccountOrigin("111122223333", "US", "US", "HK", "verified", None),
            AccountOrigin("123456789012", "CY", "US", "US", "pending", None),
        ]
    )
    enf = Enforcer(catalog=catalog, accounts=accounts, engine=both)
    from enforcer.coverage.synth import synth_record, synth_request

    requests: list[Any] = []
    for service, operation, source, path in CASES:
        params = synth_request(service, operation, path, controlled_value(service, operation, path))
        for acct in ("210987654321", "111122223333", "123456789012"):
            requests.append(normalise(synth_record(source, operation, params, acct)))
    for f in sorted((EXAMPLES / "events").glob("*.json")):
        requests.append(normalise(json.loads(f.read_text())))
    for f in sorted((EXAMPLES / "cloudtrail").glob("*.json.gz")):
        for rec in json.loads(gzip.decompress(f.read_bytes()))["Records"]:
            requests.append(normalise(rec))
    decided = 0
    for req in requests:
        if isinstance(req, LaunchRequest):
            for now in (1_759_276_799.0, 1_790_812_800.0):  # 2025-09-30T23:59:59Z, 2026-10-01T00:00:00Z
                enf.decide(req, now=now)
                decided += 1
    assert decided >= 200 and both.inputs >= decided
    assert both.mismatches == []
