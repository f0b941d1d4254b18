"""Red team: buying more Capacity Block hours must be decided like buying the block.

``PurchaseCapacityBlockExtension`` (EC2 API reference, request parameters ``CapacityBlockExtensionOfferingId``
and ``CapacityReservationId``) keeps a p5 block running for days more. The guard answered "not a launch
call" while ``PurchaseCapacityBlock`` is decided (and denied outright by the SCP). SageMaker's
equivalent, ``CreateTrainingPlan``, is decided the same way (``tests/test_training_plans.py``).
"""

from __future__ import annotations

from typing import Any

from enforcer.intake import normalise
from enforcer.model import LaunchRequest
from enforcer.resolve import AwsResolver

RECORD: dict[str, Any] = {
    "eventVersion": "1.10",
    "userIdentity": {
        "type": "AssumedRole",
        "arn": "arn:aws:sts::111122223333:assumed-role/Dev/alice",
        "accountId": "111122223333",
    },
    "eventTime": "2025-03-01T11:00:00Z",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "PurchaseCapacityBlockExtension",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "203.0.113.7",
    "requestParameters": {
        "PurchaseCapacityBlockExtensionRequest": {
            "CapacityBlockExtensionOfferingId": "cbe-0123456789abcdef0",
            "CapacityReservationId": "cr-0123456789abcdef0",
        }
    },
    "responseElements": None,
    "eventID": "0c5a4d9e-1111-4222-8333-444455556666",
    "recipientAccountId": "111122223333",
}


class _Ec2:
    def describe_capacity_reservations(self, **kw: Any) -> dict[str, Any]:
        assert kw == {"CapacityReservationIds": ["cr-0123456789abcdef0"]}
        return {"CapacityReservations": [{"InstanceType": "p5.48xlarge", "TotalInstanceCount": 8}]}


def test_capacity_block_extension_is_a_launch_resolved_through_its_reservation() -> None:
    req = normalise(RECORD)
    assert isinstance(req, LaunchRequest), req
    assert [i.ref for i in req.items] == [{"kind": "capacity_reservation", "id": "cr-0123456789abcdef0"}]
    AwsResolver(_Ec2()).resolve(req)
    assert [(i.instance_type, i.count) for i in req.items] == [("p5.48xlarge", 8)]


def test_scp_denies_capacity_block_extensions_like_purchases() -> None:
    from enforcer.scp import generate_scps

    docs = generate_scps(["p5.48xlarge"])
    stmts = [s for d in docs for s in d["Statement"] if s.get("Sid") == "DenyCapacityBlocks"]
    assert stmts and "ec2:PurchaseCapacityBlockExtension" in stmts[0]["Action"]


def test_sagemaker_training_plan_purchase_is_decided() -> None:
    rec = {
        **RECORD,
        "eventSource": "sagemaker.amazonaws.com",
        "eventName": "CreateTrainingPlan",
        "requestParameters": {"TrainingPlanName": "tp", "TrainingPlanOfferingId": "tpo-0123456789abcdef"},
    }
    req = normalise(rec)
    assert isinstance(req, LaunchRequest), req
    assert [i.ref for i in req.items] == [{"kind": "sagemaker_training_plan", "name": "tp"}]
