"""Attested clear names (``end_customer.name``/``aliases``) never go past the screening step."""

from __future__ import annotations

from typing import Any

#: Keys removed from attested end customers once screened.
CLEAR_NAME_KEYS = ("name", "aliases")


def _strip(ec: Any) -> Any:
    if not isinstance(ec, dict) or not any(k in ec for k in CLEAR_NAME_KEYS):
        return ec
    out = {k: v for k, v in ec.items() if k not in CLEAR_NAME_KEYS}
    out["name_screened"] = True
    return out


def strip_clear_names(doc: dict[str, Any]) -> None:
    """Replace ``doc["attestation"]`` by a copy whose end customers carry no clear name.

    The attestation provider's own objects (possibly cached) are left untouched.
    """
    att = doc.get("attestation")
    if not isinstance(att, dict):
        return
    claims = att.get("claims")
    customers = att.get("end_customers")
    has_claim = isinstance(claims, dict) and isinstance(claims.get("end_customer"), dict)
    if not has_claim and not isinstance(customers, list):
        return
    att = dict(att)
    if has_claim:
        assert isinstance(claims, dict)
        att["claims"] = {**claims, "end_customer": _strip(claims["end_customer"])}
    if isinstance(customers, list):
        att["end_customers"] = [_strip(ec) for ec in customers]
    doc["attestation"] = att
