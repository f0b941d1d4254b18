"""Fleets scaled by count alone (red team 24, finding 4): Deadline, AppStream and CodeBuild ``UpdateFleet``
and EC2 ``ModifyCapacityReservation`` become one reference carrying the new count; the resolver describes
the fleet (reservation) and reads its configuration as ``CreateFleet`` would, at that count.

moto implements none of the four look-ups (no ``deadline`` or ``appstream`` backend; CodeBuild without
fleets; EC2 without ``DescribeCapacityReservations``), so each is a real boto3 client under
``botocore.stub.Stubber``: requests and responses are validated against the installed service models,
and nothing reaches the network.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from enforcer.accounts import AccountOrigin, StaticAccountDirectory
from enforcer.intake import normalise
from enforcer.model import Ignored, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.resolve import AwsResolver
from tests.test_coverage_updates import CN, record

ROOT = Path(__file__).resolve().parents[1]
NOW = 1_796_083_200.0
FARM, FLEET = "farm-0123456789abcdef0123456789abcdef", "fleet-0123456789abcdef0123456789abcdef"
CB_ARN = "arn:aws:codebuild:us-east-1:123456789012:fleet/gpu:1"
WHEN = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def deadline_scale(n: int = 1000) -> dict[str, Any]:
    return record(
        "deadline.amazonaws.com", "UpdateFleet", {"farmId": FARM, "fleetId": FLEET, "maxWorkerCount": n}
    )


def appstream_scale(n: int = 500) -> dict[str, Any]:
    params = {"name": "gpu-fleet", "computeCapacity": {"desiredInstances": n}}
    return record("appstream.amazonaws.com", "UpdateFleet", params)


def codebuild_scale(n: int = 100) -> dict[str, Any]:
    return record("codebuild.amazonaws.com", "UpdateFleet", {"arn": CB_ARN, "baseCapacity": n})


def reservation_scale(n: int = 500) -> dict[str, Any]:
    params = {"CapacityReservationId": "cr-0123456789abcdef0", "InstanceCount": n}
    return record("ec2.amazonaws.com", "ModifyCapacityReservation", params)


def created_config() -> dict[str, Any]:
    """The configuration of tests/events/cloudtrail_deadline_createfleet.json (L40S, two allowed types)."""
    ev = json.loads((ROOT / "tests" / "events" / "cloudtrail_deadline_createfleet.json").read_text())
    return copy.deepcopy(ev["detail"]["requestParameters"]["configuration"])


def get_fleet(configuration: dict[str, Any], max_workers: int = 20) -> dict[str, Any]:
    """A ``GetFleet`` answer with every member the model requires."""
    return {
        "fleetId": FLEET,
        "farmId": FARM,
        "displayName": "render-gpu",
        "status": "ACTIVE",
        "workerCount": 3,
        "minWorkerCount": 0,
        "maxWorkerCount": max_workers,
        "configuration": configuration,
        "createdAt": WHEN,
        "createdBy": "alice",
        "roleArn": f"arn:aws:iam::{CN}:role/DeadlineFleet",
    }


@pytest.fixture
def clients() -> Iterator[dict[str, Any]]:
    made = {
        svc: boto3.client(svc, region_name="us-east-1")
        for svc in ("deadline", "appstream", "codebuild", "ec2")
    }
    stubs = {svc: Stubber(c) for svc, c in made.items()}
    for s in stubs.values():
        s.activate()
    yield {"client": made, "stub": stubs}
    for s in stubs.values():
        s.deactivate()


def resolver(clients: dict[str, Any]) -> AwsResolver:
    c = clients["client"]
    return AwsResolver(
        c["ec2"], deadline=c["deadline"], appstream=c["appstream"], codebuild=c["codebuild"], attempts=1
    )


@pytest.fixture
def decide(clients: dict[str, Any], engine: Any, catalog: Any) -> Any:
    origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
    enforcer = Enforcer(
        catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver(clients)
    )

    def run(rec: dict[str, Any]) -> Any:
        req = normalise(rec)
        assert isinstance(req, LaunchRequest), req
        decision = enforcer.decide(req, now=NOW)
        for s in clients["stub"].values():
            s.assert_no_pending_responses()
        return decision

    return run


def _typed(decision: Any) -> list[tuple[str | None, int]]:
    return [(i.instance_type, i.count) for i in decision.request.items]


# -- intake ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rec", "ref", "count"),
    [
        (deadline_scale(), {"kind": "deadline_fleet", "farm_id": FARM, "id": FLEET}, 1000),
        (appstream_scale(), {"kind": "appstream_fleet", "name": "gpu-fleet"}, 500),
        (codebuild_scale(), {"kind": "codebuild_fleet", "arn": CB_ARN}, 100),
        (reservation_scale(), {"kind": "capacity_reservation", "id": "cr-0123456789abcdef0"}, 500),
    ],
)
def test_a_count_only_update_is_one_reference_at_the_new_count(
    rec: dict[str, Any], ref: dict[str, Any], count: int
) -> None:
    req = normalise(rec)
    assert isinstance(req, LaunchRequest), req
    assert [(i.ref, i.count) for i in req.items] == [(ref, count)]


def test_desired_sessions_and_scaling_maximum_count_too() -> None:
    rec = appstream_scale()
    rec["requestParameters"]["computeCapacity"] = {"desiredInstances": 2, "desiredSessions": 60}
    assert [i.count for i in normalise(rec).items] == [60]  # type: ignore[union-attr]
    rec = codebuild_scale(1)
    rec["requestParameters"]["scalingConfiguration"] = {"maxCapacity": 40}
    assert [i.count for i in normalise(rec).items] == [40]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "rec", [deadline_scale(0), appstream_scale(0), codebuild_scale(0), reservation_scale(0)]
)
def test_a_scale_to_zero_launches_nothing(rec: dict[str, Any]) -> None:
    """The guard's own remediation of a Deadline fleet is ``UpdateFleet`` with ``maxWorkerCount`` 0."""
    assert isinstance(normalise(rec), Ignored)


