"""SageMaker training plans are decided like Capacity Blocks.

``CreateTrainingPlan`` (botocore model: ``TrainingPlanName``, ``TrainingPlanOfferingId``, ``Tags``) reserves
ml.p5/ml.trn2 capacity without naming a type: the plan is looked up (``DescribeTrainingPlan``, one item
per ``ReservedCapacitySummaries[]``). ``ExtendTrainingPlan`` names only ``TrainingPlanExtensionOfferingId``
and its response (``TrainingPlanExtensions[]``) names no plan: the plan is the one whose extension history
holds the offering, else the call fails closed. moto has no
``DescribeTrainingPlan``: the answers are botocore Stubber responses, validated against the model.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from enforcer.accounts import AccountOrigin, StaticAccountDirectory
from enforcer.intake import normalise
from enforcer.model import LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.resolve import AwsResolver
from enforcer.resolve.sagemaker import MAX_PLANS_SEARCHED
from enforcer.scp import generate_scps
from tests.lambda_env import MEMBER, REGION, World, load_event, world_factory

ACCOUNT = "111122223333"  # the fixtures' account
NOW = 1_796_083_200.0
PLAN = "llm-pretrain-q2"


def plan_answer(
    summaries: list[tuple[str, int]], name: str = PLAN, account: str = ACCOUNT, total: int | None = None
) -> dict[str, Any]:
    """A DescribeTrainingPlan answer with one reserved capacity per ``(type, count)``."""
    t = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    answer: dict[str, Any] = {
        "TrainingPlanArn": f"arn:aws:sagemaker:{REGION}:{account}:training-plan/{name}",
        "TrainingPlanName": name,
        "Status": "Scheduled",
        "DurationHours": 168,
        "StartTime": t,
        "EndTime": t + dt.timedelta(hours=168),
        "TotalInstanceCount": total if total is not None else sum(n for _, n in summaries),
        "TargetResources": ["training-job"],
        "ReservedCapacitySummaries": [
            {
                "ReservedCapacityArn": f"arn:aws:sagemaker:{REGION}:{account}:reserved-capacity/rc-{i}",
                "ReservedCapacityType": "Instance",
                "InstanceType": itype,
                "TotalInstanceCount": n,
                "Status": "Scheduled",
                "AvailabilityZone": "us-east-1a",
                "DurationHours": 168,
                "StartTime": t,
                "EndTime": t + dt.timedelta(hours=168),
            }
            for i, (itype, n) in enumerate(summaries)
        ],
    }
    return answer


def enforcer_for(engine: Any, catalog: Any, country: str, sm: Any) -> Enforcer:
    origin = AccountOrigin(ACCOUNT, country, country, country, "verified", None)
    resolver = AwsResolver(boto3.client("ec2", region_name=REGION), sagemaker=sm, attempts=1)
    return Enforcer(
        catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine, resolver=resolver
    )


def request(name: str) -> LaunchRequest:
    req = normalise(load_event(name))
    assert isinstance(req, LaunchRequest), req
    return req


@pytest.fixture
def sagemaker() -> Iterator[tuple[Any, Stubber]]:
    sm = boto3.client("sagemaker", region_name=REGION)
    with Stubber(sm) as stub:  # a call nobody queued fails the test
        yield sm, stub
        stub.assert_no_pending_responses()


# -- intake ---------------------------------------------------------------------------------------
def test_create_training_plan_is_a_reference_to_the_plan() -> None:
    req = request("cloudtrail_sagemaker_createtrainingplan.json")
    assert req.action == "sagemaker:CreateTrainingPlan"
    (item,) = req.items
    assert item.instance_type is None and item.count == 1
    assert item.ref == {"kind": "sagemaker_training_plan", "name": PLAN}
    assert item.path == "requestParameters.trainingPlanName"
    assert req.extra["training_plan_offering_id"] == "tpo-0a1b2c3d4e5f67890abcdef1234567890"
    assert req.attestation_ref == "7d4e2c1a-9b8f-4e6d-a5c3-2f1e0d9c8b7a"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("CreateTrainingPlan", {"trainingPlanOfferingId": "tpo-1"}, "expected a string"),
        ("CreateTrainingPlan", {"trainingPlanName": "x" * 65, "trainingPlanOfferingId": "tpo-1"}, "1..64"),
        ("CreateTrainingPlan", {"trainingPlanName": ["tp"]}, "expected a string"),
        ("ExtendTrainingPlan", {}, "expected a string"),
        ("ExtendTrainingPlan", {"trainingPlanExtensionOfferingId": "a\nb"}, "control characters"),
    ],
)
def test_malformed_training_plan_calls_are_input_errors(
    name: str, params: dict[str, Any], message: str
) -> None:
    from enforcer.model import InputError

    event = load_event("cloudtrail_sagemaker_createtrainingplan.json")
    event["detail"]["eventName"] = name
    event["detail"]["requestParameters"] = params
    with pytest.raises(InputError, match=message):
        normalise(event)


# -- resolver and pipeline ------------------------------------------------------------------------
def test_plan_of_h100s_is_denied_for_a_restricted_account(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber]
) -> None:
    sm, stub = sagemaker
    stub.add_response(
        "describe_training_plan", plan_answer([("ml.p5.48xlarge", 4)]), {"TrainingPlanName": PLAN}
    )
    req = request("cloudtrail_sagemaker_createtrainingplan.json")
    decision = enforcer_for(engine, catalog, "CN", sm).decide(req, now=NOW)
    assert [(i.instance_type, i.count) for i in req.items] == [("p5.48xlarge", 4)]
    assert decision.effect == "deny", decision.reasons
    assert "ORIGIN_RESTRICTED" in decision.reason_codes


def test_every_reserved_capacity_is_an_item(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber]
) -> None:
    sm, stub = sagemaker
    answer = plan_answer([("ml.trn2.48xlarge", 2), ("ml.p5.48xlarge", 8)])
    stub.add_response("describe_training_plan", answer, {"TrainingPlanName": PLAN})
    req = request("cloudtrail_sagemaker_createtrainingplan.json")
    AwsResolver(None, sagemaker=sm).resolve(req)
    assert [(i.instance_type, i.count) for i in req.items] == [("trn2.48xlarge", 2), ("p5.48xlarge", 8)]
    assert all(i.ref == {"kind": "sagemaker_training_plan", "name": PLAN} for i in req.items)
    # Reserved capacities add up (counted together, the conservative reading): not alternatives.
    assert all(i.group is None for i in req.items)
    assert "alternatives" not in req.extra


def test_a_plans_capacities_add_up_in_the_total_tpp(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber]
) -> None:
    """Split over two reserved capacities, a plan's TPP is the sum, so LARGE_COMPUTE sees all of it."""
    sm, stub = sagemaker
    one, two = (
        plan_answer([("ml.p5.48xlarge", 4)]),
        plan_answer([("ml.p5.48xlarge", 2), ("ml.p5.48xlarge", 2)]),
    )
    stub.add_response("describe_training_plan", one, {"TrainingPlanName": PLAN})
    stub.add_response("describe_training_plan", two, {"TrainingPlanName": PLAN})
    enforcer = enforcer_for(engine, catalog, "US", sm)
    whole, split = (
        request("cloudtrail_sagemaker_createtrainingplan.json"),
        request("cloudtrail_sagemaker_createtrainingplan.json"),
    )
    tpp = [enforcer.decide(r, now=NOW).input["request"]["total_tpp"] for r in (whole, split)]  # type: ignore[index]
    assert tpp[0] == tpp[1] > 0


