# Observed evidence, restricted-party screening and aggregate compute (issue 14).
#
# Rules over what the account does not control: the caller's IP country, the account's contact
# address and its recent calls per country (input.evidence), the screening of account, parent
# and end-customer names against the Consolidated Screening List (input.screening), and the
# running compute per beneficial owner across regions and accounts (input.ledger). Thresholds are
# data (data.gpu.evidence, data.gpu.ledger). Each rule denies above its deny threshold and
# audits below it; the audit goes straight to the audit set so that a deny configured for the
# code (data.gpu.reasons) never turns an audit-level finding into a deny. (The package's METADATA
# annotation lives in launch.rego: OPA allows one per package.)
package gpu.launch

import rego.v1

sig_cfg := data.gpu.evidence.origin_signals

scr_cfg := data.gpu.evidence.screening

# ---------------------------------------------------------------------------------------
# ORIGIN_SIGNAL_CONFLICT: observed countries against declared ones
# ---------------------------------------------------------------------------------------

# What the account (and, for a reseller account, its attested end customers) declared.
declared_countries := origin_countries | end_customer_countries

observed contains {"signal": "caller_ip", "country": canonical(e.country), "share": 1, "source": e.source, "time": e.time} if {
	e := input.evidence.caller
	is_string(e.country)
}

observed contains {"signal": "contact_address", "country": canonical(e.country), "share": 1, "source": e.source, "time": e.time} if {
	e := input.evidence.contact
	is_string(e.country)
}

observed contains {"signal": "call_share", "country": canonical(c), "share": s, "calls": calls(cs, c), "source": cs.source, "time": cs.time} if {
	cs := input.evidence.call_share
	cs.total >= sig_cfg.min_calls
	some c, s in cs.shares
	shown(cs, c, s)
}

calls(cs, c) := object.get(object.get(cs, "counts", {}), c, 0)

shown(_, _, s) if s >= sig_cfg.conflict_share

# Calls from D:5/Macau count whatever their share: diluting them with calls from elsewhere hides nothing.
shown(cs, c, _) if {
	prohibited(canonical(c))
	calls(cs, c) >= sig_cfg.deny_calls
}

conflicts contains o if {
	controlled
	input.account
	some o in observed
	not o.country in declared_countries
}

conflict_denies(o) if {
	o.signal == "call_share"
	prohibited(o.country)
	o.share >= sig_cfg.deny_share
}

conflict_denies(o) if {
	o.signal == "call_share"
	prohibited(o.country)
	o.calls >= sig_cfg.deny_calls
}

conflict_denies(o) if {
	o.signal == "contact_address"
	sig_cfg.deny_on_contact_restricted == true
	prohibited(o.country)
}

denying_conflicts := {o | some o in conflicts; conflict_denies(o)}

conflict_text(os) := concat("; ", sort([sprintf("%s %s (share %v, %s at %s)", [o.signal, o.country, o.share, o.source, o.time]) | some o in os]))

# concat, not sprintf: both parts are strings, and the wasm engine leaves sprintf to its host (a call out)
conflict_message(os) := concat("", ["declared ", concat(",", sort(declared_countries)), ", observed ", conflict_text(os)])

violations contains reason("ORIGIN_SIGNAL_CONFLICT", msg) if {
	input.evidence
	count(denying_conflicts) > 0
	msg := conflict_message(denying_conflicts)
}

audit contains reason("ORIGIN_SIGNAL_CONFLICT", msg) if {
	input.evidence
	count(conflicts) > 0
	count(denying_conflicts) == 0
	msg := conflict_message(conflicts)
}

# ---------------------------------------------------------------------------------------
# RESTRICTED_PARTY_MATCH: names screened in Python (input.screening.hits), judged here
# ---------------------------------------------------------------------------------------

party_matches contains h if {
	some h in input.screening.hits
	h.score >= scr_cfg.match_score
}

party_near contains h if {
	some h in input.screening.hits
	h.score >= scr_cfg.near_score
	h.score < scr_cfg.match_score
}

hit_text(hs) := concat("; ", sort([sprintf("%s matches %q on %s (entry %v, score %v)", [h.subject, h.entry, h.list, h.entry_id, h.score]) | some h in hs]))

violations contains reason("RESTRICTED_PARTY_MATCH", hit_text(party_matches)) if {
	input.screening
	count(party_matches) > 0
}

audit contains reason("RESTRICTED_PARTY_MATCH", sprintf("near match: %s", [hit_text(party_near)])) if {
	input.screening
	count(party_matches) == 0
	count(party_near) > 0
}

audit contains reason("RESTRICTED_PARTY_MATCH", msg) if {
	controlled
	input.screening.status == "unavailable"
	msg := sprintf("screening unavailable (%v): names not screened", [object.get(input.screening, "detail", "")])
}

# ---------------------------------------------------------------------------------------
# AGGREGATE_COMPUTE: running TPP per beneficial owner after this launch, and TPP-hours so far
# ---------------------------------------------------------------------------------------

agg_cfg := data.gpu.ledger.thresholds

# Each owner with its running TPP after this launch, added once per owner and query (the sum of
# two floats is the costliest step here); partial sets below, one body per threshold, evaluated
# once per query.
owners_after := [[o, o.running_tpp + input.request.total_tpp] | some o in input.ledger.owners] if controlled

owners_deny contains o if {
	some [o, after] in owners_after
	after >= agg_cfg[o.kind].deny_running_tpp
}

owners_deny contains o if {
	controlled
	some o in input.ledger.owners
	o.tpp_hours >= agg_cfg[o.kind].deny_tpp_hours
}

owners_audit contains o if {
	some [o, after] in owners_after
	after >= agg_cfg[o.kind].audit_running_tpp
}

owners_audit contains o if {
	controlled
	some o in input.ledger.owners
	o.tpp_hours >= agg_cfg[o.kind].audit_tpp_hours
}

# The same sums by owner, for the messages (built only when a message is).
after_by_owner := {o: after | some [o, after] in owners_after}

# Whole numbers in messages (sprintf's %v prints large floats with an exponent).
whole(x) := format_int(x, 10)

owner_text(os) := concat("; ", sort([sprintf("%s %s: running %s TPP after this launch (%s before), %s TPP-hours", [o.kind, o.owner, whole(after_by_owner[o]), whole(o.running_tpp), whole(o.tpp_hours)]) | some o in os]))

violations contains reason("AGGREGATE_COMPUTE", owner_text(owners_deny)) if {
	input.ledger
	count(owners_deny) > 0
}

# A ledger that could not be read hides nothing silently: the launch is audited for review.
audit contains reason("AGGREGATE_COMPUTE", msg) if {
	controlled
	input.ledger.status == "unavailable"
	msg := sprintf("compute ledger unavailable (%v): aggregate compute not checked", [object.get(input.ledger, "detail", "")])
}

audit contains reason("AGGREGATE_COMPUTE", owner_text(owners_audit)) if {
	input.ledger
	count(owners_deny) == 0
	count(owners_audit) > 0
}