def test_an_update_naming_its_type_is_still_read_by_the_table() -> None:
    rec = deadline_scale(30)
    rec["requestParameters"]["configuration"] = created_config()
    items = normalise(rec).items  # type: ignore[union-attr]
    assert [(i.instance_type, i.count, i.ref) for i in items] == [
        ("g6e.xlarge", 30, None),
        ("g6e.2xlarge", 30, None),
    ]
    # ... at the count the update asks for (ComputeCapacity, baseCapacity: count members of the table's walk)
    rec = appstream_scale()
    rec["requestParameters"]["instanceType"] = "stream.graphics.g5.xlarge"
    got = [(i.instance_type, i.count) for i in normalise(rec).items]  # type: ignore[union-attr]
    assert got == [("stream.graphics.g5.xlarge", 500)]
    rec = codebuild_scale()
    rec["requestParameters"]["computeConfiguration"] = {"instanceType": "g6e.2xlarge"}
    assert [(i.instance_type, i.count) for i in normalise(rec).items] == [("g6e.2xlarge", 100)]  # type: ignore[union-attr]


# -- resolution and decision ----------------------------------------------------------------------------------
def test_deadline_fleet_resolves_as_created_at_the_new_worker_count(
    clients: dict[str, Any], decide: Any
) -> None:
    created = normalise(
        json.loads((ROOT / "tests" / "events" / "cloudtrail_deadline_createfleet.json").read_text())
    )
    clients["stub"]["deadline"].add_response(
        "get_fleet", get_fleet(created_config(), 1000), {"farmId": FARM, "fleetId": FLEET}
    )
    decision = decide(deadline_scale(1000))
    assert [t for t, _ in _typed(decision)] == [i.instance_type for i in created.items]  # type: ignore[union-attr]
    assert _typed(decision) == [("g6e.xlarge", 1000), ("g6e.2xlarge", 1000)]
    assert decision.effect == "deny" and "ORIGIN_RESTRICTED" in {r.code for r in decision.reasons}
    assert decision.request.items[0].ref == {"kind": "deadline_fleet", "farm_id": FARM, "id": FLEET}


