"""``enforcer policy check``: validate every policy data file against its JSON schema and the logic.

A typo in policy data changes decisions silently: "UAE" in a country list matches nothing, a
threshold written as a string compares as a string, a reason code missing from
``reasons/data.json`` used to disable its rule. This check refuses all of them:

* each ``data.json`` against a JSON Schema (Draft 2020-12, ``jsonschema``): no unknown keys,
  numbers are numbers, dates are dates, country codes are real ISO 3166-1 alpha-2 codes (the
  generated ``countries`` list, itself compared with the ``iso3166`` package);
* cross-references: every ``source`` of a country-group entry is defined, ``until`` is after
  ``since``, every reason code the Rego emits or the config names is registered in
  ``reasons/data.json``, legal prohibitions are never given the ``audit`` effect;
* the generated files (``countries``, ``regions``) equal what ``scripts/build_policy_data.py``
  would write from the maintained sources.

It runs from ``enforcer policy check`` and before ``enforcer policy test`` (so ``make test`` runs it).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from enforcer.policy.datafiles import countries_document, iso_countries, regions_document
from enforcer.policy.loader import PolicyBundle, load_bundle

CODE = {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]{2,63}$"}
DAY = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
RFC3339 = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"}
TEXT = {"type": "string", "maxLength": 2000}
CLASSES = ["3A090.a", "3A090.b", "indeterminate", "unknown", "none"]


def _strict(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required if required is not None else list(props),
        "additionalProperties": False,
    }


def schemas(countries: list[str]) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each data file, keyed by its path under the policy directory."""
    cc = {"type": "string", "enum": countries}
    period = _strict(
        {"since": DAY, "until": DAY, "source": {"type": "string", "pattern": r"^[a-z0-9-]+$"},
         "until_source": {"type": "string", "pattern": r"^[a-z0-9-]+$"}},
        ["since", "source"],
    )  # fmt: skip
    group = {
        "type": "object",
        "propertyNames": cc,
        "additionalProperties": {"type": "array", "items": period, "minItems": 1, "maxItems": 20},
    }
    from enforcer.evidence.schema import evidence_schemas  # issue 14's data files (evidence, ledger)

    return {
        **evidence_schemas(),
        "gpu/country_groups": _strict(
            {
                "_doc": TEXT,
                "sources": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[a-z0-9-]+$"},
                    "additionalProperties": _strict(
                        {"title": TEXT, "citation": TEXT, "url": TEXT, "note": TEXT}, ["title", "citation"]
                    ),
                },
                "groups": _strict({"D1": group, "D4": group, "D5": group, "macau": group}),
                "suspensions": {
                    "type": "array",
                    "items": _strict(
                        {
                            "group": {"enum": ["D1", "D4", "D5", "macau"]},
                            "country": cc,
                            "since": DAY,
                            "until": DAY,
                            "source": {"type": "string"},
                        },
                    ),
                },
                "licence_exempt": group,
                "treated_as": {
                    "type": "object",
                    "propertyNames": cc,
                    "additionalProperties": _strict({"as": cc, "since": DAY, "source": {"type": "string"}}),
                },
            },
            ["sources", "groups", "suspensions", "licence_exempt", "treated_as"],
        ),
        "gpu/config": _strict(
            {
                "controlled_classes": {"type": "array", "items": {"enum": CLASSES}, "uniqueItems": True},
                "review_classes": {"type": "array", "items": {"enum": CLASSES}, "uniqueItems": True},
                "thresholds": _strict({"large_compute_tpp": {"type": "number", "exclusiveMinimum": 0}}),
                "attestation_codes": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[a-z_]+$"},
                    "additionalProperties": CODE,
                },
                "required_kyc": {"enum": ["verified", "pending", "none"]},
                "accepted_end_customer_kyc": {
                    "type": "array",
                    "items": {"enum": ["none", "pending", "basic", "verified", "enhanced"]},
                    "uniqueItems": True,
                },
                "never_waivable": {"type": "array", "items": CODE, "uniqueItems": True},
                "licensable": {"type": "array", "items": CODE, "uniqueItems": True},
                "licensable_classes": {
                    "type": "array",
                    "items": {"enum": ["3A090.a", "3A090.b"]},
                    "uniqueItems": True,
                },
            },
        ),
        "gpu/reasons": {
            "type": "object",
            "propertyNames": CODE,
            "additionalProperties": _strict(
                {
                    "severity": {"enum": ["low", "medium", "high", "critical"]},
                    "effect": {"enum": ["deny", "audit"]},
                    "legal": {"type": "boolean"},
                    "summary": TEXT,
                },
                ["severity", "effect", "summary"],
            ),
        },
        "gpu/break_glass": _strict(
            {
                "_doc": TEXT,
                "grants": {
                    "type": "array",
                    "items": _strict(
                        {
                            "id": {"type": "string", "minLength": 1},
                            "account_id": {"pattern": r"^[0-9]{12}$"},
                            "waives": {"type": "array", "items": CODE, "minItems": 1},
                            "expires": RFC3339,
                            "approved_by": {"type": "string", "minLength": 1},
                            "ticket": {"type": "string"},
                        },
                        ["id", "account_id", "waives", "expires", "approved_by"],
                    ),
                },
            },
            ["grants"],
        ),
        "gpu/countries": _strict(
            {
                "_source": TEXT,
                "iso3166_alpha2": {"type": "object", "propertyNames": cc, "additionalProperties": TEXT},
            }
        ),
        "gpu/regions": _strict(
            {
                "_source": TEXT,
                "regions": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[a-z]{2,5}(-[a-z]+)+-\d+$"},
                    "additionalProperties": _strict(
                        {"country": cc, "partition": {"type": "string"}, "description": TEXT}
                    ),
                },
            }
        ),
    }


