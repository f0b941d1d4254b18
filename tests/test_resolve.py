"""AwsResolver against moto: launch templates, ASGs, fleets, launch configurations, instance ids, offerings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from enforcer.accounts import StaticAccountDirectory
from enforcer.chips import ChipCatalog
from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer
from enforcer.resolve import MAX_ITEMS, AwsResolver, RoutedResolver
from tests.lambda_env import MOTO_AMI

ACCOUNT = "123456789012"


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        asg = boto3.client("autoscaling", region_name="us-east-1")
        ami = ec2.describe_images(ImageIds=[MOTO_AMI])["Images"][0]["ImageId"]
        lt = ec2.create_launch_template(
            LaunchTemplateName="gpu", LaunchTemplateData={"InstanceType": "p4d.24xlarge", "ImageId": ami}
        )["LaunchTemplate"]
        ec2.create_launch_template_version(
            LaunchTemplateId=lt["LaunchTemplateId"],
            LaunchTemplateData={"InstanceType": "p5.48xlarge", "ImageId": ami},
        )
        yield {"ec2": ec2, "asg": asg, "ami": ami, "lt": lt["LaunchTemplateId"]}


def request(*refs: dict[str, Any], count: int = 1) -> LaunchRequest:
    items = [
        LaunchItem(instance_type=None, count=count, ref=dict(r), path=f"test[{i}]")
        for i, r in enumerate(refs)
    ]
    return LaunchRequest(
        source="cloudtrail", action="ec2:RunInstances", account_id=ACCOUNT, region="us-east-1", items=items
    )


def resolved(aws: dict[str, Any], *refs: dict[str, Any], **kw: Any) -> LaunchRequest:
    req = request(*refs)
    AwsResolver(aws["ec2"], aws["asg"], **kw).resolve(req)
    return req


@pytest.mark.parametrize(
    ("version", "expected"),
    [("$Latest", "p5.48xlarge"), ("$Default", "p4d.24xlarge"), ("1", "p4d.24xlarge"), ("2", "p5.48xlarge")],
)
def test_launch_template_versions(aws: dict[str, Any], version: str, expected: str) -> None:
    by_id = resolved(aws, {"kind": "launch_template", "id": aws["lt"], "version": version})
    by_name = resolved(aws, {"kind": "launch_template", "name": "gpu", "version": version})
    assert [i.instance_type for i in by_id.items] == [expected] == [i.instance_type for i in by_name.items]
    assert (
        by_id.items[0].ref is not None and by_id.items[0].ref["kind"] == "launch_template"
    )  # provenance kept


def test_missing_template_stays_unresolved_with_the_aws_error(aws: dict[str, Any]) -> None:
    req = resolved(aws, {"kind": "launch_template", "id": "lt-0123456789abcdef0", "version": "$Latest"})
    (item,) = req.items
    assert item.unresolved and item.ref is not None
    assert item.ref["resolution_error"] == "InvalidLaunchTemplateId.NotFound"


def _abis_template(aws: dict[str, Any], name: str, reqs: dict[str, Any]) -> str:
    base = {"VCpuCount": {"Min": 4}, "MemoryMiB": {"Min": 1024}}
    lt = aws["ec2"].create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": aws["ami"], "InstanceRequirements": {**base, **reqs}},
    )["LaunchTemplate"]
    return str(lt["LaunchTemplateId"])


def test_instance_requirements_admitting_accelerators_stay_unresolved(aws: dict[str, Any]) -> None:
    lt = _abis_template(aws, "abis", {"AcceleratorTypes": ["gpu"]})
    (item,) = resolved(aws, {"kind": "launch_template", "id": lt, "version": "$Latest"}).items
    assert item.unresolved and item.ref is not None
    assert item.ref["kind"] == "instance_requirements" and item.ref["accelerators_requested"] is True
    assert item.ref["launch_template"]["id"] == lt


def test_instance_requirements_naming_types_expand(aws: dict[str, Any]) -> None:
    lt = _abis_template(aws, "named", {"AllowedInstanceTypes": ["p5.48xlarge", "g6.xlarge"]})
    req = resolved(aws, {"kind": "launch_template", "id": lt, "version": "$Latest"})
    assert [i.instance_type for i in req.items] == ["p5.48xlarge", "g6.xlarge"]
    assert req.extra["alternatives"] is True


def test_wildcards_expand_only_against_known_types(aws: dict[str, Any]) -> None:
    ref = {
        "kind": "instance_requirements",
        "accelerators": True,
        "allowed_instance_types": ["p5*"],
        "excluded_instance_types": ["p5e*"],
    }
    (unknown,) = resolved(aws, ref).items
    assert unknown.unresolved and "wildcard" in unknown.ref["resolution_error"]  # type: ignore[index]
    known = ChipCatalog().known_types()
    req = resolved(aws, ref, known_types=known)
    assert sorted(i.instance_type or "" for i in req.items) == sorted(
        t for t in known if t.startswith("p5") and not t.startswith("p5e")
    )
    (too_many,) = resolved(
        aws, {**ref, "allowed_instance_types": ["*"], "excluded_instance_types": []}, known_types=known
    ).items
    assert too_many.unresolved and f"more than {MAX_ITEMS}" in too_many.ref["resolution_error"]  # type: ignore[index]


def test_asg_by_name_gives_one_item_per_override(aws: dict[str, Any]) -> None:
    aws["asg"].create_auto_scaling_group(
        AutoScalingGroupName="mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": aws["lt"], "Version": "1"},
                "Overrides": [{"InstanceType": "p5.48xlarge"}, {"InstanceType": "p5e.48xlarge"}],
            }
        },
        MinSize=0,
        MaxSize=1,
        AvailabilityZones=["us-east-1a"],
    )
    aws["asg"].create_auto_scaling_group(
        AutoScalingGroupName="plain",
        LaunchTemplate={"LaunchTemplateId": aws["lt"], "Version": "$Latest"},
        MinSize=0,
        MaxSize=1,
        AvailabilityZones=["us-east-1a"],
    )
    mixed = resolved(aws, {"kind": "auto_scaling_group", "name": "mixed"})
    plain = resolved(aws, {"kind": "auto_scaling_group", "name": "plain"})
    assert [i.instance_type for i in mixed.items] == ["p5.48xlarge", "p5e.48xlarge"]
    assert [i.instance_type for i in plain.items] == ["p5.48xlarge"]
    (missing,) = resolved(aws, {"kind": "auto_scaling_group", "name": "nope"}).items
    assert missing.unresolved


def test_launch_configuration_and_fleet(aws: dict[str, Any]) -> None:
    aws["asg"].create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=aws["ami"], InstanceType="g6e.xlarge"
    )
    fleet = aws["ec2"].create_fleet(
        Type="instant",
        LaunchTemplateConfigs=[
            {
                "LaunchTemplateSpecification": {"LaunchTemplateId": aws["lt"], "Version": "1"},
                "Overrides": [{"InstanceType": "p5en.48xlarge"}],
            }
        ],
        TargetCapacitySpecification={"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "on-demand"},
    )
    req = resolved(
        aws, {"kind": "launch_configuration", "name": "lc"}, {"kind": "fleet", "id": fleet["FleetId"]}
    )
    assert [i.instance_type for i in req.items] == ["g6e.xlarge", "p5en.48xlarge"]


class FlakyDescribe:
    """Fault injection moto cannot produce: the instance is invisible for the first ``misses`` calls."""

    def __init__(self, ec2: Any, misses: int) -> None:
        self.ec2, self.misses = ec2, misses

    def describe_instances(self, **kw: Any) -> Any:
        if self.misses > 0:
            self.misses -= 1
            raise ClientError(
                {"Error": {"Code": "InvalidInstanceID.NotFound", "Message": "eventual"}}, "DescribeInstances"
            )
        return self.ec2.describe_instances(**kw)


def test_instance_id_lookup_retries_while_not_visible(aws: dict[str, Any]) -> None:
    inst = aws["ec2"].run_instances(
        ImageId=aws["ami"],
        InstanceType="p5.48xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "gpu-attestation", "Value": "att-123"}]}
        ],
    )["Instances"][0]
    slept: list[float] = []
    req = request({"kind": "instance_id", "id": inst["InstanceId"]})
    AwsResolver(FlakyDescribe(aws["ec2"], 2), sleep=slept.append, backoff=0.1).resolve(req)
    assert [i.instance_type for i in req.items] == ["p5.48xlarge"]
    assert slept == [0.1, 0.2]
    assert req.attestation_ref == "att-123"  # carried by the instance's tag
    gone = request({"kind": "instance_id", "id": inst["InstanceId"]})
    AwsResolver(FlakyDescribe(aws["ec2"], 10), sleep=slept.append, attempts=3).resolve(gone)
    assert gone.items[0].unresolved and gone.items[0].ref["resolution_error"] == "InvalidInstanceID.NotFound"  # type: ignore[index]


def test_capacity_block_offering_unresolved_is_denied(aws: dict[str, Any], engine: Any) -> None:
    req = request({"kind": "capacity_block_offering", "id": "cb-0123456789abcdef0"})
    req.action = "ec2:PurchaseCapacityBlock"
    us = AccountOrigin(ACCOUNT, "US", "US", "US", kyc="verified")
    enforcer = Enforcer(ChipCatalog(), StaticAccountDirectory([us]), engine, resolver=AwsResolver(aws["ec2"]))

    decision = enforcer.decide(req)

    (item,) = decision.request.items
    assert item.unresolved and item.ref["resolution_error"] == "NotImplemented"  # type: ignore[index]
    assert decision.effect == "deny" and decision.reason_codes == ["REQUEST_UNRESOLVED"]


def test_routed_resolver_uses_the_request_account_and_survives_factory_errors(aws: dict[str, Any]) -> None:
    seen: list[tuple[str, str]] = []

    def factory(account: str, region: str) -> AwsResolver:
        seen.append((account, region))
        if account != ACCOUNT:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no role"}}, "AssumeRole")
        return AwsResolver(aws["ec2"])

    routed = RoutedResolver(factory)
    ok = request({"kind": "launch_template", "id": aws["lt"], "version": "1"})
    routed.resolve(ok)
    routed.resolve(request({"kind": "launch_template", "id": aws["lt"], "version": "2"}))
    other = request({"kind": "launch_template", "id": aws["lt"], "version": "1"})
    other.account_id = "999999999999"
    routed.resolve(other)
    assert ok.items[0].instance_type == "p4d.24xlarge"
    assert other.items[0].unresolved and other.items[0].ref["resolution_error"] == "AccessDenied"  # type: ignore[index]
    assert seen == [(ACCOUNT, "us-east-1"), (ACCOUNT, "us-east-1"), ("999999999999", "us-east-1")]


def test_a_fleets_target_capacity_counts_instances_at_its_lightest_weight() -> None:
    from enforcer.resolve import ResolutionError
    from enforcer.resolve.ec2 import instances_for

    cfg = [
        {"Overrides": [{"InstanceType": "p5.48xlarge", "WeightedCapacity": 0.25}, {"WeightedCapacity": 4}]}
    ]
    assert instances_for(16, cfg) == 64  # 16 units of 0.25 each: 64 instances
    assert instances_for(16, [{"Overrides": [{"WeightedCapacity": 8.0}]}]) == 16  # heavier: never fewer
    assert instances_for(3, [{"Overrides": [{"WeightedCapacity": 1e-9}]}]) == 1_000_000  # clamped
    for bad in (0, -1, float("nan"), "0.5", True):
        with pytest.raises(ResolutionError):
            instances_for(16, [{"Overrides": [{"WeightedCapacity": bad}]}])
