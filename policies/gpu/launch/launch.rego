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

# Country-group data is read by path, one member's entries at a time: binding a whole document
# would convert all of it on every evaluation (measured: ~100 us for the groups alone).

# ---------------------------------------------------------------------------------------
# Facts derived from the input
# ---------------------------------------------------------------------------------------

controlled_items contains item if {
	some item in input.request.items
	item.chip_class in cfg.controlled_classes
}

controlled if count(controlled_items) > 0

reseller_account if is_string(input.account.reseller)

# ---------------------------------------------------------------------------------------
# Country groups as of the decision time (input.now): each entry has `since` and may have
# `until` (YYYY-MM-DD), so replaying an old launch uses the groups of its day. Without a
# decision time every membership counts and no exemption or suspension applies (fail closed).
# ---------------------------------------------------------------------------------------

now_ns := time.parse_rfc3339_ns(input.now)

# The decision day in UTC, once per evaluation; entries are whole days (YYYY-MM-DD), which
# compare as strings. A valid time in UTC ("...Z") starts with its day: no formatting needed.
today := substring(input.now, 0, 10) if {
	now_ns
	endswith(input.now, "Z")
} else := time.format([now_ns, "UTC", "2006-01-02"])

# In force on the decision day: started, and not ended (`until` is the first day no longer in force).
current(e) if {
	e.since <= today
	not ended(e)
}

ended(e) if e.until <= today

counts(e) if current(e)

counts(_) if not now_ns

# The [group, country] pairs suspended on the decision day: one pass over the suspensions per
# evaluation, and only once some country is a member of some group.
suspended_now := {[s.group, s.country] |
	some s in data.gpu.country_groups.suspensions
	current(s)
}

member(g, c) if {
	some e in data.gpu.country_groups.groups[g][c]
	counts(e)
	not [g, c] in suspended_now
}

# The A:5/A:6 carve-out (destination test only).
exempt(c) if {
	some e in data.gpu.country_groups.licence_exempt[c]
	current(e)
}

# Country code as the EAR sees it (Hong Kong is treated as China).
canonical(c) := t.as if {
	t := data.gpu.country_groups.treated_as[c]
	counts(t)
} else := c

# D:5 or Macau.
prohibited(c) if member("D5", c)

prohibited(c) if member("macau", c)

# Destination test (where the chip is used: account country, end-customer country, region):
# D:5/Macau less the A:5/A:6 members. Headquarters test (HQ and ultimate-parent HQ): D:5/Macau,
# no carve-out (15 CFR 742.6(a)(6)(iii)(A)). Group membership is worked out once per evaluation
# for the few countries the input names (all_countries), then looked up.
memberships := {[g, c] |
	some c in all_countries
	some g in ["D5", "macau", "D1", "D4"]
	some e in data.gpu.country_groups.groups[g][c]
	counts(e)
	not [g, c] in suspended_now
}

prohibited_countries := {c | some [g, c] in memberships; g in {"D5", "macau"}}

exempt_countries := {c | some c in all_countries; exempt(c)}

# The countries each origin field may not name: the destination test for "country" (and the
# region), the headquarters test for the HQ fields.
restricted_by_field := {
	"country": prohibited_countries - exempt_countries,
	"hq_country": prohibited_countries,
	"parent_hq_country": prohibited_countries,
}

# D:1 or D:4 but not D:5/Macau: licence review rather than denial.
review_countries := ({c | some [g, c] in memberships; g in {"D1", "D4"}} - prohibited_countries) - exempt_countries

origin_fields := ["country", "hq_country", "parent_hq_country"]

# Every origin field is an ISO 3166-1 alpha-2 code: one lookup each, so that the rules naming
# the faulty fields only run when there is one.
origin_valid(o) if {
	data.gpu.countries.iso3166_alpha2[o.country]
	data.gpu.countries.iso3166_alpha2[o.hq_country]
	data.gpu.countries.iso3166_alpha2[o.parent_hq_country]
}

# Every end customer the policy must answer for: each currently valid attestation of the account
# that no newer one supersedes (the most restrictive answer wins).
end_customers contains ec if {
	input.attestation.status == "valid"
	some ec in input.attestation.end_customers
}

