package gpu.trust_test

import rego.v1

import data.gpu.launch

# Issue 13: dated country groups, region location, complete attestations, the reseller's own
# origin, end-customer KYC, licences and per-reason effects.

now := "2026-12-01T00:00:00Z"

p5 := {"instance_type": "p5.48xlarge", "count": 1, "chip_class": "3A090.a", "tpp": 126649.6, "unresolved": false}

trn2 := {"instance_type": "trn2.48xlarge", "count": 1, "chip_class": "3A090.b", "tpp": 50000, "unresolved": false}

req(items) := {"account_id": "111122223333", "region": "us-east-1", "items": items, "total_tpp": sum([i.tpp | some i in items])}

direct(country) := {"account_id": "111122223333", "country": country, "hq_country": country, "parent_hq_country": country, "kyc": "verified", "reseller": null}

direct_at(country, t) := {"request": req([p5]), "account": direct(country), "attestation": {"status": "not_required"}, "now": t}

ec(country) := {"country": country, "hq_country": country, "parent_hq_country": country, "kyc_level": "verified"}

sg_reseller := {"id": "acme-cloud", "country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "status": "active"}

via_reseller := object.union(direct("SG"), {"kyc": "none", "reseller": "acme-cloud"})

resold(customers) := {
	"request": req([p5]),
	"account": via_reseller,
	"reseller": sg_reseller,
	"now": now,
	"attestation": {"status": "valid", "claims": {"end_customer": customers[0]}, "end_customers": customers},
}

codes(d) := {r.code | some r in d.reasons}

# -- country groups as a dated dataset ------------------------------------------------------

test_nicaragua_denied_from_march_2024 if {
	d := launch.decision with input as direct_at("NI", now)
	d.effect == "deny"
	codes(d) == {"ORIGIN_RESTRICTED"}
}

test_nicaragua_before_its_move_is_not_restricted if {
	d := launch.decision with input as direct_at("NI", "2024-03-14T12:00:00Z")
	d.effect == "allow"
}

test_cambodia_is_d1_review_after_february_2026 if {
	d := launch.decision with input as direct_at("KH", now)
	d.effect == "audit"
	codes(d) == {"ORIGIN_LICENSE_REVIEW"}
}

test_cambodia_was_d5_before_february_2026 if {
	d := launch.decision with input as direct_at("KH", "2026-02-02T23:59:59Z")
	codes(d) == {"ORIGIN_RESTRICTED"}
}

test_without_decision_time_every_membership_counts if {
	d := launch.decision with input as object.remove(direct_at("KH", now), ["now"])
	"ORIGIN_RESTRICTED" in codes(d)
}

test_cyprus_destination_keeps_the_a5_a6_carve_out if {
	d := launch.decision with input as direct_at("US", now) with input.account.country as "CY"
	d.effect == "allow"
}

test_cyprus_hq_allowed_while_the_suspension_runs if {
	i := object.union(direct_at("US", "2026-06-01T00:00:00Z"), {"account": {"hq_country": "CY"}})
	d := launch.decision with input as i
	d.effect == "allow"
}

test_cyprus_hq_restricted_once_the_suspension_lapses if {
	i := object.union(direct_at("US", now), {"account": {"hq_country": "CY"}})
	d := launch.decision with input as i
	codes(d) == {"ORIGIN_RESTRICTED"}
}

test_hq_test_has_no_carve_out if {
	# with CY in D:5 (suspension lapsed), a CY parent is restricted though a CY destination is not
	i := object.union(direct_at("US", now), {"account": {"country": "CY", "parent_hq_country": "CY"}})
	d := launch.decision with input as i
	codes(d) == {"ORIGIN_RESTRICTED"}
	some r in d.reasons
	contains(r.message, ": parent_hq_country=CY (")
}

test_made_up_country_code_is_unknown if {
	d := launch.decision with input as direct_at("XX", now)
	codes(d) == {"ACCOUNT_UNKNOWN"}
}

# -- region location ------------------------------------------------------------------------

test_hong_kong_region_restricted if {
	d := launch.decision with input as direct_at("US", now) with input.request.region as "ap-east-1"
	d.effect == "deny"
	codes(d) == {"REGION_RESTRICTED"}
}

test_china_regions_restricted if {
	every r in ["cn-north-1", "cn-northwest-1"] {
		d := launch.decision with input as direct_at("US", now) with input.request.region as r
		codes(d) == {"REGION_RESTRICTED"}
	}
}

test_d4_region_audited if {
	d := launch.decision with input as direct_at("US", now) with input.request.region as "me-central-1"
	d.effect == "audit"
	codes(d) == {"ORIGIN_LICENSE_REVIEW"}
}

test_region_rule_ignores_uncontrolled_chips if {
	g5 := {"instance_type": "g5.xlarge", "count": 1, "chip_class": "none", "tpp": 1120, "unresolved": false}
	d := launch.decision with input as direct_at("US", now) with input.request.region as "ap-east-1" with input.request.items as [g5]
	d.effect == "allow"
}

# -- attestations ---------------------------------------------------------------------------

test_complete_verified_end_customer_allowed if {
	d := launch.decision with input as resold([ec("SG")])
	d.effect == "allow"
}

test_end_customer_without_hq_is_incomplete if {
	d := launch.decision with input as resold([{"country": "SG", "kyc_level": "verified"}])
	d.effect == "deny"
	codes(d) == {"ATTESTATION_INCOMPLETE"}
}

test_end_customer_made_up_code_is_incomplete if {
	d := launch.decision with input as resold([object.union(ec("SG"), {"parent_hq_country": "ZZ"})])
	codes(d) == {"ATTESTATION_INCOMPLETE"}
}

test_incomplete_status_maps_to_its_code if {
	i := object.union(resold([ec("SG")]), {"attestation": {"status": "incomplete", "end_customers": []}})
	d := launch.decision with input as i
	codes(d) == {"ATTESTATION_INCOMPLETE"}
}

test_end_customer_kyc_none_denied if {
	d := launch.decision with input as resold([object.union(ec("SG"), {"kyc_level": "none"})])
	codes(d) == {"KYC_NOT_VERIFIED"}
}

test_end_customer_without_kyc_level_denied if {
	d := launch.decision with input as resold([object.remove(ec("SG"), ["kyc_level"])])
	codes(d) == {"KYC_NOT_VERIFIED"}
}

test_most_restrictive_of_several_attestations_wins if {
	d := launch.decision with input as resold([ec("SG"), object.union(ec("SG"), {"parent_hq_country": "CN"})])
	codes(d) == {"END_CUSTOMER_RESTRICTED"}
}

# -- the reseller's own origin --------------------------------------------------------------

test_reseller_registered_in_china_denied if {
	i := object.union(resold([ec("SG")]), {"reseller": {"country": "CN"}})
	d := launch.decision with input as i
	d.effect == "deny"
	codes(d) == {"RESELLER_RESTRICTED"}
}

test_reseller_with_chinese_parent_denied if {
	i := object.union(resold([ec("SG")]), {"reseller": {"parent_hq_country": "HK"}})
	d := launch.decision with input as i
	codes(d) == {"RESELLER_RESTRICTED"}
}

test_reseller_not_in_registry_denied if {
	d := launch.decision with input as object.remove(resold([ec("SG")]), ["reseller"])
	codes(d) == {"RESELLER_RESTRICTED"}
}

test_reseller_origin_incomplete_or_suspended_denied if {
	no_hq := object.union(resold([ec("SG")]), {"reseller": {"hq_country": null}})
	codes(launch.decision) == {"RESELLER_RESTRICTED"} with input as no_hq
	suspended := object.union(resold([ec("SG")]), {"reseller": {"status": "suspended"}})
	codes(launch.decision) == {"RESELLER_RESTRICTED"} with input as suspended
}

# -- licences -------------------------------------------------------------------------------

cn_licence := {
	"id": "L-2026-0042",
	"account_id": "111122223333",
	"countries": ["CN"],
	"classes": ["3A090.a"],
	"max_tpp": 200000,
	"expires": "2027-01-01T00:00:00Z",
	"status": "active",
}

licensed(licence, t) := object.union(direct_at("CN", t), {"licences": [licence]})

test_licence_turns_the_covered_deny_into_licensed if {
	d := launch.decision with input as licensed(cn_licence, now)
	d.effect == "audit"
	codes(d) == {"LICENSED"}
	some r in d.reasons
	contains(r.message, "L-2026-0042")
	contains(r.message, "ORIGIN_RESTRICTED")
}

test_licence_never_beyond_its_scope if {
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(cn_licence, "2027-01-01T00:00:00Z")
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"status": "revoked", "revoked_at": "2026-11-30T00:00:00Z"}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"status": "revoked"}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"status": "paused"}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"account_id": "999999999999"}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"classes": ["3A090.b"]}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"max_tpp": 1000}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"valid_from": "2027-01-01T00:00:00Z"}), now)
	codes(launch.decision) == {"ORIGIN_RESTRICTED"} with input as licensed(object.union(cn_licence, {"countries": ["RU"]}), now)
}

