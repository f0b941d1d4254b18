"""Catalogue (issue 13): Trainium3, accelerator names AWS reports, the unknown-accelerator alert,
unrounded threshold comparison."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from enforcer import chips
from enforcer.chips import ChipCatalog, devices_from_type_info
from enforcer.cli import cli


def test_cli_classifies_trn3_as_3a090a() -> None:
    res = CliRunner().invoke(cli, ["catalog", "classify", "trn3.48xlarge"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["chip_class"] == "3A090.a"
    assert doc["accelerators"][0]["model"] == "Trainium3" and doc["accelerators"][0]["tpp"] == 20136.0


def test_every_accelerator_name_in_moto_snapshot_has_an_entry() -> None:
    """The names DescribeInstanceTypes gives (moto's snapshot of it) all map to a chip."""
    import moto

    path = os.path.join(os.path.dirname(moto.__file__), "ec2", "resources", "instance_types.json.gz")
    with gzip.open(path) as fh:
        data = json.load(fh)
    catalog = ChipCatalog()
    missing = {
        f"{f}/{n}"
        for info in data.values()
        for f, n, _ in devices_from_type_info(info)
        if not catalog.chip(f, n)
    }
    assert missing == set()


def test_types_in_the_botocore_enum_that_we_lack_are_unknown_never_none() -> None:
    """AWS names a type the bundled table does not have (g7.*, f1.*): controlled as unknown, not allowed."""
    import botocore.session

    enum = botocore.session.get_session().get_service_model("ec2").shape_for("InstanceType").enum
    catalog = ChipCatalog()
    lacking = [t for t in enum if t not in catalog.known_types()]
    assert all(catalog.classify(t).chip_class == "unknown" for t in lacking), lacking
    assert "trn2u.48xlarge" not in lacking and catalog.classify("trn2u.48xlarge").chip_class == "3A090.a"


def _describe_response(name: str) -> dict[str, Any]:
    """A DescribeInstanceTypes answer shaped by the botocore model (validated by the Stubber)."""
    return {
        "InstanceTypes": [
            {
                "InstanceType": "p5.48xlarge",
                "GpuInfo": {
                    "Gpus": [
                        {
                            "Name": name,
                            "Manufacturer": "NVIDIA",
                            "Count": 8,
                            "MemoryInfo": {"SizeInMiB": 81920},
                        }
                    ],
                    "TotalGpuMemoryInMiB": 655360,
                },
            }
        ]
    }


def test_unknown_accelerator_from_describe_alerts_once(caplog: pytest.LogCaptureFixture) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    alerts: list[tuple[str, str, str]] = []
    catalog = ChipCatalog(ec2, alert=lambda *a: alerts.append(a))
    with Stubber(ec2) as stub:
        stub.add_response(
            "describe_instance_types", _describe_response("R300"), {"InstanceTypes": ["p5.48xlarge"]}
        )
        stub.add_response(
            "describe_instance_types", _describe_response("R300"), {"InstanceTypes": ["p5.4xlarge"]}
        )
        first = catalog.classify("p5.48xlarge")
        catalog.classify("p5.4xlarge")
    assert first.chip_class == "unknown" and first.source == "DescribeInstanceTypes"
    assert alerts == [("p5.48xlarge", "GpuInfo", "R300")]  # once per name, not per type or launch
    assert catalog.unknown_accelerators["GpuInfo/R300"] == 2


def test_default_alert_logs_and_emf_alert_prints_a_metric(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level("WARNING", logger="enforcer.chips"):
        chips.log_unknown_accelerator("x.large", "NeuronInfo", "Trainium9")
    assert "no catalogue entry" in caplog.text
    chips.emf_unknown_accelerator()("x.large", "NeuronInfo", "Trainium9")
    line = next(x for x in capsys.readouterr().out.splitlines() if "UnknownAccelerator" in x)
    emf = json.loads(line)
    assert emf["accelerator"] == "NeuronInfo/Trainium9" and emf["UnknownAccelerator"] == [1.0]


def test_thresholds_compare_unrounded_density(monkeypatch: pytest.MonkeyPatch) -> None:
    """PD 5.9196 rounds to 5.92 (the .a line) but is below it: 3A090.b, not .a."""
    real = chips._load_json

    def fake(name: str) -> Any:
        doc = real(name)
        if name == "chips.json":
            doc["chips"]["Edge Chip"] = {
                "applicable_die_area_mm2": 2000.0 / 5.9196, "datacenter": True, "planar": False,
                "dense_tops": {"fp16": 125.0}, "scope": "3A090", "note": "", "source": "test", "vendor": "x",
            }  # fmt: skip
            doc["aliases"]["GpuInfo/Edge"] = "Edge Chip"
        return doc

    monkeypatch.setattr(chips, "_load_json", fake)
    spec = ChipCatalog().chip("GpuInfo", "Edge")
    assert spec is not None and spec.tpp == 2000.0 and spec.pd == 5.92  # shown rounded
    assert spec.chip_class == "3A090.b"  # decided unrounded