class _Plan:
    """A SageMaker client whose answer the model would not allow (a summary without a count)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def describe_training_plan(self, **kw: Any) -> dict[str, Any]:
        assert kw == {"TrainingPlanName": PLAN}
        return self.answer


def test_a_summary_without_a_count_takes_the_plans() -> None:
    answer = plan_answer([("ml.p5.48xlarge", 4)], total=16)
    del answer["ReservedCapacitySummaries"][0]["TotalInstanceCount"]
    req = request("cloudtrail_sagemaker_createtrainingplan.json")
    AwsResolver(None, sagemaker=_Plan(answer)).resolve(req)
    assert [(i.instance_type, i.count) for i in req.items] == [("p5.48xlarge", 16)]


@pytest.mark.parametrize("country", ["CN", "US"])
def test_a_plan_without_reserved_capacity_fails_closed(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber], country: str
) -> None:
    sm, stub = sagemaker
    stub.add_response("describe_training_plan", plan_answer([]), {"TrainingPlanName": PLAN})
    req = request("cloudtrail_sagemaker_createtrainingplan.json")
    decision = enforcer_for(engine, catalog, country, sm).decide(req, now=NOW)
    assert decision.effect == "deny" and "REQUEST_UNRESOLVED" in decision.reason_codes
    assert "no reserved capacity" in req.items[0].ref["resolution_error"]  # type: ignore[index]


def test_an_unknown_plan_fails_closed(engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber]) -> None:
    sm, stub = sagemaker
    stub.add_client_error(
        "describe_training_plan",
        service_error_code="ResourceNotFound",
        service_message="Training plan not found",
        http_status_code=400,
        expected_params={"TrainingPlanName": PLAN},
    )
    req = request("cloudtrail_sagemaker_createtrainingplan.json")
    decision = enforcer_for(engine, catalog, "CN", sm).decide(req, now=NOW)
    assert decision.effect == "deny", decision.reasons
    assert "REQUEST_UNRESOLVED" in decision.reason_codes
    assert req.items[0].instance_type is None
    assert req.items[0].ref["resolution_error"] == "ResourceNotFound"  # type: ignore[index]


EXTENSION = "tpeo-0123456789abcdef0123456789abcdef"  # the extension fixture's offering


def queue_plans(stub: Stubber, histories: dict[str, list[str]]) -> None:
    """ListTrainingPlans answering ``histories``' plans (newest first), then each plan's extension history."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-plan/"
    summaries = [{"TrainingPlanArn": arn + n, "TrainingPlanName": n, "Status": "Active"} for n in histories]
    stub.add_response(
        "list_training_plans",
        {"TrainingPlanSummaries": summaries},
        {"SortBy": "StartTime", "SortOrder": "Descending", "MaxResults": MAX_PLANS_SEARCHED},
    )
    for name, offerings in histories.items():
        stub.add_response(
            "describe_training_plan_extension_history",
            {
                "TrainingPlanExtensions": [
                    {"TrainingPlanExtensionOfferingId": o, "Status": "Active"} for o in offerings
                ]
            },
            {"TrainingPlanArn": arn + name, "MaxResults": 100},
        )