test_licence_revoked_later_still_covered_earlier_launches if {
	l := object.union(cn_licence, {"status": "revoked", "revoked_at": "2026-12-02T00:00:00Z"})
	codes(launch.decision) == {"LICENSED"} with input as licensed(l, now)
}

test_licence_started_in_the_past_covers if {
	started := object.union(cn_licence, {"valid_from": "2026-01-15T00:00:00Z"})
	codes(launch.decision) == {"LICENSED"} with input as licensed(started, now)
}

test_licence_with_only_the_required_fields_covers if {
	minimal := {"id": "L-min", "account_id": "111122223333", "countries": ["CN"], "expires": "2027-01-01T00:00:00Z"}
	codes(launch.decision) == {"LICENSED"} with input as licensed(minimal, now)
}

test_licence_for_hong_kong_covers_a_hong_kong_origin if {
	hk := object.union(cn_licence, {"countries": ["HK"]})
	i := object.union(licensed(hk, now), {"account": {"country": "HK", "hq_country": "HK", "parent_hq_country": "HK"}})
	codes(launch.decision) == {"LICENSED"} with input as i
}

test_licence_must_cover_every_country_behind_a_code if {
	i := object.union(licensed(cn_licence, now), {"account": {"parent_hq_country": "RU"}})
	d := launch.decision with input as i
	codes(d) == {"ORIGIN_RESTRICTED"}
}

