"""JSON Schemas of the evidence, screening and ledger policy data (``enforcer policy check``)."""

from __future__ import annotations

from typing import Any

_TEXT = {"type": "string", "maxLength": 2000}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
_SCORE = {"type": "number", "minimum": 0, "maximum": 100}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
OWNER_KINDS = ("account", "end_customer", "parent", "reseller")


def _strict(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": False,
    }


def evidence_schemas() -> dict[str, dict[str, Any]]:
    """Schemas of ``gpu/evidence`` and ``gpu/ledger``, keyed by their path under the policy directory."""
    levels = _strict(
        {
            "audit_running_tpp": _POSITIVE,
            "deny_running_tpp": _POSITIVE,
            "audit_tpp_hours": _POSITIVE,
            "deny_tpp_hours": _POSITIVE,
        },
        [],
    )
    return {
        "gpu/evidence": _strict(
            {
                "_doc": _TEXT,
                "origin_signals": _strict(
                    {
                        "min_calls": {"type": "integer", "minimum": 1},
                        "conflict_share": _FRACTION,
                        "deny_share": _FRACTION,
                        "deny_calls": {"type": "integer", "minimum": 1},
                        "deny_on_contact_restricted": {"type": "boolean"},
                    }
                ),
                "screening": _strict({"match_score": _SCORE, "near_score": _SCORE}),
            },
            ["origin_signals", "screening"],
        ),
        "gpu/ledger": _strict(
            {"_doc": _TEXT, "thresholds": _strict(dict.fromkeys(OWNER_KINDS, levels), [])},
            ["thresholds"],
        ),
    }