def test_deadline_accelerators_chosen_by_name_stay_a_selection_and_fail_closed(
    clients: dict[str, Any], decide: Any
) -> None:
    cfg = created_config()
    caps = cfg["serviceManagedEc2"]["instanceCapabilities"]
    del caps["allowedInstanceTypes"]
    rec = record(
        "deadline.amazonaws.com", "CreateFleet", {"farmId": FARM, "maxWorkerCount": 5, "configuration": cfg}
    )
    created = normalise(rec).items[0].ref  # type: ignore[union-attr]
    clients["stub"]["deadline"].add_response("get_fleet", get_fleet(cfg), {"farmId": FARM, "fleetId": FLEET})
    decision = decide(deadline_scale(1000))
    (item,) = decision.request.items
    assert item.instance_type is None and item.count == 1000 and item.chip_class == "unknown"
    assert {k: v for k, v in item.ref.items() if k != "fleet"} == created
    assert "REQUEST_UNRESOLVED" in {r.code for r in decision.reasons}


@pytest.mark.parametrize(
    "configuration",
    [
        {
            "serviceManagedEc2": {
                "instanceCapabilities": {
                    "vCpuCount": {"min": 4},
                    "memoryMiB": {"min": 8192},
                    "osFamily": "LINUX",
                    "cpuArchitectureType": "x86_64",
                },
                "instanceMarketOptions": {"type": "spot"},
            }
        },
        {
            "customerManaged": {
                "mode": "NO_SCALING",
                "workerCapabilities": {
                    "vCpuCount": {"min": 2},
                    "memoryMiB": {"min": 4096},
                    "osFamily": "LINUX",
                    "cpuArchitectureType": "x86_64",
                },
            }
        },
    ],
    ids=["service-managed-cpu", "customer-managed"],
)
def test_a_deadline_fleet_without_accelerators_is_allowed(
    clients: dict[str, Any], decide: Any, configuration: dict[str, Any]
) -> None:
    clients["stub"]["deadline"].add_response(
        "get_fleet", get_fleet(configuration), {"farmId": FARM, "fleetId": FLEET}
    )
    decision = decide(deadline_scale(1000))
    assert [i.chip_class for i in decision.request.items] == ["none"]
    assert decision.effect == "allow", decision.reasons


def test_appstream_fleet_resolves_to_its_instance_type(clients: dict[str, Any], decide: Any) -> None:
    fleet = {
        "Name": "gpu-fleet",
        "Arn": f"arn:aws:appstream:us-east-1:{CN}:fleet/gpu-fleet",
        "InstanceType": "stream.graphics.g5.xlarge",
        "ComputeCapacityStatus": {"Desired": 2},
        "State": "RUNNING",
    }
    clients["stub"]["appstream"].add_response(
        "describe_fleets", {"Fleets": [fleet]}, {"Names": ["gpu-fleet"]}
    )
    decision = decide(appstream_scale(500))
    assert _typed(decision) == [("stream.graphics.g5.xlarge", 500)]  # as CreateFleet reads it


def test_codebuild_fleet_resolves_to_its_instance_type(clients: dict[str, Any], decide: Any) -> None:
    fleet = {
        "arn": CB_ARN,
        "name": "gpu",
        "baseCapacity": 100,
        "environmentType": "LINUX_GPU_CONTAINER",
        "computeType": "CUSTOM_INSTANCE_TYPE",
        "computeConfiguration": {"instanceType": "g6e.2xlarge"},
    }
    clients["stub"]["codebuild"].add_response("batch_get_fleets", {"fleets": [fleet]}, {"names": [CB_ARN]})
    decision = decide(codebuild_scale(100))
    assert _typed(decision) == [("g6e.2xlarge", 100)]
    assert decision.effect == "deny" and "ORIGIN_RESTRICTED" in {r.code for r in decision.reasons}


