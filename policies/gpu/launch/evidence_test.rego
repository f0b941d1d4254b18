package gpu.evidence_test

import rego.v1

import data.gpu.launch

# Issue 14: observed origin signals, restricted-party screening, aggregate compute per owner.

now := "2026-12-01T00:00:00Z"

p5x7 := {"instance_type": "p5.48xlarge", "count": 7, "chip_class": "3A090.a", "tpp": 886547.2, "unresolved": false}

small := {"instance_type": "t3.micro", "count": 1, "chip_class": "none", "tpp": 0, "unresolved": false}

req(items) := {"account_id": "111122223333", "region": "us-east-1", "items": items, "total_tpp": sum([i.tpp | some i in items])}

us_account := {"account_id": "111122223333", "country": "US", "hq_country": "US", "parent_hq_country": "US", "kyc": "verified", "reseller": null}

base(extra) := object.union(
	{"request": req([p5x7]), "account": us_account, "attestation": {"status": "not_required"}, "now": now},
	extra,
)

codes(d) := {r.code | some r in d.reasons}

reason_of(d, code) := [r | some r in d.reasons; r.code == code][0]

caller(cc) := {"caller": {"ip": "203.0.113.7", "country": cc, "source": "mmdb:test", "time": now}}

share(shares, total) := {"call_share": {"shares": shares, "total": total, "window_hours": 24, "source": "observations", "time": now}}

# -- ORIGIN_SIGNAL_CONFLICT ----------------------------------------------------------------

test_us_account_calling_from_cn_is_audited if {
	d := launch.decision with input as base({"evidence": caller("CN")})
	d.effect == "audit"
	r := reason_of(d, "ORIGIN_SIGNAL_CONFLICT")
	contains(r.message, "caller_ip CN")
	contains(r.message, "mmdb:test")
}

test_matching_signal_is_no_conflict if {
	d := launch.decision with input as base({"evidence": caller("US")})
	d.effect == "allow"
}

test_hong_kong_caller_counts_as_china_and_conflicts if {
	d := launch.decision with input as base({"evidence": caller("HK")})
	"ORIGIN_SIGNAL_CONFLICT" in codes(d)
}

test_majority_of_calls_from_cn_denies if {
	d := launch.decision with input as base({"evidence": share({"CN": 0.7, "US": 0.3}, 20)})
	d.effect == "deny"
	contains(reason_of(d, "ORIGIN_SIGNAL_CONFLICT").message, "call_share CN")
}

test_many_cn_calls_deny_however_diluted if {
	ev := {"call_share": {"shares": {"CN": 0.05, "US": 0.95}, "counts": {"CN": 12, "US": 228}, "total": 240, "window_hours": 24, "source": "observations", "time": now}}
	d := launch.decision with input as base({"evidence": ev})
	d.effect == "deny"
	contains(reason_of(d, "ORIGIN_SIGNAL_CONFLICT").message, "call_share CN")
}

test_few_cn_calls_in_a_large_window_only_audit if {
	ev := {"call_share": {"shares": {"CN": 0.03, "US": 0.97}, "counts": {"CN": 3, "US": 97}, "total": 100, "window_hours": 24, "source": "observations", "time": now}}
	d := launch.decision with input as base({"evidence": ev})
	d.effect == "allow"
}

test_share_below_min_calls_is_ignored if {
	d := launch.decision with input as base({"evidence": share({"CN": 1}, 3)})
	not "ORIGIN_SIGNAL_CONFLICT" in codes(d)
}

test_minority_share_from_other_country_audits if {
	d := launch.decision with input as base({"evidence": share({"DE": 0.3, "US": 0.7}, 20)})
	d.effect == "audit"
	"ORIGIN_SIGNAL_CONFLICT" in codes(d)
}

test_contact_address_in_cn_denies if {
	ev := {"contact": {"country": "CN", "source": "account:GetContactInformation", "time": now}}
	d := launch.decision with input as base({"evidence": ev})
	d.effect == "deny"
}

test_contact_deny_follows_data if {
	ev := {"contact": {"country": "CN", "source": "account:GetContactInformation", "time": now}}
	d := launch.decision with input as base({"evidence": ev})
		with data.gpu.evidence.origin_signals.deny_on_contact_restricted as false
	d.effect == "audit"
}

