"""Regenerate enforcer/data/{chips,instance_types}.json from the researched reference tables.

Inputs: docs/sources/chips.csv (chip specs: dense TOPS per precision, applicable die area),
docs/sources/instances.csv (instance -> accelerator, incl. types moto lacks) and moto's
DescribeInstanceTypes snapshot (every instance type, with or without accelerators).
The class of a chip is NOT copied from the CSV: enforcer/chips.py computes it from these specs.

Usage: python scripts/build_catalog.py [REFERENCE_DIR]
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from enforcer.chips import devices_from_type_info  # noqa: E402

# Chips with only FP32 throughput (no tensor path); figures per GPU die from the datasheet notes in chips.csv.
FP32_ONLY = {"NVIDIA K80 (per GK210 GPU)": 4.37, "NVIDIA M60 (per GM204 GPU)": 4.8}


def _num(v: str) -> float | None:
    v = (v or "").strip()
    return float(v) if v else None


def build_chips(ref: Path) -> dict[str, dict[str, object]]:
    chips: dict[str, dict[str, object]] = {}
    with open(ref / "chips.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["chip"]
            scope = "3A090"
            cls_note = (row["classification_by_tpp_pd_datacenter"] or "").lower()
            if "out_of_scope" in (row.get("policy_chip_class") or "") or "fpga" in cls_note:
                scope = "out_of_scope"
            chips[name] = {
                "vendor": row["vendor"],
                "dense_tops": {
                    "fp16": _num(row["dense_fp16_bf16_tflops"]),
                    "fp8": _num(row["dense_fp8_tflops"]),
                    "int8": _num(row["dense_int8_tops"]),
                    "fp4": _num(row["dense_fp4_tflops"]),
                    "fp32": FP32_ONLY.get(name),
                },
                "applicable_die_area_mm2": _num(row["applicable_die_area_mm2"]),
                "planar": "PLANAR" in (row["die_note"] or ""),
                "datacenter": True,
                "scope": scope,
                "note": row["uncertain_or_notes"],
                "source": row["source"],
            }
    return chips


# Instance types and accelerator names the reference tables lack (Trainium3, trn2u ...), with sources.
ADDITIONS = ROOT / "docs" / "sources" / "instances-additions.csv"

# Accelerators outside 3A090 (FPGAs: check 3A001.a.7; video transcoders): known, so not "unknown".
OUT_OF_SCOPE = {
    "Xilinx/AMD VU47P FPGA": "FPGA; 3A090 does not apply (check 3A001.a.7)",
    "Xilinx/AMD Alveo U30 media accelerator": "video transcoder; 3A090 does not apply",
}


def build_instances(
    ref: Path, chips: dict[str, dict[str, object]]
) -> tuple[dict[str, list[list[object]]], dict[str, str]]:
    import moto  # dev dependency, only needed to regenerate

    snap = Path(os.path.dirname(moto.__file__)) / "ec2/resources/instance_types.json.gz"
    with gzip.open(snap) as fh:
        data = json.load(fh)
    types: dict[str, list[list[object]]] = {}
    for name, info in sorted(data.items()):
        types[name] = devices_from_type_info(info)  # the same reading the runtime applies to AWS answers
    aliases: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    for table in (ref / "instances.csv", ADDITIONS):
        with open(table, newline="") as fh:
            rows.extend(csv.DictReader(fh))
    for row in rows:
        api_name = re.sub(
            r"\s*\(expected; not verifiable offline\)", "", row["api_accelerator_name"]
        ).strip()
        chip = row["chip_row_in_chips_csv"]
        if chip:
            if chip not in chips:  # "NVIDIA A100 SXM4 40GB / 80GB (80GB)" -> the memory variant's row
                chip = re.sub(r"\s*\([^)]*\)$", "", chip)
            aliases[f"{row['api_field']}/{api_name}"] = chip
        if row["instance_type"] not in types:
            count: float = float(row["accelerator_count"] or 0)
            types[row["instance_type"]] = [[row["api_field"], api_name, count]]
    return types, aliases


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(
        prog="build_catalog.py",
        description="Regenerate enforcer/data/{chips,instance_types}.json from the reference tables.",
    )
    ap.add_argument("reference_dir", nargs="?", type=Path, default=ROOT / "docs" / "sources",
                    help="folder holding chips.csv and instances.csv (docs/sources)")  # fmt: skip
    ref = ap.parse_args(argv).reference_dir
    chips = build_chips(ref)
    for name, note in OUT_OF_SCOPE.items():
        chips[name] = {
            "vendor": "Xilinx/AMD",
            "dense_tops": {},
            "applicable_die_area_mm2": None,
            "planar": False,
            "datacenter": True,
            "scope": "out_of_scope",
            "note": note,
            "source": "docs/sources/instances.csv",
        }
    types, aliases = build_instances(ref, chips)
    out = ROOT / "enforcer" / "data"
    out.mkdir(parents=True, exist_ok=True)
    (out / "chips.json").write_text(
        json.dumps({"chips": chips, "aliases": aliases}, indent=1, sort_keys=True)
    )
    (out / "instance_types.json").write_text(json.dumps(types, separators=(",", ":"), sort_keys=True))
    print(f"{len(chips)} chips, {len(aliases)} aliases, {len(types)} instance types -> {out}")


if __name__ == "__main__":
    main()