def test_extension_is_resolved_through_the_plan_whose_history_holds_it(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber]
) -> None:
    sm, stub = sagemaker
    req = request("cloudtrail_sagemaker_extendtrainingplan.json")
    assert req.action == "sagemaker:ExtendTrainingPlan"
    (item,) = req.items
    assert item.ref == {"kind": "sagemaker_training_plan_extension", "id": EXTENSION}
    assert item.path == "requestParameters.trainingPlanExtensionOfferingId"
    queue_plans(stub, {"inference-pool": ["tpeo-other"], PLAN: ["tpeo-older", EXTENSION]})
    stub.add_response(
        "describe_training_plan", plan_answer([("ml.p5.48xlarge", 4)]), {"TrainingPlanName": PLAN}
    )
    decision = enforcer_for(engine, catalog, "CN", sm).decide(req, now=NOW)
    assert [(i.instance_type, i.count) for i in req.items] == [("p5.48xlarge", 4)]
    assert req.items[0].ref == {"kind": "sagemaker_training_plan", "name": PLAN, "extension": EXTENSION}
    assert decision.effect == "deny", decision.reasons
    assert "ORIGIN_RESTRICTED" in decision.reason_codes


@pytest.mark.parametrize("histories", [{}, {"inference-pool": ["tpeo-other"]}])
def test_extension_of_no_plan_found_fails_closed(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber], histories: dict[str, list[str]]
) -> None:
    sm, stub = sagemaker
    queue_plans(stub, histories)
    req = request("cloudtrail_sagemaker_extendtrainingplan.json")
    decision = enforcer_for(engine, catalog, "CN", sm).decide(req, now=NOW)
    assert decision.effect == "deny", decision.reasons
    assert "REQUEST_UNRESOLVED" in decision.reason_codes
    assert "not in the history" in req.items[0].ref["resolution_error"]  # type: ignore[index]


def test_extension_without_list_permission_fails_closed(
    engine: Any, catalog: Any, sagemaker: tuple[Any, Stubber]
) -> None:
    sm, stub = sagemaker
    stub.add_client_error(
        "list_training_plans", service_error_code="AccessDeniedException", http_status_code=400
    )
    req = request("cloudtrail_sagemaker_extendtrainingplan.json")
    decision = enforcer_for(engine, catalog, "CN", sm).decide(req, now=NOW)
    assert decision.effect == "deny" and "REQUEST_UNRESOLVED" in decision.reason_codes
    assert req.items[0].ref["resolution_error"] == "AccessDeniedException"  # type: ignore[index]


# -- SCP and guard --------------------------------------------------------------------------------
def test_scp_denies_training_plans_outright_to_all_but_the_broker() -> None:
    docs = generate_scps(["p5.48xlarge"], broker_role="Broker")
    (st,) = [s for d in docs for s in d["Statement"] if s["Sid"] == "DenyTrainingPlans"]
    assert st["Action"] == ["sagemaker:CreateTrainingPlan", "sagemaker:ExtendTrainingPlan"]
    assert st["Resource"] == "*"
    assert st["Condition"] == {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Broker"}}


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


def test_guard_audits_and_alerts_a_denied_plan_it_cannot_cancel(make_world: Any) -> None:
    """No API cancels a training plan: like a denied Capacity Block purchase, the guard records the deny,
    finds no instance to act on (``no_target``) and alerts."""
    w: World = make_world()
    sm = boto3.client("sagemaker", region_name=REGION)
    event = copy.deepcopy(load_event("cloudtrail_sagemaker_createtrainingplan.json"))
    event["account"] = event["detail"]["recipientAccountId"] = MEMBER
    event["detail"]["userIdentity"]["accountId"] = MEMBER
    with Stubber(sm) as stub:
        answer = plan_answer([("ml.p5.48xlarge", 4)], account=MEMBER)
        stub.add_response("describe_training_plan", answer, {"TrainingPlanName": PLAN})
        w.rt.guard.enforcer.resolver = AwsResolver(w.client("ec2", MEMBER), sagemaker=sm, attempts=1)
        (r,) = w.rt.guard.handle(event, w.rt.budget(), NOW)["results"]
        stub.assert_no_pending_responses()
    assert r["effect"] == "deny" and "ORIGIN_RESTRICTED" in r["reasons"], r
    assert r["remediation"]["status"] == "no_target" and r["remediation"]["notified"] is True
    assert w.audit_count() == 1
    (note,) = w.notifications()
    assert note["decision_id"] == r["decision_id"]