end_customers contains ec if {
	input.attestation.status == "valid"
	not input.attestation.end_customers
	ec := input.attestation.claims.end_customer
}

# Every country code the input names (account, end customers, reseller, region location) ...
named_countries contains c if {
	some f in origin_fields
	c := input.account[f]
	is_string(c)
}

named_countries contains c if {
	some ec in end_customers
	some f in origin_fields
	c := ec[f]
	is_string(c)
}

named_countries contains c if {
	reseller_account
	some f in origin_fields
	c := input.reseller[f]
	is_string(c)
}

named_countries contains c if {
	c := data.gpu.regions.regions[input.request.region].country
	is_string(c)
}

# ... and as the EAR sees it.
canon := {c: canonical(c) | some c in named_countries}

# (Not read off canon: the object is only needed once some rule names a field's country.)
all_countries := {canonical(c) | some c in named_countries}

# Whether some country the input names has an entry, of any value, anywhere in the country-group
# data (a group, a treatment as another country, the carve-out). When none has (the common case),
# no membership, treatment or carve-out can apply and no entry's dates would be read, so the rules
# that work groups out (hits, the licence review) are skipped; their outcome would be empty.
grouped if {
	some c in named_countries
	_ = data.gpu.country_groups.groups[_][c]
}

grouped if {
	some c in named_countries
	_ = data.gpu.country_groups.treated_as[c]
}

grouped if {
	some c in named_countries
	_ = data.gpu.country_groups.licence_exempt[c]
}

# The canonical countries of the account's origin and of the attested end customers (also read by
# evidence.rego).
origin_countries contains canon[c] if {
	some f in origin_fields
	c := input.account[f]
	is_string(c)
}

end_customer_countries contains canon[c] if {
	some ec in end_customers
	some f in origin_fields
	c := ec[f]
	is_string(c)
}

region_country := canon[data.gpu.regions.regions[input.request.region].country]

# A reason; severity (and effect, see the end) come from data.gpu.reasons. A code missing from
# that file still fires, as critical (`enforcer policy check` refuses such a policy).
reason(code, message) := {
	"code": code,
	"message": message,
	"severity": object.get(data.gpu.reasons, [code, "severity"], "critical"),
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
	not origin_valid(input.account)
	some f in origin_fields
	not data.gpu.countries.iso3166_alpha2[object.get(input.account, f, null)]
	msg := sprintf("account %s: origin %s is missing or not an ISO country code", [input.account.account_id, f])
}

# Country-based prohibitions, as {code, field, country} hits: one reason per code names every
# field, and a licence waives a code only when it covers every country behind it.
# (Evaluated only when some named country is in D:5/Macau: no hit is possible otherwise.)
hits := country_hits if {
	controlled
	grouped
	count(prohibited_countries) > 0
} else := set()

country_hits contains {"code": "ORIGIN_RESTRICTED", "field": f, "country": c} if {
	some f in origin_fields
	c := canon[input.account[f]]
	c in restricted_by_field[f]
}

country_hits contains {"code": "END_CUSTOMER_RESTRICTED", "field": f, "country": c} if {
	reseller_account
	some ec in end_customers
	some f in origin_fields
	c := canon[ec[f]]
	c in restricted_by_field[f]
}

country_hits contains {"code": "RESELLER_RESTRICTED", "field": f, "country": c} if {
	reseller_account
	some f in origin_fields
	c := canon[input.reseller[f]]
	c in restricted_by_field[f]
}

# The region's location is a destination: a launch in a region located in D:5/Macau (Hong Kong
# ap-east-1, China cn-north-1/cn-northwest-1) puts the chip to work there.
country_hits contains {"code": "REGION_RESTRICTED", "field": "region", "country": region_country} if {
	region_country in restricted_by_field.country
}

hit_codes := {h.code | some h in hits}

hit_countries(code) := {h.country | some h in hits; h.code == code}

hit_fields(code) := concat(", ", sort([sprintf("%s=%s", [h.field, h.country]) | some h in hits; h.code == code]))

