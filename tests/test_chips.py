"""Chip catalogue: 3A090 thresholds, every classified row of the reference table, AWS data path."""

from __future__ import annotations

import csv
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from enforcer.chips import ChipCatalog, classify_tpp_pd, compute_tpp, devices_from_type_info

REFERENCE = Path(__file__).parent / "data" / "reference_instances.csv"


def _expected(cls: str) -> str | None:
    if cls.startswith("3A090.a"):
        return "3A090.a"
    if cls.startswith("3A090.b"):
        return "3A090.b"
    if cls.startswith("indeterminate"):
        return "indeterminate"
    if cls in ("not_controlled",) or cls.startswith("out_of_scope"):
        return "none"
    return None


ROWS = [r for r in csv.DictReader(REFERENCE.open()) if _expected(r["chip_class"])]


@pytest.mark.parametrize("row", ROWS, ids=[r["instance_type"] for r in ROWS])
def test_every_reference_row_classifies_as_stated(catalog: ChipCatalog, row: dict[str, str]) -> None:
    assert catalog.classify(row["instance_type"]).chip_class == _expected(row["chip_class"])


def test_reference_covers_the_issue_examples(catalog: ChipCatalog) -> None:
    assert len(ROWS) >= 90
    expect = {
        "p5.48xlarge": "3A090.a",
        "g6.xlarge": "3A090.a",
        "g5.xlarge": "none",
        "g4dn.xlarge": "none",
        "trn1.32xlarge": "indeterminate",
        "p4d.24xlarge": "3A090.a",
        "trn2.48xlarge": "3A090.a",
    }
    for itype, cls in expect.items():
        assert catalog.classify(itype).chip_class == cls


@pytest.mark.parametrize(
    ("tpp", "pd", "cls"),
    [
        (15832, 19.45, "3A090.a"),  # H100 SXM: a.1
        (4992, 6.04, "3A090.a"),  # A100: a.1
        (1940, 6.59, "3A090.a"),  # L4: a.2 (TPP >= 1600 and PD >= 5.92)
        (2000, 3.18, "none"),  # A10: PD just under the 3.2 floor of b.2
        (2368, 2.91, "none"),  # H20: misses both .b floors
        (3000, 2.0, "3A090.b"),  # b.1
        (1700, 4.0, "3A090.b"),  # b.2
        (1599, 50.0, "none"),  # below every floor
        (3040, None, "indeterminate"),  # Trainium: die area unpublished
        (4800, None, "3A090.a"),  # a.1 needs no PD
        (None, None, "indeterminate"),  # Gaudi1: no published throughput
    ],
)
def test_thresholds(tpp: float | None, pd: float | None, cls: str) -> None:
    assert classify_tpp_pd(tpp, pd) == cls


def test_non_datacenter_chip_uncontrolled_below_4800() -> None:
    assert classify_tpp_pd(4000, 10.0, datacenter=False) == "none"
    assert classify_tpp_pd(5000, 10.0, datacenter=False) == "3A090.a"


def test_tpp_is_max_over_precisions_of_dense_tops_times_bits() -> None:
    assert compute_tpp({"fp16": 989.4, "fp8": 1978.9, "int8": 1978.9}) == 15831.2
    assert compute_tpp({"fp16": 312.0, "int8": 624.0}) == 4992.0
    assert compute_tpp({}) is None


def test_fractional_gpu_counts_its_share(catalog: ChipCatalog) -> None:
    c = catalog.classify("g6f.large")
    assert c.chip_class == "3A090.a"
    assert c.accelerators[0].count == 0.125
    assert c.total_tpp == pytest.approx(1940 * 0.125, rel=1e-3)


def test_unknown_type_is_unknown_not_none(catalog: ChipCatalog) -> None:
    c = catalog.classify("zz9.bogus")
    assert c.chip_class == "unknown"
    assert c.accelerators == []


def test_unknown_accelerator_name_is_unknown() -> None:
    rows = devices_from_type_info({"GpuInfo": {"Gpus": [{"Name": "X9000", "Count": 4}]}})
    cat = ChipCatalog()
    c = cat._build("x9.large", rows, "test")
    assert c.chip_class == "unknown"


