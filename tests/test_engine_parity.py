"""Same policies, same tests, same answers: the embedded engine and the OPA REST path agree.

The REST side is a real ``opa run --server`` (``make tools``; skipped without it, failing when CI=true)
loaded through ``policy push``, so this checks the REST plumbing (input/result JSON round trip, paths,
data mounting by push) against OPA itself; tests/test_opa_real_parity.py compares far more inputs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.accounts import StaticAccountDirectory
from enforcer.model import (
    ATTESTATION_STATUSES,
    AccountOrigin,
    AttestationResult,
    Decision,
    LaunchItem,
    LaunchRequest,
)
from enforcer.pipeline import Enforcer
from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.opa_rest import OpaRestEngine
from enforcer.policy.testing import run_tests
from tests.opa_real import RealOpa

EVENTS = Path(__file__).resolve().parent / "events"
NOW = 1_780_000_000.0  # fixed decision time: both engines see the same input document
NOW_RFC3339 = "2026-05-28T20:26:40Z"

ACCOUNTS = [
    AccountOrigin("100000000001", "US", "US", "US", "verified"),
    AccountOrigin("100000000002", "US", "US", "US", "pending"),
    AccountOrigin("100000000003", "CN", "CN", "CN", "verified"),
    AccountOrigin("100000000004", "HK", "HK", "HK", "verified"),
    AccountOrigin("100000000005", "AE", "AE", "AE", "verified"),
    AccountOrigin("100000000006", "IL", "IL", "IL", "verified"),
    AccountOrigin("100000000007", "SG", "SG", "CN", "verified"),
    AccountOrigin("100000000008", "MO", "MO", "MO", "none"),
    AccountOrigin("100000000009", "SG", "SG", "SG", "none", reseller="acme-cloud"),
]
UNKNOWN_ACCOUNT = "999999999999"
RESELLER = ACCOUNTS[-1]

ITEMS: list[tuple[str | None, int, dict[str, Any] | None]] = [
    ("p5.48xlarge", 1, None),
    ("p5.48xlarge", 20, None),  # large compute
    ("g5.xlarge", 1, None),  # not controlled
    ("trn1.32xlarge", 1, None),  # indeterminate
    ("p4d.24xlarge", 2, None),
    ("zz9.mystery", 1, None),  # unknown type
    (None, 1, {"kind": "launch_template", "id": "lt-0abc", "version": "$Latest"}),
    (None, 1, {"kind": "instance_family", "family": "p5"}),
    (None, 1, {"kind": "instance_requirements", "accelerators": False}),
]


def _ec(country: str) -> dict[str, Any]:
    ec = {"country": country, "hq_country": country, "parent_hq_country": country, "kyc_level": "verified"}
    return {"end_customer": ec}


def _reseller(country: str) -> dict[str, Any]:
    return {"id": "acme-cloud", "country": country, "hq_country": country, "parent_hq_country": country}


SG_RESELLER = _reseller("SG")
ATTESTATIONS = [
    AttestationResult(
        "valid", claims=_ec("SG"), jti="a1", kid="k1", issuer="acme-cloud", reseller=SG_RESELLER
    ),
    AttestationResult(
        "valid", claims=_ec("CN"), jti="a2", kid="k1", issuer="acme-cloud", reseller=SG_RESELLER
    ),
    AttestationResult(
        "valid", claims=_ec("AE"), jti="a3", kid="k1", issuer="acme-cloud", reseller=SG_RESELLER
    ),
    AttestationResult("valid", claims=_ec("SG"), jti="a4", issuer="acme-cloud", reseller=_reseller("HK")),
    AttestationResult("valid", claims={"end_customer": {"country": "SG"}}, jti="a5", reseller=SG_RESELLER),
    *(
        AttestationResult(s, detail=f"status {s}")
        for s in ATTESTATION_STATUSES
        if s not in ("valid", "not_required")
    ),
]


class FixedAttestation:
    """Provider returning one fixed result (the registry has its own tests)."""

    def __init__(self, result: AttestationResult) -> None:
        self.result = result

    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        return self.result


def request(itype: str | None, count: int, ref: dict[str, Any] | None, account: str) -> LaunchRequest:
    item = LaunchItem(itype, count, ref=copy.deepcopy(ref))
    return LaunchRequest("cloudtrail", "ec2:RunInstances", account, "us-east-1", items=[item], event_id="e-1")


def outcome(d: Decision) -> tuple[str, list[tuple[str, str, str]], bool]:
    return d.effect, [(r.code, r.message, r.severity) for r in d.reasons], d.fail_open


@pytest.fixture(scope="module")
def rest_engine(bundle: Any) -> Iterator[OpaRestEngine]:
    from enforcer.policy.push import push_bundle

    with RealOpa([]) as server:
        push_bundle(bundle, server.url, include_tests=True)
        engine = OpaRestEngine(server.url, bundle.revision, timeout=2.0)
        yield engine
        engine.close()


@pytest.fixture(scope="module")
def embedded_with_tests(bundle: Any) -> EmbeddedEngine:
    return EmbeddedEngine(bundle, with_tests=True)


def pair(
    catalog: Any, engine: Any, rest: OpaRestEngine, accounts: Any, att: AttestationResult
) -> list[Enforcer]:
    provider = FixedAttestation(att)
    return [
        Enforcer(catalog=catalog, accounts=accounts, engine=e, attestations=provider) for e in (engine, rest)
    ]


# -- Rego tests ----------------------------------------------------------------------------------
def test_every_rego_test_gives_the_same_result_on_both_engines(
    bundle: Any, embedded_with_tests: EmbeddedEngine, rest_engine: OpaRestEngine
) -> None:
    embedded = [(r.package, r.name, r.passed) for r in run_tests(bundle, embedded_with_tests)]
    rest = [(r.package, r.name, r.passed) for r in run_tests(bundle, rest_engine)]
    assert len(embedded) >= 20
    assert rest == embedded
    assert all(passed for _, _, passed in rest), [n for _, n, p in rest if not p]


def test_a_failing_rego_test_fails_on_both_engines(
    embedded_with_tests: EmbeddedEngine, rest_engine: OpaRestEngine
) -> None:
    for engine in (embedded_with_tests, rest_engine):
        with pytest.raises(Exception, match="undefined"):
            engine.eval_path("gpu.launch_test.test_that_does_not_exist")


# -- decisions -----------------------------------------------------------------------------------
def test_decision_matrix_is_identical_on_both_engines(
    catalog: Any, engine: Any, rest_engine: OpaRestEngine
) -> None:
    accounts = StaticAccountDirectory(ACCOUNTS)
    seen_codes: set[str] = set()
    seen_effects: set[str] = set()
    cases = 0
    for account in [*(a.account_id for a in ACCOUNTS), UNKNOWN_ACCOUNT]:
        atts = ATTESTATIONS if account == RESELLER.account_id else [ATTESTATIONS[0]]
        for att in atts:
            emb, rest = pair(catalog, engine, rest_engine, accounts, att)
            for itype, count, ref in ITEMS:
                a = emb.decide(request(itype, count, ref, account), now=NOW)
                b = rest.decide(request(itype, count, ref, account), now=NOW)
                assert a.input == b.input
                assert outcome(a) == outcome(b), (account, att.status, itype, ref)
                assert (a.engine, b.engine) == (engine.name, "opa")  # the session's (deployed) engine
                assert a.policy_revision == b.policy_revision
                seen_codes.update(a.reason_codes)
                seen_effects.add(a.effect)
                cases += 1
    assert cases >= 150
    assert seen_effects == {"allow", "deny", "audit"}
    # The matrix is meaningful: it reaches every reason code the policy can give by itself.
    assert seen_codes == {
        "ORIGIN_RESTRICTED",
        "END_CUSTOMER_RESTRICTED",
        "ACCOUNT_UNKNOWN",
        "KYC_NOT_VERIFIED",
        "ATTESTATION_MISSING",
        "ATTESTATION_INVALID",
        "ATTESTATION_EXPIRED",
        "ATTESTATION_NOT_YET_VALID",
        "ATTESTATION_UNKNOWN_ISSUER",
        "ATTESTATION_KEY_REVOKED",
        "ATTESTATION_ACCOUNT_MISMATCH",
        "ATTESTATION_INCOMPLETE",
        "RESELLER_RESTRICTED",
        "ORIGIN_LICENSE_REVIEW",
        "LARGE_COMPUTE_REQUEST",
        "CHIP_CLASS_INDETERMINATE",
        "REQUEST_UNRESOLVED",
    }


def _event_requests() -> list[tuple[str, Any]]:
    """Every launch request in tests/events/*.json, via enforcer.intake.normalise (records of log files too)."""
    from enforcer.intake import iter_cloudtrail_records, normalise

    out: list[tuple[str, Any]] = []
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        events = list(iter_cloudtrail_records(event)) if "Records" in event else [event]
        for i, ev in enumerate(events):
            result = normalise(ev, now=NOW_RFC3339)
            if isinstance(result, LaunchRequest):
                out.append((f"{path.name}#{i}", result))
    return out


def test_every_event_fixture_decides_the_same_on_both_engines(
    catalog: Any, engine: Any, rest_engine: OpaRestEngine
) -> None:
    requests = _event_requests()
    assert len(requests) >= 40, "tests/events/ should hold one fixture per event shape"
    profiles = [ACCOUNTS[0], ACCOUNTS[2], ACCOUNTS[4], RESELLER, None]
    for name, req in requests:
        for profile, att in zip(profiles, [ATTESTATIONS[0], *ATTESTATIONS[:4]], strict=True):
            origins = (
                []
                if profile is None
                else [AccountOrigin(**{**profile.to_dict(), "account_id": req.account_id})]
            )
            emb, rest = pair(catalog, engine, rest_engine, StaticAccountDirectory(origins), att)
            a = emb.decide(copy.deepcopy(req), now=NOW)
            b = rest.decide(copy.deepcopy(req), now=NOW)
            assert outcome(a) == outcome(b), (name, profile and profile.country, att.status)
