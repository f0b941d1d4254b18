"""Capacity grown by count alone, resolved by reference (red team 24b findings 9b and 10).

SageMaker HyperPod ``UpdateCluster`` groups without ``InstanceType`` and ``BatchAddClusterNodes`` entries
without ``InstanceTypes`` become ``sagemaker_cluster_group`` references; the resolver reads the group's
types from ``DescribeCluster`` (moto implements CreateCluster/DescribeCluster: tested through boto3 against
it). EC2 ``ModifyCapacityReservationFleet`` becomes a ``capacity_reservation_fleet`` reference resolved by
``DescribeCapacityReservationFleets`` (moto does not implement it: a boto3 client under
``botocore.stub.Stubber``, validated against the installed service model). Nothing reaches the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from enforcer.accounts import AccountOrigin, StaticAccountDirectory
from enforcer.intake import normalise
from enforcer.intake.malformed import malformed_launch
from enforcer.model import InputError, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.resolve import AwsResolver
from tests.test_coverage_updates import CN, record

NOW = 1_796_083_200.0
ROLE = f"arn:aws:iam::{CN}:role/hyperpod"
CRF = "crf-0123456789abcdef0"


def group(name: str, count: int, itype: str | None = None) -> dict[str, Any]:
    g: dict[str, Any] = {
        "InstanceGroupName": name,
        "InstanceCount": count,
        "ExecutionRole": ROLE,
        "LifeCycleConfig": {"SourceS3Uri": "s3://sagemaker-lifecycle/p", "OnCreate": "on_create.sh"},
        "ThreadsPerCore": 1,
    }
    if itype is not None:
        g["InstanceType"] = itype
    return g


def update_cluster(*groups: dict[str, Any], cluster: str = "train") -> dict[str, Any]:
    params = {"ClusterName": cluster, "InstanceGroups": list(groups)}
    return record("sagemaker.amazonaws.com", "UpdateCluster", params)


def add_nodes(*adds: dict[str, Any], cluster: str = "train") -> dict[str, Any]:
    return record(
        "sagemaker.amazonaws.com", "BatchAddClusterNodes", {"ClusterName": cluster, "NodesToAdd": list(adds)}
    )


def fleet_resize(n: int = 500) -> dict[str, Any]:
    params = {
        "ModifyCapacityReservationFleetRequest": {"CapacityReservationFleetId": CRF, "TotalTargetCapacity": n}
    }
    return record("ec2.amazonaws.com", "ModifyCapacityReservationFleet", params)


@pytest.fixture
def sagemaker() -> Iterator[Any]:
    """A moto SageMaker with cluster ``train``: ``gpu`` (8 x ml.p5.48xlarge) and ``cpu`` (2 x ml.c5.xlarge)."""
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_cluster(
            ClusterName="train",
            InstanceGroups=[group("gpu", 8, "ml.p5.48xlarge"), group("cpu", 2, "ml.c5.xlarge")],
            VpcConfig={"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]},
        )
        yield client


@pytest.fixture
def decide(engine: Any, catalog: Any) -> Any:
    def run(rec: dict[str, Any], resolver: AwsResolver) -> Any:
        origin = AccountOrigin(CN, "CN", "CN", "CN", "verified", None)
        enforcer = Enforcer(
            catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver
        )
        req = normalise(rec)
        assert isinstance(req, LaunchRequest), req
        return enforcer.decide(req, now=NOW)

    return run


def _typed(decision: Any) -> list[tuple[str | None, int]]:
    return [(i.instance_type, i.count) for i in decision.request.items]


def _unresolved(decision: Any) -> bool:
    return decision.effect == "deny" and "REQUEST_UNRESOLVED" in {r.code for r in decision.reasons}


# -- intake ------------------------------------------------------------------------------------------------
def test_each_group_naming_no_type_is_one_reference() -> None:
    req = normalise(update_cluster(group("gpu", 500), group("cpu", 4, "ml.c5.xlarge"), group("off", 0)))
    assert isinstance(req, LaunchRequest)
    assert [(i.instance_type, i.count, i.ref) for i in req.items] == [
        (None, 500, {"kind": "sagemaker_cluster_group", "cluster": "train", "group": "gpu"}),
        (
            "c5.xlarge",
            4,
            None,
        ),  # a group naming its type is read as before; a group scaled to zero launches nothing
    ]


def test_added_nodes_count_the_increment_and_typed_entries_stay_the_walks() -> None:
    rec = add_nodes(
        {"InstanceGroupName": "gpu", "IncrementTargetCountBy": 50},
        {"InstanceGroupName": "cpu", "IncrementTargetCountBy": 3, "InstanceTypes": ["ml.c5.xlarge"]},
    )
    req = normalise(rec)
    assert isinstance(req, LaunchRequest)
    assert [(i.instance_type, i.count, i.ref) for i in req.items] == [
        (None, 50, {"kind": "sagemaker_cluster_group", "cluster": "train", "group": "gpu", "added": True}),
        ("c5.xlarge", 3, None),
    ]


@pytest.mark.parametrize(
    "rec",
    [
        update_cluster(group("p5.48xlarge", 500)),  # no dot in a group name: nothing can pass for a type
        update_cluster(group("gpu", 500), cluster="ml.p5.48xlarge"),
        add_nodes({"InstanceGroupName": "gpu", "IncrementTargetCountBy": 5}, cluster=""),
    ],
)
def test_a_reference_to_a_group_no_cluster_can_have_is_malformed(rec: dict[str, Any]) -> None:
    """Malformed (the guard denies a rejected launch record: ``intake.malformed``), not Ignored."""
    with pytest.raises(InputError):
        normalise(rec)
    assert malformed_launch(rec, InputError("x")) is not None


def test_a_fleet_resize_is_one_reference_at_the_new_capacity() -> None:
    req = normalise(fleet_resize(500))
    assert isinstance(req, LaunchRequest)
    assert [(i.ref, i.count) for i in req.items] == [({"kind": "capacity_reservation_fleet", "id": CRF}, 500)]


# -- HyperPod through moto ------------------------------------------------------------------------------------
def test_update_cluster_resolves_to_the_groups_type_at_the_larger_count(sagemaker: Any, decide: Any) -> None:
    d = decide(update_cluster(group("gpu", 500)), AwsResolver(None, sagemaker=sagemaker))
    assert _typed(d) == [("p5.48xlarge", 500)] and d.effect == "deny"
    d = decide(update_cluster(group("gpu", 2)), AwsResolver(None, sagemaker=sagemaker))
    assert _typed(d) == [("p5.48xlarge", 8)]  # the described target count: the answer may be the new size


def test_added_nodes_resolve_at_the_increment(sagemaker: Any, decide: Any) -> None:
    rec = add_nodes({"InstanceGroupName": "gpu", "IncrementTargetCountBy": 5})
    d = decide(rec, AwsResolver(None, sagemaker=sagemaker))
    assert _typed(d) == [("p5.48xlarge", 5)] and d.effect == "deny"


def test_a_cpu_group_scaled_by_count_is_allowed(sagemaker: Any, decide: Any) -> None:
    d = decide(update_cluster(group("cpu", 40)), AwsResolver(None, sagemaker=sagemaker))
    assert _typed(d) == [("c5.xlarge", 40)] and d.effect == "allow"


@pytest.mark.parametrize(
    "rec",
    [
        update_cluster(group("gone", 5)),
        update_cluster(group("gpu", 5), cluster="other"),
        add_nodes({"InstanceGroupName": "gone", "IncrementTargetCountBy": 5}),
    ],
)
def test_a_group_or_cluster_sagemaker_does_not_return_fails_closed(
    sagemaker: Any, decide: Any, rec: dict[str, Any]
) -> None:
    d = decide(rec, AwsResolver(None, sagemaker=sagemaker))
    (item,) = d.request.items
    assert item.instance_type is None and item.ref.get("resolution_error") and _unresolved(d)


def test_without_a_sagemaker_client_the_group_stays_unresolved(decide: Any) -> None:
    d = decide(update_cluster(group("gpu", 5)), AwsResolver(None))
    assert "no SageMaker client" in d.request.items[0].ref["resolution_error"] and _unresolved(d)


def test_a_flexible_groups_types_are_alternatives(decide: Any) -> None:
    """``InstanceRequirements`` (current and desired types) and ``InstanceTypeDetails``: moto keeps no such
    group, so a stubbed answer."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    answer = {
        "ClusterArn": f"arn:aws:sagemaker:us-east-1:{CN}:cluster/abcdefghijkl",
        "ClusterName": "train",
        "ClusterStatus": "InService",
        "InstanceGroups": [
            {
                "InstanceGroupName": "gpu",
                "TargetCount": 4,
                "InstanceRequirements": {
                    "CurrentInstanceTypes": ["ml.c5.xlarge"],
                    "DesiredInstanceTypes": ["ml.c5.xlarge", "ml.p5.48xlarge"],
                },
                "InstanceTypeDetails": [{"InstanceType": "ml.g5.xlarge", "CurrentCount": 1}],
            }
        ],
    }
    with Stubber(client) as stub:
        stub.add_response("describe_cluster", answer, {"ClusterName": "train"})
        d = decide(update_cluster(group("gpu", 10)), AwsResolver(None, sagemaker=client))
        stub.assert_no_pending_responses()
    assert _typed(d) == [("c5.xlarge", 10), ("p5.48xlarge", 10), ("g5.xlarge", 10)]
    assert len({i.group for i in d.request.items}) == 1 and d.effect == "deny"