def test_a_codebuild_fleet_outside_the_gpu_environment_is_allowed(
    clients: dict[str, Any], decide: Any
) -> None:
    fleet = {
        "arn": CB_ARN,
        "name": "gpu",
        "baseCapacity": 100,
        "environmentType": "LINUX_CONTAINER",
        "computeType": "BUILD_GENERAL1_LARGE",
    }
    clients["stub"]["codebuild"].add_response("batch_get_fleets", {"fleets": [fleet]}, {"names": [CB_ARN]})
    decision = decide(codebuild_scale(100))
    assert [i.chip_class for i in decision.request.items] == ["none"]
    assert decision.effect == "allow", decision.reasons


def test_a_codebuild_gpu_environment_naming_no_type_fails_closed(
    clients: dict[str, Any], decide: Any
) -> None:
    fleet = {
        "arn": CB_ARN,
        "name": "gpu",
        "baseCapacity": 1,
        "environmentType": "LINUX_GPU_CONTAINER",
        "computeType": "BUILD_GENERAL1_LARGE",
    }
    clients["stub"]["codebuild"].add_response("batch_get_fleets", {"fleets": [fleet]}, {"names": [CB_ARN]})
    decision = decide(codebuild_scale(100))
    (item,) = decision.request.items
    assert item.instance_type is None and "GPU fleet names no instance type" in item.ref["resolution_error"]
    assert decision.effect == "deny" and "REQUEST_UNRESOLVED" in {r.code for r in decision.reasons}


def test_a_capacity_reservation_resize_counts_the_new_size(clients: dict[str, Any], decide: Any) -> None:
    answer = {
        "CapacityReservations": [
            {
                "CapacityReservationId": "cr-0123456789abcdef0",
                "InstanceType": "p5.48xlarge",
                "TotalInstanceCount": 8,
            }
        ]
    }
    clients["stub"]["ec2"].add_response(
        "describe_capacity_reservations", answer, {"CapacityReservationIds": ["cr-0123456789abcdef0"]}
    )
    decision = decide(reservation_scale(500))
    assert _typed(decision) == [("p5.48xlarge", 500)]  # the resize may not show in TotalInstanceCount yet
    assert decision.effect == "deny"


@pytest.mark.parametrize(
    ("service", "operation", "rec"),
    [
        ("deadline", "get_fleet", deadline_scale()),
        ("appstream", "describe_fleets", appstream_scale()),
        ("codebuild", "batch_get_fleets", codebuild_scale()),
        ("ec2", "describe_capacity_reservations", reservation_scale()),
    ],
)
def test_an_unresolvable_fleet_fails_closed(
    clients: dict[str, Any], decide: Any, service: str, operation: str, rec: dict[str, Any]
) -> None:
    clients["stub"][service].add_client_error(operation, "ResourceNotFoundException", http_status_code=404)
    decision = decide(rec)
    (item,) = decision.request.items
    assert item.instance_type is None and item.chip_class == "unknown" and item.ref.get("resolution_error")
    assert decision.effect == "deny" and "REQUEST_UNRESOLVED" in {r.code for r in decision.reasons}


@pytest.mark.parametrize("rec", [deadline_scale(), appstream_scale(), codebuild_scale()])
def test_without_the_services_client_the_fleet_stays_unresolved(rec: dict[str, Any]) -> None:
    req = normalise(rec)
    assert isinstance(req, LaunchRequest)
    AwsResolver(None).resolve(req)
    assert req.items[0].instance_type is None and "client" in req.items[0].ref["resolution_error"]  # type: ignore[index]
