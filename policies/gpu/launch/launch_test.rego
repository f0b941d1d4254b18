package gpu.launch_test

import rego.v1

import data.gpu.launch

# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------

p5 := {"instance_type": "p5.48xlarge", "count": 1, "chip_class": "3A090.a", "tpp": 126649.6, "unresolved": false}

g5 := {"instance_type": "g5.xlarge", "count": 1, "chip_class": "none", "tpp": 1120, "unresolved": false}

trn1 := {"instance_type": "trn1.32xlarge", "count": 1, "chip_class": "indeterminate", "tpp": 48640, "unresolved": false}

lt_ref := {"instance_type": null, "count": 1, "chip_class": "unknown", "tpp": 0, "unresolved": true, "ref": {"kind": "launch_template", "id": "lt-0abc"}}

req(items) := {"account_id": "111122223333", "items": items, "total_tpp": sum([i.tpp | some i in items])}

us_direct := {"account_id": "111122223333", "country": "US", "hq_country": "US", "parent_hq_country": "US", "kyc": "verified", "reseller": null}

via_reseller := object.union(us_direct, {"country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "kyc": "none", "reseller": "acme-cloud"})

now := "2026-12-01T00:00:00Z"

direct_input := {"request": req([p5]), "account": us_direct, "attestation": {"status": "not_required"}, "now": now}

sg_reseller := {"id": "acme-cloud", "country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "status": "active"}

attested(ec) := {"status": "valid", "claims": {"end_customer": ec}}

sg_customer := {"country": "SG", "hq_country": "SG", "parent_hq_country": "SG", "kyc_level": "verified"}

codes(d) := {r.code | some r in d.reasons}

# ---------------------------------------------------------------------------------------
# Uncontrolled chips
# ---------------------------------------------------------------------------------------

test_uncontrolled_allowed_even_for_unknown_account if {
	d := launch.decision with input as {"request": req([g5]), "attestation": {"status": "missing"}}
	d.effect == "allow"
	count(d.reasons) == 0
}

test_uncontrolled_allowed_for_restricted_origin if {
	acct := object.union(us_direct, {"country": "CN"})
	d := launch.decision with input as {"request": req([g5]), "account": acct, "attestation": {"status": "not_required"}}
	d.effect == "allow"
}

# ---------------------------------------------------------------------------------------
# Direct accounts
# ---------------------------------------------------------------------------------------

test_verified_us_direct_allowed if {
	d := launch.decision with input as direct_input
	d.effect == "allow"
	count(d.reasons) == 0
}

test_unknown_account_denied if {
	d := launch.decision with input as {"request": req([p5]), "attestation": {"status": "missing"}}
	d.effect == "deny"
	"ACCOUNT_UNKNOWN" in codes(d)
}

test_origin_country_restricted if {
	d := launch.decision with input as direct_input with input.account.country as "CN"
	d.effect == "deny"
	"ORIGIN_RESTRICTED" in codes(d)
}

test_parent_hq_restricted if {
	d := launch.decision with input as direct_input with input.account.parent_hq_country as "RU"
	d.effect == "deny"
	"ORIGIN_RESTRICTED" in codes(d)
}

test_macau_restricted if {
	d := launch.decision with input as direct_input with input.account.hq_country as "MO"
	"ORIGIN_RESTRICTED" in codes(d)
}

test_hong_kong_treated_as_china if {
	d := launch.decision with input as direct_input with input.account.country as "HK"
	"ORIGIN_RESTRICTED" in codes(d)
}

test_kyc_not_verified_denied if {
	d := launch.decision with input as direct_input with input.account.kyc as "pending"
	d.effect == "deny"
	codes(d) == {"KYC_NOT_VERIFIED"}
}

test_d4_origin_audited if {
	d := launch.decision with input as direct_input with input.account.country as "AE"
	d.effect == "audit"
	codes(d) == {"ORIGIN_LICENSE_REVIEW"}
}

test_licence_exempt_country_allowed if {
	d := launch.decision with input as direct_input with input.account.country as "IL"
	d.effect == "allow"
}

test_deny_outranks_audit_and_lists_all if {
	d := launch.decision with input as direct_input with input.account.kyc as "none" with input.account.country as "AE"
	d.effect == "deny"
	codes(d) == {"KYC_NOT_VERIFIED", "ORIGIN_LICENSE_REVIEW"}
}

# ---------------------------------------------------------------------------------------
# Reseller accounts and attestations
# ---------------------------------------------------------------------------------------

test_reseller_attested_sg_allowed if {
	d := launch.decision with input as {"request": req([p5]), "account": via_reseller, "reseller": sg_reseller, "now": now, "attestation": attested(sg_customer)}
	d.effect == "allow"
}

test_reseller_missing_attestation_denied if {
	d := launch.decision with input as {"request": req([p5]), "account": via_reseller, "reseller": sg_reseller, "now": now, "attestation": {"status": "missing"}}
	d.effect == "deny"
	codes(d) == {"ATTESTATION_MISSING"}
}

test_each_attestation_status_maps_to_its_code if {
	every status, code in data.gpu.config.attestation_codes {
		d := launch.decision with input as {"request": req([p5]), "account": via_reseller, "reseller": sg_reseller, "now": now, "attestation": {"status": status}}
		d.effect == "deny"
		code in codes(d)
	}
}

test_end_customer_parent_in_china_denied if {
	ec := object.union(sg_customer, {"parent_hq_country": "CN"})
	d := launch.decision with input as {"request": req([p5]), "account": via_reseller, "reseller": sg_reseller, "now": now, "attestation": attested(ec)}
	d.effect == "deny"
	codes(d) == {"END_CUSTOMER_RESTRICTED"}
}

test_end_customer_d4_audited if {
	ec := object.union(sg_customer, {"country": "AE"})
	d := launch.decision with input as {"request": req([p5]), "account": via_reseller, "reseller": sg_reseller, "now": now, "attestation": attested(ec)}
	d.effect == "audit"
	codes(d) == {"ORIGIN_LICENSE_REVIEW"}
}

test_reseller_in_restricted_country_denied_even_if_attested if {
	acct := object.union(via_reseller, {"country": "CN"})
	d := launch.decision with input as {"request": req([p5]), "account": acct, "reseller": sg_reseller, "now": now, "attestation": attested(sg_customer)}
	"ORIGIN_RESTRICTED" in codes(d)
}

test_reseller_accounts_need_no_own_kyc if {
	d := launch.decision with input as {"request": req([p5]), "account": via_reseller, "reseller": sg_reseller, "now": now, "attestation": attested(sg_customer)}
	not "KYC_NOT_VERIFIED" in codes(d)
}

# ---------------------------------------------------------------------------------------
# Chip class, size and unresolved requests
# ---------------------------------------------------------------------------------------

test_indeterminate_chip_audited if {
	d := launch.decision with input as {"request": req([trn1]), "account": us_direct, "attestation": {"status": "not_required"}}
	d.effect == "audit"
	codes(d) == {"CHIP_CLASS_INDETERMINATE"}
}

test_indeterminate_counts_as_controlled if {
	d := launch.decision with input as {"request": req([trn1]), "attestation": {"status": "missing"}}
	d.effect == "deny"
	"ACCOUNT_UNKNOWN" in codes(d)
}

test_large_compute_audited if {
	big := object.union(p5, {"count": 10, "tpp": 1266496})
	d := launch.decision with input as {"request": req([big]), "account": us_direct, "attestation": {"status": "not_required"}}
	d.effect == "audit"
	codes(d) == {"LARGE_COMPUTE_REQUEST"}
}

test_threshold_is_data if {
	d := launch.decision with data.gpu.config.thresholds.large_compute_tpp as 1000 with input as direct_input
	"LARGE_COMPUTE_REQUEST" in codes(d)
}

test_unresolved_reference_denied if {
	d := launch.decision with input as {"request": req([lt_ref]), "account": us_direct, "attestation": {"status": "not_required"}}
	d.effect == "deny"
	codes(d) == {"REQUEST_UNRESOLVED"}
}

test_one_reason_per_code_naming_every_field if {
	acct := object.union(us_direct, {"country": "CN", "hq_country": "CN", "parent_hq_country": "CN"})
	d := launch.decision with input as {"request": req([p5]), "account": acct, "attestation": {"status": "not_required"}}
	[r] := [r | some r in d.reasons; r.code == "ORIGIN_RESTRICTED"]
	contains(r.message, "country=CN, hq_country=CN, parent_hq_country=CN")
}

test_reasons_carry_severity if {
	d := launch.decision with input as direct_input with input.account.country as "CN"
	some r in d.reasons
	r.code == "ORIGIN_RESTRICTED"
	r.severity == "critical"
}

test_mixed_request_controlled_if_any_item_is if {
	d := launch.decision with input as {"request": req([g5, p5]), "attestation": {"status": "missing"}}
	d.effect == "deny"
}

# ---------------------------------------------------------------------------------------
# Break-glass
# ---------------------------------------------------------------------------------------

kyc_pending := object.union(direct_input, {"account": object.union(us_direct, {"kyc": "pending"}), "now": "2026-11-26T10:00:00Z"})

grant(codes, expires) := {"id": "BG-1", "account_id": "111122223333", "waives": codes, "expires": expires, "approved_by": "cco"}

test_break_glass_waives_until_expiry if {
	d := launch.decision with input as kyc_pending with data.gpu.break_glass.grants as [grant(["KYC_NOT_VERIFIED"], "2026-12-01T00:00:00Z")]
	d.effect == "audit"
	codes(d) == {"BREAK_GLASS"}
}

test_expired_break_glass_does_not_waive if {
	d := launch.decision with input as kyc_pending with data.gpu.break_glass.grants as [grant(["KYC_NOT_VERIFIED"], "2026-11-01T00:00:00Z")]
	d.effect == "deny"
	codes(d) == {"KYC_NOT_VERIFIED"}
}

test_break_glass_never_waives_restricted_origin if {
	cn := object.union(kyc_pending, {"account": object.union(us_direct, {"country": "CN"})})
	d := launch.decision with input as cn with data.gpu.break_glass.grants as [grant(["ORIGIN_RESTRICTED"], "2027-01-01T00:00:00Z")]
	d.effect == "deny"
	"ORIGIN_RESTRICTED" in codes(d)
}

test_break_glass_for_another_account_ignored_even_if_malformed if {
	other := {"id": "BG-2", "account_id": "999999999999", "waives": ["KYC_NOT_VERIFIED"], "expires": "not a time"}
	d := launch.decision with input as kyc_pending with data.gpu.break_glass.grants as [other]
	codes(d) == {"KYC_NOT_VERIFIED"}
}

test_incomplete_or_malformed_origin_is_unknown if {
	every f in ["country", "hq_country", "parent_hq_country"] {
		every bad in [null, "CHN", "China"] {
			acct := object.union(us_direct, {f: bad})
			d := launch.decision with input as object.union(direct_input, {"account": acct})
			d.effect == "deny"
			"ACCOUNT_UNKNOWN" in codes(d)
		}
	}
}

test_incomplete_origin_does_not_matter_for_uncontrolled_chips if {
	d := launch.decision with input as {"request": req([g5]), "account": object.union(us_direct, {"country": null}), "attestation": {"status": "not_required"}}
	d.effect == "allow"
}

# ---------------------------------------------------------------------------------------
# The group-work gate: only a country with no entry in the country-group data skips it
# ---------------------------------------------------------------------------------------

test_group_work_skipped_only_for_countries_without_entries if {
	not launch.grouped with input as direct_input
	launch.grouped with input as json.patch(direct_input, [{"op": "replace", "path": "/account/hq_country", "value": "AE"}])
	launch.grouped with input as json.patch(direct_input, [{"op": "replace", "path": "/account/country", "value": "HK"}])
	launch.grouped with input as json.patch(direct_input, [{"op": "replace", "path": "/account/parent_hq_country", "value": "IL"}])
	launch.grouped with input as object.union(direct_input, {"request": object.union(req([p5]), {"region": "ap-east-1"})})
}

# An entry of any value counts (a treatment entry that is not an object still reads the day).
test_group_work_gate_counts_an_entry_of_any_value if {
	launch.grouped with input as direct_input with data.gpu.country_groups.treated_as as {"US": false}
	launch.grouped with input as direct_input with data.gpu.country_groups.licence_exempt as {"US": null}
}
