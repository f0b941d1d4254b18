"""The decision pipeline end to end on the embedded engine: each policy rule, fail-closed semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enforcer.model import AccountOrigin, AttestationResult, LaunchItem, LaunchRequest
from enforcer.pipeline import NoAttestations
from enforcer.policy import load_bundle
from enforcer.policy.embedded import EmbeddedEngine

US = AccountOrigin("111122223333", "US", "US", "US", "verified")
CN = AccountOrigin("222233334444", "CN", "CN", "CN", "verified")
RESOLD = AccountOrigin("333344445555", "SG", "SG", "SG", "none", reseller="acme")


def req(
    itype: str | None = "p5.48xlarge", account: str = US.account_id, count: int = 1, **kw: Any
) -> LaunchRequest:
    item = LaunchItem(itype, count, ref=kw.pop("ref", None))
    return LaunchRequest("cloudtrail", "ec2:RunInstances", account, "us-east-1", items=[item], **kw)


class FixedAttestation:
    """A provider returning one fixed result (stands in for the registry, tested in its own suite)."""

    def __init__(self, result: AttestationResult) -> None:
        self.result = result

    def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
        return self.result


def codes(d: Any) -> set[str]:
    return {r.code for r in d.reasons}


def test_verified_us_account_allowed(make_enforcer: Any, engine: Any) -> None:
    d = make_enforcer([US]).decide(req())
    assert d.effect == "allow" and d.reasons == []
    item = d.request.items[0]
    assert item.chip_class == "3A090.a" and item.tpp == pytest.approx(126649.6)
    doc = d.to_dict()
    assert doc["policy"]["engine"] == engine.name and doc["policy"]["revision"].startswith("sha256:")
    assert doc["request"]["items"][0]["chip_class"] == "3A090.a"


def test_uncontrolled_chip_allowed_for_anyone(make_enforcer: Any) -> None:
    assert make_enforcer([]).decide(req("g5.xlarge", account="999999999999")).effect == "allow"


def test_unknown_account_denied(make_enforcer: Any) -> None:
    d = make_enforcer([US]).decide(req(account="999999999999"))
    assert d.effect == "deny" and codes(d) == {"ACCOUNT_UNKNOWN"}


def test_restricted_origin_denied(make_enforcer: Any) -> None:
    d = make_enforcer([CN]).decide(req(account=CN.account_id))
    assert d.effect == "deny" and "ORIGIN_RESTRICTED" in codes(d)
    assert all(r.severity == "critical" for r in d.reasons if r.code == "ORIGIN_RESTRICTED")


def test_reseller_without_registry_is_missing(make_enforcer: Any) -> None:
    d = make_enforcer([RESOLD], attestations=NoAttestations()).decide(req(account=RESOLD.account_id))
    assert d.effect == "deny" and codes(d) == {"ATTESTATION_MISSING"}


SG_RESELLER = {
    "id": "acme",
    "country": "SG",
    "hq_country": "SG",
    "parent_hq_country": "SG",
    "status": "active",
}


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("invalid", "ATTESTATION_INVALID"),
        ("expired", "ATTESTATION_EXPIRED"),
        ("not_yet_valid", "ATTESTATION_NOT_YET_VALID"),
        ("unknown_issuer", "ATTESTATION_UNKNOWN_ISSUER"),
        ("key_revoked", "ATTESTATION_KEY_REVOKED"),
        ("account_mismatch", "ATTESTATION_ACCOUNT_MISMATCH"),
        ("incomplete", "ATTESTATION_INCOMPLETE"),
    ],
)
def test_attestation_status_codes(make_enforcer: Any, status: str, code: str) -> None:
    result = AttestationResult(status, reseller=SG_RESELLER)
    enf = make_enforcer([RESOLD], attestations=FixedAttestation(result))
    assert codes(enf.decide(req(account=RESOLD.account_id))) == {code}


def test_attested_end_customer_in_china_denied(make_enforcer: Any) -> None:
    ec = {
        "end_customer": {
            "country": "SG",
            "hq_country": "SG",
            "parent_hq_country": "CN",
            "kyc_level": "verified",
        }
    }
    enf = make_enforcer(
        [RESOLD], attestations=FixedAttestation(AttestationResult("valid", ec, reseller=SG_RESELLER))
    )
    d = enf.decide(req(account=RESOLD.account_id))
    assert d.effect == "deny" and codes(d) == {"END_CUSTOMER_RESTRICTED"}


def test_kyc_and_license_review_and_large_compute(make_enforcer: Any) -> None:
    pending = AccountOrigin("444455556666", "AE", "AE", "AE", "pending")
    d = make_enforcer([pending]).decide(req(account=pending.account_id, count=10))
    assert d.effect == "deny"
    assert codes(d) == {"KYC_NOT_VERIFIED", "ORIGIN_LICENSE_REVIEW", "LARGE_COMPUTE_REQUEST"}


def test_indeterminate_chip_audited(make_enforcer: Any) -> None:
    d = make_enforcer([US]).decide(req("trn1.32xlarge"))
    assert d.effect == "audit" and codes(d) == {"CHIP_CLASS_INDETERMINATE"}


def test_unknown_instance_type_treated_as_controlled(make_enforcer: Any) -> None:
    d = make_enforcer([]).decide(req("zz9.huge", account="999999999999"))
    assert d.effect == "deny" and "ACCOUNT_UNKNOWN" in codes(d)


def test_unresolved_reference_without_aws_denied(make_enforcer: Any) -> None:
    d = make_enforcer([US]).decide(req(None, ref={"kind": "launch_template", "id": "lt-0abc"}))
    assert d.effect == "deny" and codes(d) == {"REQUEST_UNRESOLVED"}


def test_instance_requirements_without_accelerators_is_none(make_enforcer: Any) -> None:
    d = make_enforcer([]).decide(
        req(None, account="999999999999", ref={"kind": "instance_requirements", "accelerators": False})
    )
    assert d.effect == "allow"


def test_instance_family_takes_the_worst_class(make_enforcer: Any) -> None:
    d = make_enforcer([CN]).decide(
        req(None, account=CN.account_id, ref={"kind": "instance_family", "family": "p4d"})
    )
    assert d.request.items[0].chip_class == "3A090.a" and d.effect == "deny"


def test_dryrun_is_not_enforced(make_enforcer: Any) -> None:
    d = make_enforcer([CN], mode="dryrun").decide(req(account=CN.account_id))
    assert d.effect == "deny" and d.enforced is False


BROKEN = 'package gpu.launch\n\nimport rego.v1\n\ndecision := {"effect": "allow"} if input.request\n\ndecision := {"effect": "deny"} if input.request\n'


def _broken_engine(tmp_path: Path) -> EmbeddedEngine:
    (tmp_path / "broken.rego").write_text(BROKEN)
    return EmbeddedEngine(load_bundle(tmp_path))


def test_engine_error_fails_closed_for_controlled_chips(make_enforcer: Any, tmp_path: Path) -> None:
    enf = make_enforcer([US], engine=_broken_engine(tmp_path), fail_policy="open")
    d = enf.decide(req())
    assert d.effect == "deny" and codes(d) == {"POLICY_ENGINE_UNAVAILABLE"} and not d.fail_open
    assert enf.counters["engine_failures"] == 1 and enf.counters["fail_open"] == 0


def test_engine_error_fail_policy_for_uncontrolled(make_enforcer: Any, tmp_path: Path) -> None:
    closed = make_enforcer([US], engine=_broken_engine(tmp_path))
    assert closed.decide(req("g5.xlarge")).effect == "deny"
    opened = make_enforcer([US], engine=_broken_engine(tmp_path), fail_policy="open")
    d = opened.decide(req("g5.xlarge"))
    assert d.effect == "audit" and d.fail_open and opened.counters["fail_open"] == 1


def test_undefined_decision_fails_closed(make_enforcer: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.rego").write_text("package gpu.launch\n\nimport rego.v1\n\nother := 1\n")
    enf = make_enforcer([US], engine=EmbeddedEngine(load_bundle(tmp_path)))
    assert codes(enf.decide(req())) == {"POLICY_ENGINE_UNAVAILABLE"}


def test_attestation_provider_crash_is_invalid_not_allow(make_enforcer: Any) -> None:
    class Crashing:
        def for_account(self, origin: AccountOrigin, now: float, ref: str | None = None) -> AttestationResult:
            raise RuntimeError("registry bug")

    d = make_enforcer([RESOLD], attestations=Crashing()).decide(req(account=RESOLD.account_id))
    assert codes(d) == {"ATTESTATION_INVALID"}


def test_policy_revision_changes_with_data(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import POLICIES

    shutil.copytree(POLICIES, tmp_path / "p")
    before = load_bundle(tmp_path / "p").revision
    cfg = tmp_path / "p" / "gpu" / "config" / "data.json"
    cfg.write_text(cfg.read_text().replace("1000000", "2000000"))
    assert load_bundle(tmp_path / "p").revision != before


def test_alternatives_count_once_per_group_and_groups_add_up(make_enforcer: Any) -> None:
    """A HyperPod cluster: a fixed p5 group plus a requirement choosing p4d or p5 for 4 instances."""
    import copy
    import json

    from enforcer.intake import normalise
    from tests.conftest import EVENTS

    event = json.loads((EVENTS / "cloudtrail_sagemaker_cluster.json").read_text())
    groups = event["detail"]["requestParameters"]["instanceGroups"]
    flex = copy.deepcopy(groups[1])
    del flex["instanceType"]
    flex["instanceGroupName"] = "flex"
    flex["instanceRequirements"] = {"instanceTypes": ["ml.p4d.24xlarge", "ml.p5.48xlarge"]}
    groups.append(flex)
    request = normalise(event)
    d = make_enforcer([US]).decide(request)
    by_type = {}
    for item in d.request.items:
        by_type.setdefault(item.instance_type, []).append(item)
    p5 = by_type["p5.48xlarge"]
    fixed = next(i for i in p5 if i.group is None)
    chosen = next(i for i in p5 if i.group is not None)
    assert by_type["p4d.24xlarge"][0].group == chosen.group  # one group per requirement
    total = d.input["request"]["total_tpp"]
    assert total == pytest.approx(fixed.tpp + chosen.tpp + by_type["m5.xlarge"][0].tpp)


def test_items_without_a_group_add_up(make_enforcer: Any) -> None:
    req = LaunchRequest(
        "cloudtrail",
        "ec2:RunInstances",
        US.account_id,
        "us-east-1",
        items=[LaunchItem("p5.48xlarge", 1), LaunchItem("p5.48xlarge", 1)],
    )
    d = make_enforcer([US]).decide(req)
    assert d.input is not None and d.input["request"]["total_tpp"] == pytest.approx(2 * 126649.6)