_REASON_CALL = re.compile(r'reason\(\s*"([A-Z][A-Z0-9_]+)"')
_CODE_FIELD = re.compile(r'"code":\s*"([A-Z][A-Z0-9_]+)"')


def rego_codes(bundle: PolicyBundle) -> set[str]:
    """Reason codes the policy modules emit (``reason("CODE", ...)`` and ``{"code": "CODE"}`` hits)."""
    out: set[str] = set()
    for src in bundle.modules.values():
        out.update(_REASON_CALL.findall(src))
        out.update(_CODE_FIELD.findall(src))
    return out


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _schema_errors(bundle: PolicyBundle, countries: list[str]) -> list[str]:
    problems: list[str] = []
    known = schemas(countries)
    for path, doc in sorted(bundle.data_files.items()):
        schema = known.get(path)
        if schema is None:
            problems.append(
                f"{path}/data.json: no schema for this data file (add one to enforcer.policy.check)"
            )
            continue
        for err in sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in err.path) or "(top)"
            problems.append(f"{path}/data.json: {where}: {err.message[:200]}")
    for path in known:
        if path not in bundle.data_files:
            problems.append(f"{path}/data.json: missing")
    return problems


def _group_errors(groups: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    sources = set((groups.get("sources") or {}).keys())
    lists: list[tuple[str, Any]] = [
        (f"groups.{g}.{cc}", periods)
        for g, members in (groups.get("groups") or {}).items()
        if isinstance(members, dict)
        for cc, periods in members.items()
    ]
    lists += [(f"licence_exempt.{cc}", p) for cc, p in (groups.get("licence_exempt") or {}).items()]
    lists.append(("suspensions", groups.get("suspensions")))
    for where, entries in lists:
        for i, e in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(e, dict):
                continue
            for key in ("source", "until_source"):
                if key in e and e[key] not in sources:
                    problems.append(f"gpu/country_groups: {where}[{i}] {key} {e[key]!r} is not in sources")
            for key in ("since", "until"):
                if key in e and _day(str(e[key])) is None:
                    problems.append(f"gpu/country_groups: {where}[{i}] {key} {e[key]!r} is not a date")
            since, until = _day(str(e.get("since", ""))), _day(str(e.get("until", "")))
            if since and until and until <= since:
                problems.append(f"gpu/country_groups: {where}[{i}] ends ({until}) before it starts ({since})")
    for cc, t in (groups.get("treated_as") or {}).items():
        if isinstance(t, dict) and t.get("source") not in sources:
            problems.append(
                f"gpu/country_groups: treated_as.{cc} source {t.get('source')!r} is not in sources"
            )
    return problems


def _reason_errors(bundle: PolicyBundle) -> list[str]:
    problems: list[str] = []
    data = bundle.data.get("gpu", {})
    reasons = data.get("reasons") or {}
    cfg = data.get("config") or {}
    used = dict.fromkeys(rego_codes(bundle), "launch.rego")
    for status, code in (cfg.get("attestation_codes") or {}).items():
        used.setdefault(code, f"config attestation_codes.{status}")
    for key in ("never_waivable", "licensable"):
        for code in cfg.get(key) or []:
            used.setdefault(code, f"config {key}")
    for g in (data.get("break_glass") or {}).get("grants") or []:
        for code in g.get("waives") or [] if isinstance(g, dict) else []:
            used.setdefault(code, f"break-glass grant {g.get('id')}")
    for code, where in sorted(used.items()):
        if code not in reasons:
            problems.append(f"gpu/reasons: {code} (used by {where}) is not registered in reasons/data.json")
    for code in cfg.get("never_waivable") or []:
        if isinstance(reasons.get(code), dict) and reasons[code].get("effect") != "deny":
            problems.append(
                f"gpu/reasons: {code} is a legal prohibition (never_waivable) but its effect is not deny"
            )
    for code, r in reasons.items():
        if isinstance(r, dict) and r.get("legal") and code not in (cfg.get("never_waivable") or []):
            problems.append(f"gpu/reasons: {code} is marked legal but is not in config never_waivable")
    return problems


def _generated_errors(bundle: PolicyBundle) -> list[str]:
    problems: list[str] = []
    files = bundle.data_files
    if (files.get("gpu/countries") or {}).get("iso3166_alpha2") != countries_document()["iso3166_alpha2"]:
        problems.append("gpu/countries: differs from the iso3166 package; run scripts/build_policy_data.py")
    try:
        expected = regions_document()["regions"]
    except KeyError as exc:
        problems.append(f"gpu/regions: {exc.args[0]}")
    else:
        if (files.get("gpu/regions") or {}).get("regions") != expected:
            problems.append("gpu/regions: differs from botocore's regions; run scripts/build_policy_data.py")
    return problems


def check_bundle(bundle: PolicyBundle) -> list[str]:
    """Every problem found in a loaded policy directory (empty when it is sound)."""
    countries = sorted(iso_countries())
    problems = _schema_errors(bundle, countries)
    problems += _group_errors(bundle.data_files.get("gpu/country_groups") or {})
    problems += _reason_errors(bundle)
    problems += _generated_errors(bundle)
    return problems


def check_policy_dir(policy_dir: Path | str) -> list[str]:
    """Load ``policy_dir`` and return its problems (see :func:`check_bundle`).

    Raises
    ------
    enforcer.model.InputError
        When the directory cannot be loaded at all (missing, not JSON ...).
    """
    return check_bundle(load_bundle(policy_dir))


__all__ = ["check_bundle", "check_policy_dir", "countries_document", "rego_codes", "schemas"]


def run_check(policy_dir: Path | None, quiet_ok: bool = False) -> int:
    """Print the problems of ``policy_dir`` (default ``policies/``) on stderr; return the exit code.

    0 when sound, 2 when the check finds problems or the directory cannot be loaded.
    """
    import click

    from enforcer.model import InputError
    from enforcer.policy.factory import default_policy_dir

    target = policy_dir if policy_dir is not None else default_policy_dir()
    try:
        problems = check_policy_dir(target)
    except InputError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    for p in problems:
        click.echo(f"policy check: {p}", err=True)
    if problems:
        click.echo(f"policy check: {len(problems)} problem(s) in {target}", err=True)
        return 2
    if not quiet_ok:
        click.echo(f"policy check: {target} OK")
    return 0