test_licence_does_not_waive_other_denies if {
	i := object.union(licensed(cn_licence, now), {"account": {"kyc": "none"}})
	d := launch.decision with input as i
	d.effect == "deny"
	codes(d) == {"KYC_NOT_VERIFIED", "LICENSED"}
}

test_licence_without_classes_covers_3a090_only if {
	d := launch.decision with input as licensed(object.remove(cn_licence, ["classes"]), now) with input.request.items as [trn2]
	codes(d) == {"LICENSED"}
	unknown := {"instance_type": "x9.huge", "count": 1, "chip_class": "unknown", "tpp": 0, "unresolved": false}
	d2 := launch.decision with input as licensed(object.remove(cn_licence, ["classes"]), now) with input.request.items as [unknown]
	"ORIGIN_RESTRICTED" in codes(d2)
}

test_break_glass_never_waives_region_or_reseller_restrictions if {
	grant := {"id": "BG-1", "account_id": "111122223333", "waives": ["REGION_RESTRICTED", "RESELLER_RESTRICTED"], "expires": "2027-01-01T00:00:00Z", "approved_by": "x"}
	d := launch.decision with input as direct_at("US", now) with input.request.region as "ap-east-1" with data.gpu.break_glass.grants as [grant]
	codes(d) == {"REGION_RESTRICTED"}
}

# -- per-reason effect and missing reason data -----------------------------------------------

test_reason_effect_can_turn_a_deny_into_an_audit if {
	i := object.union(direct_at("US", now), {"account": {"kyc": "pending"}})
	d := launch.decision with input as i with data.gpu.reasons.KYC_NOT_VERIFIED.effect as "audit"
	d.effect == "audit"
	codes(d) == {"KYC_NOT_VERIFIED"}
}

test_reason_effect_never_downgrades_a_legal_prohibition if {
	d := launch.decision with input as direct_at("CN", now) with data.gpu.reasons.ORIGIN_RESTRICTED.effect as "audit"
	d.effect == "deny"
}

test_reason_effect_can_turn_an_audit_into_a_deny if {
	d := launch.decision with input as direct_at("KH", now) with data.gpu.reasons.ORIGIN_LICENSE_REVIEW.effect as "deny"
	d.effect == "deny"
}

test_rule_whose_code_is_missing_from_reasons_data_still_fires if {
	d := launch.decision with input as direct_at("CN", now) with data.gpu.reasons as {}
	d.effect == "deny"
	some r in d.reasons
	r.code == "ORIGIN_RESTRICTED"
	r.severity == "critical"
}