def test_no_accelerator_instance_is_none(catalog: ChipCatalog) -> None:
    assert catalog.classify("t3.micro").chip_class == "none"
    assert catalog.classify("ml.p5.48xlarge").chip_class == "3A090.a"


def test_neuron_devices_not_double_counted() -> None:
    info = {
        "NeuronInfo": {"NeuronDevices": [{"Name": "Inferentia2", "Count": 1}]},
        "InferenceAcceleratorInfo": {"Accelerators": [{"Name": "Inferentia2", "Count": 1}]},
    }
    assert devices_from_type_info(info) == [["NeuronInfo", "Inferentia2", 1]]


@mock_aws
def test_describe_instance_types_is_used_when_a_client_is_given() -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    cat = ChipCatalog(ec2)
    c = cat.classify("p5.48xlarge")
    assert c.source == "DescribeInstanceTypes"
    assert c.chip_class == "3A090.a"
    assert c.accelerators[0].count == 8
    # moto lacks p3.2xlarge: the bundled table answers
    p3 = cat.classify("p3.2xlarge")
    assert p3.source == "bundled" and p3.chip_class == "none"


def test_batch_cpu_only_families_are_none_and_families_take_the_worst_class(catalog: ChipCatalog) -> None:
    for family in ("optimal", "default_x86_64", "default_arm64"):
        assert catalog.family_class(family) == ("none", 0.0)
    cls, tpp = catalog.family_class("p4d")
    assert cls == "3A090.a" and tpp == catalog.classify("p4d.24xlarge").total_tpp
    assert catalog.family_class("zz9")[0] == "unknown"


def test_classify_reports_the_name_without_the_sagemaker_prefix_consistently(catalog: ChipCatalog) -> None:
    assert catalog.classify("ml.g6.xlarge").instance_type == catalog.classify("g6.xlarge").instance_type


def test_a_failed_describe_is_not_cached_as_unknown() -> None:
    class Flaky:  # throttling cannot be caused in moto: a stand-in client that fails once
        calls = 0

        def describe_instance_types(self, InstanceTypes: list[str]) -> dict[str, object]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("ThrottlingException")
            return {"InstanceTypes": [{"GpuInfo": {"Gpus": [{"Name": "H100", "Count": 8}]}}]}

    cat = ChipCatalog(Flaky())
    assert cat.classify("p7.new").chip_class == "unknown"
    assert cat.classify("p7.new").chip_class == "3A090.a"


@pytest.mark.parametrize(
    ("stream", "ec2", "cls"),
    [
        ("stream.standard.medium", None, "none"),
        ("stream.compute.large", None, "none"),
        ("stream.memory.z1d.large", None, "none"),
        ("stream.graphics.g4dn.xlarge", "g4dn.xlarge", None),
        ("stream.graphics.g6e.2xlarge", "g6e.2xlarge", None),
        ("stream.graphics-pro.4xlarge", "g3.4xlarge", None),
        ("stream.graphics-design.large", None, "unknown"),  # AMD FirePro: not in the catalogue
        ("stream.accelerated.xlarge", None, "unknown"),  # a family AppStream might add: never "none"
    ],
)
def test_appstream_types_classify_as_the_ec2_type_behind_them(
    catalog: ChipCatalog, stream: str, ec2: str | None, cls: str | None
) -> None:
    """AppStream 2.0 names its types ``stream.<family>.<size>``: a CloudTrail ``CreateFleet`` or
    ``UpdateFleet`` carries them as written (they were all ``unknown``: every fleet failed closed)."""
    got = catalog.classify(stream)
    assert got.instance_type == stream
    want = catalog.classify(ec2).chip_class if ec2 else cls
    assert got.chip_class == want
    if ec2 is not None:
        assert got.total_tpp == catalog.classify(ec2).total_tpp
    assert catalog.classify("stream.graphics.g6e.2xlarge").chip_class == "3A090.a"