test_uncontrolled_launch_not_judged_on_signals if {
	d := launch.decision with input as object.union(base({"evidence": caller("CN")}), {"request": req([small])})
	d.effect == "allow"
}

test_reseller_end_customer_country_is_declared if {
	acct := object.union(us_account, {"country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "kyc": "none", "reseller": "acme"})
	ec := {"country": "DE", "hq_country": "DE", "parent_hq_country": "DE", "kyc_level": "verified"}
	inp := base({
		"account": acct,
		"reseller": {"id": "acme", "country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "status": "active"},
		"attestation": {"status": "valid", "claims": {"end_customer": ec}, "end_customers": [ec]},
		"evidence": caller("DE"),
	})
	d := launch.decision with input as inp
	not "ORIGIN_SIGNAL_CONFLICT" in codes(d)
}

# -- RESTRICTED_PARTY_MATCH ----------------------------------------------------------------

hit(score) := {"subject": "attested end customer", "entry": "SHENZHEN EXAMPLE TECHNOLOGY CO., LTD.", "list": "Entity List (EL) - Bureau of Industry and Security", "entry_id": "e1", "score": score}

test_match_denies_naming_entry_and_list if {
	d := launch.decision with input as base({"screening": {"status": "ok", "hits": [hit(96)]}})
	d.effect == "deny"
	r := reason_of(d, "RESTRICTED_PARTY_MATCH")
	contains(r.message, "SHENZHEN EXAMPLE TECHNOLOGY")
	contains(r.message, "Entity List (EL)")
}

test_match_denies_even_uncontrolled if {
	d := launch.decision with input as object.union(base({"screening": {"status": "ok", "hits": [hit(96)]}}), {"request": req([small])})
	d.effect == "deny"
}

test_near_match_audits if {
	d := launch.decision with input as base({"screening": {"status": "ok", "hits": [hit(85)]}})
	d.effect == "audit"
	startswith(reason_of(d, "RESTRICTED_PARTY_MATCH").message, "near match")
}

test_low_score_ignored if {
	d := launch.decision with input as base({"screening": {"status": "ok", "hits": [hit(60)]}})
	d.effect == "allow"
}

test_screening_unavailable_audits if {
	d := launch.decision with input as base({"screening": {"status": "unavailable", "detail": "list unreadable", "hits": []}})
	d.effect == "audit"
}

# -- AGGREGATE_COMPUTE ---------------------------------------------------------------------

owner(kind, running, hours) := {"kind": kind, "owner": "ec:abc", "running_tpp": running, "tpp_hours": hours, "cumulative_tpp": running}

test_first_request_is_below_the_audit_threshold if {
	d := launch.decision with input as base({"ledger": {"owners": [owner("end_customer", 0, 0)]}})
	d.effect == "allow"
}

test_sum_crossing_audit_threshold_audits if {
	d := launch.decision with input as base({"ledger": {"owners": [owner("end_customer", 886547.2, 10)]}})
	d.effect == "audit"
	contains(reason_of(d, "AGGREGATE_COMPUTE").message, "end_customer ec:abc")
}

test_sum_crossing_deny_threshold_denies if {
	d := launch.decision with input as base({"ledger": {"owners": [owner("end_customer", 4500000, 10)]}})
	d.effect == "deny"
}

test_tpp_hours_threshold_audits if {
	d := launch.decision with input as base({"ledger": {"owners": [owner("account", 0, 200000000)]}})
		with input.request as req([{"instance_type": "g6.xlarge", "count": 1, "chip_class": "3A090.b", "tpp": 100, "unresolved": false}])
	"AGGREGATE_COMPUTE" in codes(d)
}

test_kind_without_thresholds_is_not_decided if {
	d := launch.decision with input as base({"ledger": {"owners": [owner("nobody", 9000000, 0)]}})
	d.effect == "allow"
}

test_unreadable_ledger_audits if {
	d := launch.decision with input as base({"ledger": {"owners": [], "status": "unavailable", "detail": "ThrottlingException"}})
	d.effect == "audit"
	contains(reason_of(d, "AGGREGATE_COMPUTE").message, "ledger unavailable")
}