hit_subject("ORIGIN_RESTRICTED") := sprintf("account %v", [input.request.account_id])

hit_subject("END_CUSTOMER_RESTRICTED") := sprintf("attested end customer of reseller %v", [input.account.reseller])

hit_subject("RESELLER_RESTRICTED") := sprintf("reseller %v", [input.account.reseller])

hit_subject("REGION_RESTRICTED") := sprintf("region %v, located in %v", [
	input.request.region,
	data.gpu.regions.regions[input.request.region].country,
])

violations contains reason(code, msg) if {
	some code in hit_codes
	msg := sprintf("%s: %s (Country Group D:5 or Macau)", [hit_subject(code), hit_fields(code)])
}

violations contains reason("KYC_NOT_VERIFIED", msg) if {
	controlled
	input.account
	not reseller_account
	input.account.kyc != cfg.required_kyc
	msg := sprintf("direct account %s has KYC status %v", [input.account.account_id, input.account.kyc])
}

# Rules about the reseller, its attestation and its end customers: evaluated only for a
# controlled request from a reseller account.
violations contains r if {
	controlled
	reseller_account
	some r in reseller_violations
}

# The reseller's own origin must be known and the reseller active in the registry.
reseller_violations contains reason("RESELLER_RESTRICTED", msg) if {
	input.attestation.status == "valid" # else the attestation's own deny says enough
	not input.reseller
	msg := sprintf("reseller %v is not in the reseller registry", [input.account.reseller])
}

reseller_violations contains reason("RESELLER_RESTRICTED", msg) if {
	input.reseller
	not origin_valid(input.reseller)
	some f in origin_fields
	not data.gpu.countries.iso3166_alpha2[object.get(input.reseller, f, null)]
	msg := sprintf("reseller %v: origin %s is missing or not an ISO country code", [input.account.reseller, f])
}

reseller_violations contains reason("RESELLER_RESTRICTED", msg) if {
	input.reseller
	object.get(input.reseller, "status", "active") != "active"
	msg := sprintf("reseller %v has status %v", [input.account.reseller, input.reseller.status])
}

reseller_violations contains reason(code, msg) if {
	status := input.attestation.status
	status != "valid"
	code := object.get(cfg.attestation_codes, status, "ATTESTATION_INVALID")
	msg := sprintf("reseller %s: attestation %s%s", [input.account.reseller, status, detail_suffix])
}

detail_suffix := sprintf(" (%s)", [input.attestation.detail]) if {
	is_string(input.attestation.detail)
	input.attestation.detail != ""
} else := ""

# A valid attestation must still name all three origin fields with real codes (the verifier
# reports `incomplete`; this is the same rule for attestations that reach the policy otherwise).
reseller_violations contains reason("ATTESTATION_INCOMPLETE", msg) if {
	some ec in end_customers
	not origin_valid(ec)
	some f in origin_fields
	not data.gpu.countries.iso3166_alpha2[object.get(ec, f, null)]
	msg := sprintf("reseller %v: attested end customer %s is missing or not an ISO country code", [input.account.reseller, f])
}

# The reseller vouches for its end customer's KYC: the same rule as for a direct account.
reseller_violations contains reason("KYC_NOT_VERIFIED", msg) if {
	some ec in end_customers
	level := object.get(ec, "kyc_level", "none")
	not level in cfg.accepted_end_customer_kyc
	msg := sprintf("attested end customer of reseller %v has KYC level %v", [input.account.reseller, level])
}

# ---------------------------------------------------------------------------------------
# Notices: audit reasons
# ---------------------------------------------------------------------------------------

notices contains reason("ORIGIN_LICENSE_REVIEW", msg) if {
	controlled
	grouped
	count(review_countries) > 0
	msg := sprintf("%s in Country Group D:1/D:4 (not D:5): licence review", [concat(", ", sort(review_countries))])
}

notices contains reason("LARGE_COMPUTE_REQUEST", msg) if {
	controlled
	input.request.total_tpp > cfg.thresholds.large_compute_tpp
	msg := sprintf("total TPP %v exceeds %v", [input.request.total_tpp, cfg.thresholds.large_compute_tpp])
}

