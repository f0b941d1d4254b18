"""Chip catalogue: instance type -> accelerators -> TPP, performance density, ECCN 3A090 class.

The class is computed from chip specifications kept as data (``enforcer/data/chips.json``:
dense TOPS per precision and applicable die area), by the rules of 15 CFR 774 Supp. 1, ECCN 3A090:

- TPP = max over precisions of (dense TOPS x operand bit length); PD = TPP / applicable die area (mm2).
- 3A090.a: TPP >= 4800, or TPP >= 1600 and PD >= 5.92.
- 3A090.b: 2400 <= TPP < 4800 and 1.6 <= PD < 5.92, or TPP >= 1600 and 3.2 <= PD < 5.92.
- otherwise not controlled (``none``); TPP in [1600, 4800) with an unpublished die area is ``indeterminate``.

Instance -> accelerator data comes from ``DescribeInstanceTypes`` (GpuInfo, NeuronInfo,
InferenceAcceleratorInfo) when an EC2 client is given, with the bundled table as fallback.
Unknown accelerator names classify as ``unknown`` (treated as controlled), never ``none``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from enforcer.model import Accelerator, Classification

TPP_A = 4800.0
TPP_FLOOR = 1600.0
TPP_B_LOW = 2400.0
PD_A = 5.92
PD_B_LOW = 1.6
PD_B2_LOW = 3.2

BITS = {"fp4": 4, "fp8": 8, "int8": 8, "fp16": 16, "fp32": 32}
#: Restrictiveness order used to pick an instance's class from its accelerators.
CLASS_RANK = {"3A090.a": 5, "3A090.b": 4, "indeterminate": 3, "unknown": 2, "none": 0}
#: AWS Batch instance "families" that only ever select CPU types (C, M, R and their Graviton peers).
CPU_ONLY_FAMILIES = frozenset({"optimal", "default_x86_64", "default_arm64"})
#: An EC2 instance type's spelling (``g5.xlarge``, ``p4de.24xlarge``).
EC2_TYPE = re.compile(r"[a-z][a-z0-9-]*\d[a-z0-9-]*\.[a-z0-9]+")
#: AppStream 2.0 instance families without GPUs (``stream.standard.medium``, ``stream.memory.z1d.large``).
STREAM_CPU_FAMILIES = frozenset({"standard", "compute", "memory"})


def appstream_type(name: str) -> str | None:
    """The EC2 type behind an AppStream 2.0 type: ``stream.graphics.g5.xlarge`` -> ``g5.xlarge``,
    ``stream.graphics-pro.4xlarge`` -> ``g3.4xlarge``; None for the families without GPUs
    (:data:`STREAM_CPU_FAMILIES`); any other name as given, lower-cased (classified ``unknown``)."""
    t = name.lower().removeprefix("stream.")
    family, _, rest = t.partition(".")
    if family in STREAM_CPU_FAMILIES and rest:
        return None
    if family == "graphics" and EC2_TYPE.fullmatch(rest):
        return rest
    if family == "graphics-pro" and rest:
        return f"g3.{rest}"  # NVIDIA Tesla M60
    return name.lower()  # graphics-design, graphics-desktop and new names: classified as unknown


logger = logging.getLogger("enforcer.chips")
#: Called as ``alert(instance_type, field, name)`` for an accelerator AWS reports that the catalogue lacks.
UnknownAlert = Callable[[str, str, str], None]
ACCEL_FIELDS = ("GpuInfo", "NeuronInfo", "InferenceAcceleratorInfo", "FpgaInfo", "MediaAcceleratorInfo")


@dataclass(frozen=True, slots=True)
class ChipSpec:
    """Specification of one accelerator chip, with its computed TPP, PD and class."""

    name: str
    tpp: float | None
    pd: float | None
    chip_class: str


def compute_tpp(dense_tops: dict[str, float | None]) -> float | None:
    """Total processing performance: the max over precisions of dense TOPS x bit length.

    Parameters
    ----------
    dense_tops
        Dense (non-sparse) throughput per precision, e.g. ``{"fp16": 989.4, "fp8": 1978.9}``.

    Returns
    -------
    float or None
        Unrounded (thresholds are compared with the exact figure); None when no figure is known.
    """
    values = [v * BITS[p] for p, v in dense_tops.items() if v is not None and p in BITS]
    return max(values) if values else None


def classify_tpp_pd(tpp: float | None, pd: float | None, datacenter: bool = True) -> str:
    """Apply the 3A090 thresholds to a TPP and performance density.

    Parameters
    ----------
    tpp
        Total processing performance, None when unknown.
    pd
        Performance density (TPP / applicable die area in mm2), None when the area is unpublished.
    datacenter
        Whether the IC is designed or marketed for data centres (all EC2 accelerators are).

    Returns
    -------
    str
        ``3A090.a``, ``3A090.b``, ``none`` or ``indeterminate``.
    """
    if tpp is None:
        return "indeterminate"
    if not datacenter:
        return "3A090.a" if tpp >= TPP_A else "none"
    if tpp >= TPP_A:
        return "3A090.a"
    if tpp < TPP_FLOOR:
        return "none"
    if pd is None:
        return "indeterminate"
    if pd >= PD_A:
        return "3A090.a"
    if (TPP_B_LOW <= tpp < TPP_A and PD_B_LOW <= pd < PD_A) or PD_B2_LOW <= pd < PD_A:
        return "3A090.b"
    return "none"


def _load_json(name: str) -> Any:
    return json.loads(resources.files("enforcer.data").joinpath(name).read_text())


class ChipCatalog:
    """Classifies instance types; thread-safe, caches every answer for the process lifetime.

    Parameters
    ----------
    ec2_client
        Optional boto3 EC2 client; when given, ``DescribeInstanceTypes`` is asked first and the
        bundled table is the fallback for types AWS (or moto) does not know.
    """

    def __init__(self, ec2_client: Any = None, alert: UnknownAlert | None = None) -> None:
        raw = _load_json("chips.json")
        self._aliases: dict[str, str] = raw["aliases"]
        self._chips: dict[str, ChipSpec] = {}
        for name, spec in raw["chips"].items():
            tpp = compute_tpp(spec["dense_tops"])
            area = spec["applicable_die_area_mm2"]
            pd = tpp / area if tpp is not None and area else None
            # the class is decided on the exact figures; only what is shown is rounded
            cls = "none" if spec["scope"] == "out_of_scope" else classify_tpp_pd(tpp, pd, spec["datacenter"])
            shown_tpp = round(tpp, 1) if tpp is not None else None
            self._chips[name] = ChipSpec(name, shown_tpp, round(pd, 2) if pd is not None else None, cls)
        self._types: dict[str, list[list[Any]]] = _load_json("instance_types.json")
        self._ec2 = ec2_client
        self._alert: UnknownAlert = alert or log_unknown_accelerator
        #: ``field/name`` of accelerators DescribeInstanceTypes reported that the catalogue lacks.
        self.unknown_accelerators: Counter[str] = Counter()
        self._cache: dict[str, Classification] = {}
        self._families: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # -- lookups ---------------------------------------------------------------------------
    def chip(self, field: str, api_name: str) -> ChipSpec | None:
        """Return the chip behind a DescribeInstanceTypes accelerator name, or None if unknown."""
        target = self._aliases.get(f"{field}/{api_name}")
        return self._chips.get(target) if target else None

    def known_types(self) -> list[str]:
        """Every instance type in the bundled table."""
        return sorted(self._types)

    def classify(self, instance_type: str) -> Classification:
        """Classify one instance type (cached).

        Parameters
        ----------
        instance_type
            EC2 instance type such as ``p5.48xlarge`` (SageMaker ``ml.`` prefixes are accepted).

        Returns
        -------
        Classification
            With ``chip_class`` ``unknown`` for a type found neither in AWS nor in the bundled table.
        """
        key = instance_type.removeprefix("ml.")
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if key.startswith("stream."):  # AppStream 2.0: the EC2 type behind it, or a family without GPUs
            ec2_type = appstream_type(key)
            if ec2_type is None:
                return Classification(key, [], "none", 0.0, "AppStream family without GPUs")
            if ec2_type != key:
                c = self.classify(ec2_type)
                return Classification(key, c.accelerators, c.chip_class, c.total_tpp, c.source)
        devices, source = self._devices(key)
        result = self._build(key, devices, source)
        if source != "none":  # "unknown" may be a passing describe failure: ask again next time
            with self._lock:
                self._cache[key] = result
        return result

    def family_class(self, family: str) -> tuple[str, float]:
        """The most restrictive class of an instance family (``p4d``) and its largest type's TPP (cached).

        AWS Batch's CPU-only pseudo-families (``optimal``, ``default_x86_64``, ``default_arm64``)
        are ``none``; a family with no known type is ``unknown``.
        """
        if family in CPU_ONLY_FAMILIES:
            return "none", 0.0
        hit = self._families.get(family)
        if hit is None:
            members = [self.classify(t) for t in self._types if t.split(".", 1)[0] == family]
            worst = max(members, key=lambda c: CLASS_RANK[c.chip_class], default=None)
            hit = ("unknown", 0.0) if worst is None else (worst.chip_class, max(c.total_tpp for c in members))
            with self._lock:
                self._families[family] = hit
        return hit

    # -- internals -------------------------------------------------------------------------
    def _unknown(self, itype: str, field: str, name: str) -> None:
        key = f"{field}/{name}"
        with self._lock:
            first = key not in self.unknown_accelerators
            self.unknown_accelerators[key] += 1
        if first:  # once per accelerator name and process, not once per launch
            try:
                self._alert(itype, field, name)
            except Exception:  # an alert must never change a decision
                logger.exception("unknown-accelerator alert failed")

    def _devices(self, itype: str) -> tuple[list[list[Any]] | None, str]:
        if self._ec2 is not None:
            described = self._describe(itype)
            if described is not None:
                return described, "DescribeInstanceTypes"
        bundled = self._types.get(itype)
        return (bundled, "bundled") if bundled is not None else (None, "none")

    def _describe(self, itype: str) -> list[list[Any]] | None:
        try:
            resp = self._ec2.describe_instance_types(InstanceTypes=[itype])
        except Exception:  # InvalidInstanceType, throttling, no network: fall back to the bundled table
            return None
        infos = resp.get("InstanceTypes") or []
        return devices_from_type_info(infos[0]) if infos else None

    def _build(self, itype: str, devices: list[list[Any]] | None, source: str) -> Classification:
        if devices is None:
            return Classification(itype, [], "unknown", 0.0, source)
        accs: list[Accelerator] = []
        for field, name, count in devices:
            spec = self.chip(field, name)
            if spec is None:
                accs.append(Accelerator(name, count, None, None, "unknown"))
                if source == "DescribeInstanceTypes":
                    self._unknown(itype, field, name)
            else:
                accs.append(Accelerator(name, count, spec.tpp, spec.pd, spec.chip_class))
        cls = max((a.chip_class for a in accs), key=CLASS_RANK.__getitem__, default="none")
        total = round(sum((a.tpp or 0.0) * a.count for a in accs), 1)
        return Classification(itype, accs, cls, total, source)


def log_unknown_accelerator(instance_type: str, field: str, name: str) -> None:
    """Default alert: one structured warning on the ``enforcer.chips`` logger."""
    logger.warning(
        "DescribeInstanceTypes reported an accelerator with no catalogue entry (classified unknown)",
        extra={
            "instance_type": instance_type,
            "accelerator": f"{field}/{name}",
            "alert": "UnknownAccelerator",
        },
    )


def emf_unknown_accelerator(namespace: str = "GpuLaunchEnforcer") -> UnknownAlert:
    """An alert that logs and emits the CloudWatch metric ``UnknownAccelerator`` (EMF, one per call).

    For Lambda handlers: the metric line goes to stdout, which CloudWatch Logs turns into a metric.
    """

    def alert(instance_type: str, field: str, name: str) -> None:
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        log_unknown_accelerator(instance_type, field, name)
        with single_metric(
            name="UnknownAccelerator", unit=MetricUnit.Count, value=1, namespace=namespace
        ) as metric:
            metric.add_dimension(name="accelerator", value=f"{field}/{name}"[:250])

    return alert


def devices_from_type_info(info: dict[str, Any]) -> list[list[Any]]:
    """Extract ``[field, name, count]`` rows from one ``DescribeInstanceTypes`` entry.

    Fractional GPUs (g6f: ``Count`` 0 with ``GpuPartitionSize``) count as the partition size.
    inf1/inf2 list their devices under both NeuronInfo and InferenceAcceleratorInfo; they count once.
    """
    rows: list[list[Any]] = []
    for field in ACCEL_FIELDS:
        block = info.get(field)
        if not block or (field == "InferenceAcceleratorInfo" and info.get("NeuronInfo")):
            continue
        devices = (
            block.get("Gpus")
            or block.get("NeuronDevices")
            or block.get("Accelerators")
            or block.get("Fpgas")
            or block.get("MediaAccelerators")
            or []
        )
        for d in devices:
            count = d.get("Count") or 0
            if not count and d.get("GpuPartitionSize"):
                count = (d.get("LogicalGpuCount") or 1) * d["GpuPartitionSize"]
            rows.append([field, str(d.get("Name", "")), count])
    return rows


_default: ChipCatalog | None = None


def default_catalog() -> ChipCatalog:
    """The process-wide catalogue on bundled data (no AWS)."""
    global _default
    if _default is None:
        _default = ChipCatalog()
    return _default