# -- capacity reservation fleets (Stubber) ------------------------------------------------------------------
@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ec2", region_name="us-east-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _fleet(*specs: dict[str, Any], total: int = 16) -> dict[str, Any]:
    return {
        "CapacityReservationFleets": [
            {
                "CapacityReservationFleetId": CRF,
                "TotalTargetCapacity": total,
                "InstanceTypeSpecifications": list(specs),
            }
        ]
    }


def test_a_fleet_resize_resolves_its_types_over_the_lightest_weight(ec2: Any, decide: Any) -> None:
    client, stub = ec2
    answer = _fleet(
        {"InstanceType": "p5.48xlarge", "Weight": 2.0}, {"InstanceType": "m5.large", "Weight": 0.5}
    )
    stub.add_response("describe_capacity_reservation_fleets", answer, {"CapacityReservationFleetIds": [CRF]})
    d = decide(fleet_resize(100), AwsResolver(client))
    assert _typed(d) == [("p5.48xlarge", 200), ("m5.large", 200)]  # 100 units / weight 0.5
    assert len({i.group for i in d.request.items}) == 1 and d.effect == "deny"


def test_a_fleet_resize_counts_the_described_capacity_when_larger(ec2: Any, decide: Any) -> None:
    client, stub = ec2
    stub.add_response(
        "describe_capacity_reservation_fleets",
        _fleet({"InstanceType": "c5.xlarge"}, total=64),
        {"CapacityReservationFleetIds": [CRF]},
    )
    d = decide(fleet_resize(10), AwsResolver(client))
    assert _typed(d) == [("c5.xlarge", 64)] and d.effect == "allow"