notices contains reason("CHIP_CLASS_INDETERMINATE", msg) if {
	some item in input.request.items
	item.chip_class in cfg.review_classes
	not item.unresolved
	msg := sprintf("%s: chip class %s", [item.instance_type, item.chip_class])
}

# ---------------------------------------------------------------------------------------
# Licences (input.licences, from the licence register): a licence in force for this account
# turns the country prohibitions it covers (cfg.licensable) into a LICENSED audit, only when
# it covers every country behind the code, every controlled item's class and the request's TPP.
# ---------------------------------------------------------------------------------------

licence_in_force(l) if {
	l.account_id == input.request.account_id
	not_revoked(l)
	time.parse_rfc3339_ns(l.expires) > now_ns
	started_licence(l)
	every item in controlled_items {
		item.chip_class in object.get(l, "classes", cfg.licensable_classes)
	}
	within_tpp(l)
}

# A revoked licence still covered launches before its revocation (replay of old decisions).
not_revoked(l) if object.get(l, "status", "active") == "active"

not_revoked(l) if {
	l.status == "revoked"
	time.parse_rfc3339_ns(l.revoked_at) > now_ns
}

started_licence(l) if not l.valid_from

started_licence(l) if time.parse_rfc3339_ns(l.valid_from) <= now_ns

within_tpp(l) if not is_number(object.get(l, "max_tpp", null))

within_tpp(l) if input.request.total_tpp <= l.max_tpp

covering(code) := {l |
	some l in input.licences
	licence_in_force(l)
	every c in hit_countries(code) {
		c in {canonical(x) | some x in l.countries}
	}
}

# The codes a licence waives, worked out once per evaluation (and only when there are licences).
licensed_codes := {code |
	input.licences
	some code in hit_codes
	code in cfg.licensable
	count(covering(code)) > 0
}

notices contains reason("LICENSED", msg) if {
	some r in violations
	r.code in licensed_codes
	ids := concat(", ", sort([sprintf("%v (expires %v)", [l.id, l.expires]) | some l in covering(r.code)]))
	msg := sprintf("%s covered by licence %s: %s", [r.code, ids, r.message])
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

notices contains reason("BREAK_GLASS", msg) if {
	some r in violations
	not r.code in licensed_codes
	some g in active_grants
	r.code in g.waives
	not r.code in cfg.never_waivable
	msg := sprintf("%s waived by grant %v (approved by %v, expires %v): %s", [r.code, g.id, g.approved_by, g.expires, r.message])
}

# ---------------------------------------------------------------------------------------
# Per-reason effect (data.gpu.reasons[code].effect) is honoured: a policy author may turn a
# deny code into an audit (a rollout) or an audit code into a deny, never a legal prohibition
# (cfg.never_waivable) into an audit. A code missing from the data keeps its rule's effect.
# ---------------------------------------------------------------------------------------

configured_effect(code) := data.gpu.reasons[code].effect

downgraded(code) if {
	configured_effect(code) == "audit"
	not code in cfg.never_waivable
}

standing(r) if {
	not waived(r.code)
	not r.code in licensed_codes
}

deny contains r if {
	some r in violations
	standing(r)
	not downgraded(r.code)
}

deny contains r if {
	some r in notices
	configured_effect(r.code) == "deny"
}

audit contains r if {
	some r in violations
	standing(r)
	downgraded(r.code)
}

audit contains r if {
	some r in notices
	not configured_effect(r.code) == "deny"
}

# ---------------------------------------------------------------------------------------
# The decision: a deny outranks an audit; every applicable reason is listed.
# ---------------------------------------------------------------------------------------

effect := "deny" if count(deny) > 0

else := "audit" if count(audit) > 0

else := "allow"

# An allow (nothing to report) is answered without building the lists. Each list is sorted
# explicitly: iterating a set is ordered in OPA's Go evaluator but not in its wasm target.
decision := {"effect": "allow", "reasons": []} if {
	count(deny) == 0
	count(audit) == 0
} else := {
	"effect": effect,
	"reasons": array.concat(sort(deny), sort(audit)),
}
