# METADATA
# title: GPU launch export-control policy
# description: |
#   Decides whether a launch that would put accelerators to work is allowed, denied or
#   audited, from three facts: the chip class of each item (ECCN 3A090 by TPP/PD), the
#   account's origin (country, HQ, ultimate parent HQ, KYC) and, for reseller accounts, the
#   verified attestation about the end customer. Country groups, thresholds and reason
#   severities are data (data.gpu.*), edited without touching this logic.
package gpu.launch

import rego.v1

cfg := data.gpu.config

groups := data.gpu.country_groups

# ---------------------------------------------------------------------------------------
# Facts derived from the input
# ---------------------------------------------------------------------------------------

controlled_items contains item if {
	some item in input.request.items
	item.chip_class in cfg.controlled_classes
}

controlled if count(controlled_items) > 0

reseller_account if is_string(input.account.reseller)

# Country code as the EAR sees it (Hong Kong is treated as China).
canonical(c) := groups.treated_as[c]

canonical(c) := c if not groups.treated_as[c]

origin_fields := ["country", "hq_country", "parent_hq_country"]

origin_countries contains canonical(c) if {
	some f in origin_fields
	c := input.account[f]
	is_string(c)
}

end_customer_countries contains canonical(c) if {
	input.attestation.status == "valid"
	some f in origin_fields
	c := input.attestation.claims.end_customer[f]
	is_string(c)
}

# D:5 or Macau, less the A:5/A:6 members the licence requirement exempts.
restricted(c) if {
	some g in ["D5", "macau"]
	c in groups[g]
	not c in groups.licence_exempt
}

# D:1 or D:4 but not D:5/Macau: licence review rather than denial.
review(c) if {
	some g in ["D1", "D4"]
	c in groups[g]
	not restricted(c)
	not c in groups.licence_exempt
}

reason(code, message) := {
	"code": code,
	"message": message,
	"severity": data.gpu.reasons[code].severity,
}

item_label(item) := item.instance_type if is_string(item.instance_type)

item_label(item) := sprintf("%v", [item.ref]) if not is_string(item.instance_type)

# ---------------------------------------------------------------------------------------
# Violations: deny reasons (only for requests with a controlled or possibly controlled chip)
# ---------------------------------------------------------------------------------------

violations contains reason("REQUEST_UNRESOLVED", msg) if {
	some item in controlled_items
	item.unresolved
	msg := sprintf("could not resolve %s to an instance type; it may hold a controlled chip", [item_label(item)])
}

violations contains reason("ACCOUNT_UNKNOWN", msg) if {
	controlled
	not input.account
	msg := sprintf("account %s is not in the account directory", [input.request.account_id])
}

# An origin field that is missing or not an ISO 3166-1 alpha-2 code is as good as unknown: a
# directory that drops a malformed "CHN" tag must not make the account look unrestricted.
violations contains reason("ACCOUNT_UNKNOWN", msg) if {
	controlled
	input.account
	some f in origin_fields
	not iso_country(input.account[f])
	msg := sprintf("account %s: origin %s is missing or not an ISO country code", [input.account.account_id, f])
}

iso_country(c) if {
	is_string(c)
	regex.match(`^[A-Z]{2}$`, c)
}

# One reason per code; its message names every field that triggered it.
origin_restricted_fields contains sprintf("%s=%s", [f, c]) if {
	some f in origin_fields
	c := canonical(input.account[f])
	restricted(c)
}

violations contains reason("ORIGIN_RESTRICTED", msg) if {
	controlled
	count(origin_restricted_fields) > 0
	fields := concat(", ", sort(origin_restricted_fields))
	msg := sprintf("account %s: %s (Country Group D:5 or Macau)", [input.account.account_id, fields])
}

violations contains reason(code, msg) if {
	controlled
	reseller_account
	status := input.attestation.status
	status != "valid"
	code := object.get(cfg.attestation_codes, status, "ATTESTATION_INVALID")
	msg := sprintf("reseller %s: attestation %s%s", [input.account.reseller, status, detail_suffix])
}

detail_suffix := sprintf(" (%s)", [input.attestation.detail]) if {
	is_string(input.attestation.detail)
	input.attestation.detail != ""
} else := ""

end_customer_restricted_fields contains sprintf("%s=%s", [f, c]) if {
	input.attestation.status == "valid"
	some f in origin_fields
	c := canonical(input.attestation.claims.end_customer[f])
	restricted(c)
}

violations contains reason("END_CUSTOMER_RESTRICTED", msg) if {
	controlled
	reseller_account
	count(end_customer_restricted_fields) > 0
	fields := concat(", ", sort(end_customer_restricted_fields))
	msg := sprintf("attested end customer of reseller %s: %s (Country Group D:5 or Macau)", [input.account.reseller, fields])
}

violations contains reason("KYC_NOT_VERIFIED", msg) if {
	controlled
	input.account
	not reseller_account
	input.account.kyc != cfg.required_kyc
	msg := sprintf("direct account %s has KYC status %v", [input.account.account_id, input.account.kyc])
}

# ---------------------------------------------------------------------------------------
# Audit reasons
# ---------------------------------------------------------------------------------------

review_countries := {c | some c in origin_countries | end_customer_countries; review(c)}

audit contains reason("ORIGIN_LICENSE_REVIEW", msg) if {
	controlled
	count(review_countries) > 0
	msg := sprintf("%s in Country Group D:1/D:4 (not D:5): licence review", [concat(", ", sort(review_countries))])
}

audit contains reason("LARGE_COMPUTE_REQUEST", msg) if {
	controlled
	input.request.total_tpp > cfg.thresholds.large_compute_tpp
	msg := sprintf("total TPP %v exceeds %v", [input.request.total_tpp, cfg.thresholds.large_compute_tpp])
}

audit contains reason("CHIP_CLASS_INDETERMINATE", msg) if {
	some item in input.request.items
	item.chip_class in cfg.review_classes
	not item.unresolved
	msg := sprintf("%s: chip class %s", [item.instance_type, item.chip_class])
}

# ---------------------------------------------------------------------------------------
# Break-glass: time-boxed grants (data.gpu.break_glass.grants) waive listed deny codes for one
# account, except legal prohibitions (cfg.never_waivable); each waived reason becomes an audit.
# The account is matched first, so a malformed grant can only affect its own account.
# ---------------------------------------------------------------------------------------

active_grants contains g if {
	some g in data.gpu.break_glass.grants
	g.account_id == input.request.account_id
	time.parse_rfc3339_ns(g.expires) > time.parse_rfc3339_ns(input.now)
}

waived(code) if {
	some g in active_grants
	code in g.waives
	not code in cfg.never_waivable
}

deny contains r if {
	some r in violations
	not waived(r.code)
}

audit contains reason("BREAK_GLASS", msg) if {
	some r in violations
	some g in active_grants
	r.code in g.waives
	not r.code in cfg.never_waivable
	msg := sprintf("%s waived by grant %v (approved by %v, expires %v): %s", [r.code, g.id, g.approved_by, g.expires, r.message])
}

# ---------------------------------------------------------------------------------------
# The decision: a deny outranks an audit; every applicable reason is listed.
# ---------------------------------------------------------------------------------------

effect := "deny" if count(deny) > 0
else := "audit" if count(audit) > 0
else := "allow"

decision := {
	"effect": effect,
	"reasons": array.concat(
		[r | some r in deny],
		[r | some r in audit],
	),
}