@pytest.mark.parametrize("answer", [{"CapacityReservationFleets": []}, _fleet()])
def test_a_fleet_not_found_or_naming_no_type_fails_closed(
    ec2: Any, decide: Any, answer: dict[str, Any]
) -> None:
    client, stub = ec2
    stub.add_response("describe_capacity_reservation_fleets", answer, {"CapacityReservationFleetIds": [CRF]})
    d = decide(fleet_resize(), AwsResolver(client))
    assert d.request.items[0].ref.get("resolution_error") and _unresolved(d)


def test_a_fleet_look_up_error_fails_closed(ec2: Any, decide: Any) -> None:
    client, stub = ec2
    stub.add_client_error(
        "describe_capacity_reservation_fleets", "UnauthorizedOperation", http_status_code=403
    )
    d = decide(fleet_resize(), AwsResolver(client))
    assert d.request.items[0].ref.get("resolution_error") == "UnauthorizedOperation" and _unresolved(d)


def test_a_denied_node_addition_names_the_cluster_the_guard_remediates() -> None:
    """BatchAddClusterNodes is a managed request like UpdateCluster: a deny scales the cluster down through
    the ``sagemaker:cluster`` family, not only an alert (nothing else stops nodes in SageMaker's account)."""
    from enforcer.managed.guard import is_managed

    req = normalise(add_nodes({"InstanceGroupName": "gpu", "IncrementTargetCountBy": 4}))
    assert isinstance(req, LaunchRequest)
    assert is_managed(req)
    assert req.extra["managed"] == {"kind": "sagemaker:cluster", "name": "train"}
