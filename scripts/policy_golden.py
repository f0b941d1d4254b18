"""Decisions of the launch policy over thousands of generated inputs: proof that a rewrite decides the same.

The inputs cover the whole input contract (docs/design.md): every origin field with ISO, Country Group and
malformed values, decision times on each side of the dated country-group entries (Nicaragua, Cambodia,
the Cyprus suspension, Hong Kong's treatment) and in other offsets or malformed, controlled, unknown and
unresolved items, reseller accounts with every attestation status and several end customers, licences,
observed evidence, screening hits and ledger owners. A second case loads break-glass grants into the
policy data. ``tests/test_policy_golden.py`` evaluates the current policy on every input and compares
the whole decision document with the one recorded here.

Regenerate (after a deliberate change of decisions, reviewed in the diff of what changed)::

    .venv/bin/python scripts/policy_golden.py --policy policies --out tests/data/policy_golden.jsonl.gz
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import sys
from pathlib import Path
from typing import Any

from enforcer.model import ATTESTATION_STATUSES

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
ACCOUNT = "111122223333"
HOT = [
    "CN",
    "HK",
    "MO",
    "CY",
    "IL",
    "KH",
    "NI",
    "RU",
    "AE",
    "SG",
    "US",
    "IR",
    "SA",
    "VN",
    "BY",
    "KP",
    "VE",
    "DE",
]
WEIRD: list[Any] = [None, "", "CHN", "cn", 123, {"a": 1}, ["CN"], "ZZ", True]
DATES: list[Any] = [
    "2026-12-01T00:00:00Z",
    "2026-02-02T23:59:59Z",
    "2026-02-03T00:00:00Z",
    "2024-03-14T12:00:00Z",
    "2024-03-15T00:00:00Z",
    "2025-09-30T23:59:59Z",
    "2025-10-01T00:00:00Z",
    "2026-09-30T23:00:00Z",
    "2026-10-01T00:00:00Z",
    "2023-10-24T00:00:00Z",
    "2026-10-01T02:00:00+05:00",
    "2026-09-30T22:00:00-05:00",
    "2026-05-28T20:26:40.000Z",
    "2026-02-03T00:30:00+01:00",
    "2020-07-30T00:00:00Z",
    "2019-01-01T00:00:00Z",
    "garbage",
    "",
    17,
    "2026-12-01T00:00:00z",
    "2026-12-01t00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-10-01T00:00:00.5Z",
    "2026-09-30T23:59:59.999999999Z",
]
ITEMS: list[dict[str, Any]] = [
    {
        "instance_type": "p5.48xlarge",
        "count": 1,
        "chip_class": "3A090.a",
        "tpp": 126649.6,
        "unresolved": False,
    },
    {
        "instance_type": "p5.48xlarge",
        "count": 20,
        "chip_class": "3A090.a",
        "tpp": 2532992,
        "unresolved": False,
    },
    {"instance_type": "g5.xlarge", "count": 1, "chip_class": "none", "tpp": 1120, "unresolved": False},
    {
        "instance_type": "trn1.32xlarge",
        "count": 1,
        "chip_class": "indeterminate",
        "tpp": 48640,
        "unresolved": False,
    },
    {
        "instance_type": "trn2.48xlarge",
        "count": 1,
        "chip_class": "3A090.b",
        "tpp": 50000,
        "unresolved": False,
    },
    {
        "instance_type": None,
        "count": 1,
        "chip_class": "unknown",
        "tpp": 0,
        "unresolved": True,
        "ref": {"kind": "launch_template", "id": "lt-0abc"},
    },
    {"instance_type": "zz9.mystery", "count": 1, "chip_class": "unknown", "tpp": 0, "unresolved": False},
]
# every status the pipeline passes in (valid weighted x3; not_required is the no-reseller path) and one
# the policy has never seen
STATUSES = ["valid"] * 3 + [s for s in ATTESTATION_STATUSES if s not in ("valid", "not_required")] + ["weird"]
#: Break-glass grants of the second case (policy data, not input).
GRANTS: list[dict[str, Any]] = [
    {
        "id": "BG-1",
        "account_id": ACCOUNT,
        "waives": ["KYC_NOT_VERIFIED", "ORIGIN_RESTRICTED", "ATTESTATION_MISSING"],
        "expires": "2026-06-01T00:00:00Z",
        "approved_by": "compliance",
        "ticket": "C-1",
    },
    {
        "id": "BG-2",
        "account_id": ACCOUNT,
        "waives": ["RESELLER_RESTRICTED", "ACCOUNT_UNKNOWN", "AGGREGATE_COMPUTE"],
        "expires": "2027-01-01T00:00:00Z",
        "approved_by": "compliance",
        "ticket": "C-2",
    },
    {
        "id": "BG-3",
        "account_id": "999999999999",
        "waives": ["KYC_NOT_VERIFIED"],
        "expires": "2027-01-01T00:00:00Z",
        "approved_by": "compliance",
        "ticket": "C-3",
    },
]


class Inputs:
    """Seeded decision inputs (``mixed``: everything; ``licences``: restricted origins with licences)."""

    def __init__(self, seed: int, policies: Path = POLICIES) -> None:
        self.r = random.Random(seed)
        self.iso = list(json.loads((policies / "gpu/countries/data.json").read_text())["iso3166_alpha2"])
        self.regions = [
            *json.loads((policies / "gpu/regions/data.json").read_text())["regions"],
            "xx-nowhere-1",
        ]

    def country(self, weird: float = 0.1) -> Any:
        x = self.r.random()
        if x < weird:
            return self.r.choice(WEIRD)
        return self.r.choice(HOT) if x < 0.65 else self.r.choice(self.iso)

    def origin(self, extra: dict[str, Any] | None = None, weird: float = 0.1) -> dict[str, Any]:
        o: dict[str, Any] = {f: self.country(weird) for f in ("country", "hq_country", "parent_hq_country")}
        if self.r.random() < weird:
            del o[self.r.choice(list(o))]
        o.update(extra or {})
        return o

    def licences(self, p: float) -> list[dict[str, Any]] | None:
        if self.r.random() >= p:
            return None
        out = []
        for k in range(self.r.choice([1, 2])):
            lic: dict[str, Any] = {
                "id": f"L-{k}",
                "account_id": self.r.choice([ACCOUNT, ACCOUNT, ACCOUNT, "999999999999"]),
                "countries": self.r.sample(
                    ["CN", "HK", "RU", "MO", "IR", "CY", "VE"], self.r.choice([1, 2, 3, 4])
                ),
                "expires": self.r.choice(
                    ["2027-01-01T00:00:00Z", "2026-06-01T00:00:00Z", "2025-01-01T00:00:00Z"]
                ),
            }
            if self.r.random() < 0.4:
                lic["classes"] = self.r.sample(["3A090.a", "3A090.b", "indeterminate"], self.r.choice([1, 2]))
            if self.r.random() < 0.3:
                lic["max_tpp"] = self.r.choice([1000, 10**7])
            if self.r.random() < 0.3:
                lic["status"] = self.r.choice(["active", "revoked", "paused"])
            if self.r.random() < 0.3:
                lic["revoked_at"] = self.r.choice(["2026-11-30T00:00:00Z", "2027-06-01T00:00:00Z"])
            if self.r.random() < 0.3:
                lic["valid_from"] = self.r.choice(["2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"])
            out.append(lic)
        return out

    def evidence(self) -> dict[str, Any]:
        ev: dict[str, Any] = {}
        if self.r.random() < 0.6:
            ev["caller"] = {
                "ip": "10.1.2.3",
                "country": self.r.choice([self.country(), "HK", "CN"]),
                "source": "mmdb",
                "time": "t",
            }
        if self.r.random() < 0.3:
            ev["contact"] = {
                "country": self.r.choice([self.country(), "CN", "MO"]),
                "source": "account",
                "time": "t",
            }
        if self.r.random() < 0.6:
            counts = {
                c: self.r.choice([1, 3, 5, 12, 100]) for c in self.r.sample(HOT, self.r.choice([1, 2, 3]))
            }
            total = sum(counts.values())
            ev["call_share"] = {
                "shares": {c: round(n / total, 3) for c, n in counts.items()},
                "counts": counts,
                "total": total,
                "window_hours": 24,
                "source": "ledger",
                "time": "t",
            }
            if self.r.random() < 0.2:
                del ev["call_share"]["counts"]
        return ev

    def one(self, bias: str = "mixed") -> dict[str, Any]:
        r = self.r
        items = copy.deepcopy(r.sample(ITEMS, r.choice([1, 1, 1, 2, 3])))
        req: dict[str, Any] = {
            "source": "cloudtrail",
            "action": "ec2:RunInstances",
            "account_id": ACCOUNT,
            "region": r.choice(self.regions),
            "items": items,
            "total_tpp": sum(i["tpp"] for i in items),
        }
        if r.random() < 0.05:
            del req["region"]
        doc: dict[str, Any] = {"request": req}
        if r.random() < 0.9:
            doc["now"] = r.choice(DATES)
        weird = 0.02 if bias == "licences" else 0.1
        resold = r.random() < (0.2 if bias == "licences" else 0.4)
        if r.random() < 0.93:
            acct = {
                "account_id": ACCOUNT,
                **self.origin(weird=weird),
                "kyc": r.choice(["verified", "verified", "pending", "none", None]),
                "reseller": "acme-cloud" if resold else None,
            }
            if bias == "licences" and r.random() < 0.7:
                acct.update(country=r.choice(["CN", "HK", "RU", "MO", "CY"]), kyc="verified")
            doc["account"] = acct
        if resold:
            status = r.choice(STATUSES)
            att: dict[str, Any] = {"status": status, "detail": r.choice(["", "bad sig", None])}
            if status == "valid":
                ecs = [
                    self.origin({"kyc_level": r.choice(["verified", "enhanced", "none", None])}, weird)
                    for _ in range(r.choice([1, 1, 2]))
                ]
                att["claims"] = {"end_customer": ecs[0]}
                if r.random() < 0.6:
                    att["end_customers"] = ecs
            doc["attestation"] = att
            if r.random() < 0.9:
                doc["reseller"] = {
                    "id": "acme-cloud",
                    **self.origin(weird=weird),
                    "status": r.choice(["active", "active", "suspended", None]),
                }
                if doc["reseller"]["status"] is None:
                    del doc["reseller"]["status"]
        else:
            doc["attestation"] = {"status": "not_required"}
        lic = self.licences(0.9 if bias == "licences" else 0.3)
        if lic is not None:
            doc["licences"] = lic
        if r.random() < 0.5:
            doc["evidence"] = self.evidence()
        if r.random() < 0.4:
            status = r.choice(["ok", "ok", "unavailable"])
            hits = [
                {
                    "subject": "account name",
                    "entry": "SHENZHEN X",
                    "list": "EL",
                    "entry_id": "id-1",
                    "score": r.choice([60, 81, 91.9, 92, 99]),
                }
                for _ in range(r.choice([0, 0, 1, 2]))
            ]
            doc["screening"] = {"status": status, "hits": hits}
            if status == "unavailable":
                doc["screening"]["detail"] = "down"
        if r.random() < 0.4:
            if r.random() < 0.15:
                doc["ledger"] = {"status": "unavailable", "detail": "timeout", "owners": []}
            else:
                owners = [
                    {
                        "kind": r.choice(["account", "end_customer", "parent", "reseller", "other"]),
                        "owner": f"o{k}",
                        "running_tpp": r.choice([0, 900000, 4_900_000, 9_990_000, 2e7]),
                        "tpp_hours": r.choice([0, 1e8, 5e8]),
                    }
                    for k in range(r.choice([1, 2, 3]))
                ]
                doc["ledger"] = {"owners": owners, "source": "ledger", "time": "t"}
        return doc


def corpus(n: int = 3000, seed: int = 20261201) -> list[tuple[str, dict[str, Any]]]:
    """``(case, input)`` pairs: ``plain`` (the policy's data as shipped) and ``grants`` (GRANTS loaded)."""
    gen = Inputs(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        bias = "licences" if i % 4 == 3 else "mixed"
        out.append(("grants" if i % 5 == 4 else "plain", gen.one(bias)))
    return out


def engines(policy_dir: Path, kind: str = "embedded") -> dict[str, Any]:
    """Engines for each case: the policy as is, and with GRANTS as its break-glass data.

    ``kind`` is ``embedded`` (OPA's Go evaluator, which recorded the file) or ``wasm`` (the same policy
    compiled by OPA to WebAssembly; ``tests/test_wasm_engine.py`` holds it to the recorded decisions).
    """
    from enforcer.policy.embedded import EmbeddedEngine
    from enforcer.policy.loader import load_bundle

    plain = load_bundle(policy_dir)
    granted = load_bundle(policy_dir)
    granted.data["gpu"]["break_glass"] = {**granted.data["gpu"].get("break_glass", {}), "grants": GRANTS}
    if kind == "wasm":
        from enforcer.policy.wasm import WasmEngine

        return {"plain": WasmEngine(plain), "grants": WasmEngine(granted)}
    return {"plain": EmbeddedEngine(plain), "grants": EmbeddedEngine(granted)}


def decide_all(
    policy_dir: Path, cases: list[tuple[str, dict[str, Any]]], kind: str = "embedded"
) -> list[Any]:
    """The decision document (or the error text) of each case."""
    engs = engines(policy_dir, kind)
    out: list[Any] = []
    for case, doc in cases:
        try:
            out.append(engs[case].evaluate(doc))
        except Exception as exc:  # an evaluation error is a result to compare too
            out.append({"error": str(exc)})
    return out


GOLDEN = ROOT / "tests" / "data" / "policy_golden.jsonl.gz"


def recorded(path: Path = GOLDEN) -> list[dict[str, Any]]:
    """The recorded file: one ``{case, input, decision}`` per line."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def normalised(decision: Any) -> Any:
    """A decision to compare: an evaluation error's text without the module's file and line."""
    import re

    if isinstance(decision, dict) and "error" in decision:
        return {"error": re.sub(r"[\w/.-]+\.rego:\d+: ", "", str(decision["error"]))}
    return decision


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", type=Path, default=POLICIES)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "policy_golden.jsonl.gz")
    ap.add_argument("-n", type=int, default=3000)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    cases = corpus(args.n)
    decisions = decide_all(args.policy, cases)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as fh:
        for (case, doc), dec in zip(cases, decisions, strict=True):
            fh.write(json.dumps({"case": case, "input": doc, "decision": dec}, sort_keys=True) + "\n")
    print(f"{len(cases)} decisions written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
