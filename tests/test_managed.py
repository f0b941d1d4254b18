"""Managed compute beyond EC2: SageMaker state changes, the managed sweep, and remediation per family.

moto runs SageMaker endpoints, endpoint configs and notebooks; it finishes jobs at once, has no
StopTrainingJob/StopProcessingJob/StopTransformJob, UpdateCluster, Studio apps, AppStream, Deadline
Cloud, WorkSpaces fleets or Lambda capacity providers. Those are tested with botocore's Stubber:
every queued response is validated against the service model, every call's parameters too, and a
call nobody queued fails the test (so "no remediation call" is asserted, not assumed).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from enforcer.actions import Budget
from enforcer.managed.fleets import appstream_type, workspaces_type
from enforcer.managed.guard import ManagedGuard
from enforcer.managed.registry import FAMILIES
from tests.lambda_env import HOME, MEMBER, REGION, World, cloudtrail, load_event, world_factory

NOW = 1_796_000_000.0
ROLE = "arn:aws:iam::111111111111:role/sm"


@pytest.fixture
def make_world(engine: Any) -> Iterator[Callable[..., World]]:
    yield from world_factory(engine)


class Overlay:
    """Stubbed clients for some services, the world's (moto) clients for the rest."""

    def __init__(self, world: World, stubbed: dict[str, Any]) -> None:
        self.world = world
        self.stubbed = stubbed
        self.asked: list[tuple[str, str | None]] = []

    def client(
        self, service: str, account_id: str | None = None, region: str | None = None, role: str | None = None
    ) -> Any:
        self.asked.append((service, account_id))
        if service in self.stubbed:
            return self.stubbed[service]
        return self.world.clients.client(service, account_id, region, role)


def stubbed(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stub = Stubber(client)
    stub.activate()
    return client, stub


def guard(w: World, clients: Any, **kw: Any) -> ManagedGuard:
    return ManagedGuard(w.rt.enforcer, w.rt.remediator, clients, **kw)


def at(event: dict[str, Any], account: str) -> dict[str, Any]:
    ev = copy.deepcopy(event)
    ev["account"] = account
    ev["id"] = f"{ev['id'][:24]}{account}"
    return ev


def training_description(
    name: str, itype: str = "ml.p5.48xlarge", status: str = "InProgress"
) -> dict[str, Any]:
    t = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{MEMBER}:training-job/{name}",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m"},
        "TrainingJobStatus": status,
        "SecondaryStatus": "Training",
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
        "ResourceConfig": {"InstanceType": itype, "InstanceCount": 2, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": t,
    }


# -- SageMaker state changes -----------------------------------------------------------------------------
def test_training_job_of_cn_account_is_stopped_us_one_runs(make_world: Any) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    event = load_event("sagemaker_training_state_change.json")
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "llm-pretrain-0301"})

    denied = g.handle(at(event, MEMBER), w.rt.budget(), NOW)
    allowed = g.handle(at(event, HOME), w.rt.budget(), NOW)  # no call queued: a stop would fail the test

    stub.assert_no_pending_responses()
    (d,) = denied["results"]
    assert d["effect"] == "deny" and "ORIGIN_RESTRICTED" in d["reasons"]
    assert d["remediation"]["status"] == "stopped"
    assert d["remediation"]["acted"] == ["sagemaker:training-job/llm-pretrain-0301"]
    assert allowed["results"][0]["effect"] == "allow"
    assert allowed["results"][0]["remediation"]["status"] == "allowed"
    (note,) = w.notifications()
    assert note["remediation"]["status"] == "stopped" and note["account_id"] == MEMBER


def test_redelivered_event_is_not_acted_on_twice(make_world: Any) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    event = at(load_event("sagemaker_training_state_change.json"), MEMBER)
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "llm-pretrain-0301"})
    first = g.handle(event, w.rt.budget(), NOW)
    second = g.handle(event, w.rt.budget(), NOW)
    assert first["results"][0]["remediation"]["status"] == "stopped"
    assert second["results"][0]["duplicate"] is True
    assert second["results"][0]["remediation"]["status"] == "duplicate"


def test_event_without_instance_type_is_described_first(make_world: Any) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    event = at(load_event("sagemaker_training_state_change_no_resources.json"), MEMBER)
    stub.add_response(
        "describe_training_job",
        training_description("UnitTestTrainingJob", "ml.p4d.24xlarge"),
        {"TrainingJobName": "UnitTestTrainingJob"},
    )
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "UnitTestTrainingJob"})
    (r,) = g.handle(event, w.rt.budget(), NOW)["results"]
    stub.assert_no_pending_responses()
    assert r["effect"] == "deny" and r["remediation"]["status"] == "stopped"


def test_unresolvable_resource_is_denied_not_dropped(make_world: Any) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    event = at(load_event("sagemaker_training_state_change_no_resources.json"), HOME)  # a US account
    stub.add_client_error("describe_training_job", "AccessDeniedException", http_status_code=400)
    stub.add_client_error("stop_training_job", "AccessDeniedException", http_status_code=400)
    (r,) = g.handle(event, w.rt.budget(), NOW)["results"]
    assert r["effect"] == "deny", r  # an unknown type is a controlled item: fail closed
    assert r["remediation"]["status"] == "failed"
    assert any("describe failed: AccessDeniedException" in e for e in r["remediation"]["errors"])


@pytest.mark.parametrize(
    ("fixture", "op", "params"),
    [
        ("sagemaker_transform_state_change.json", "stop_transform_job", {"TransformJobName": "myjob"}),
        (
            "sagemaker_processing_state_change.json",
            "stop_processing_job",
            {"ProcessingJobName": "feature-build"},
        ),
        (
            "sagemaker_notebook_state_change.json",
            "stop_notebook_instance",
            {"NotebookInstanceName": "BasicNotebookInstance-x4CC6ZFJzqJJ"},
        ),
    ],
)
def test_each_job_kind_has_its_stop_call(
    make_world: Any, fixture: str, op: str, params: dict[str, Any]
) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    stub.add_response(op, {}, params)
    event = at(load_event(fixture), MEMBER)
    item_type = g.handle(event, w.rt.budget(), NOW)["results"][0]
    stub.assert_no_pending_responses()
    if item_type["effect"] == "deny":
        assert item_type["remediation"]["status"] == "stopped"
    else:  # g5 (A10G) is not a controlled chip: then nothing may be stopped
        pytest.fail(f"{fixture}: expected a deny for a CN account, got {item_type}")


def test_endpoint_state_change_is_described_in_moto(make_world: Any) -> None:
    """The SageMaker guide's endpoint event names no type: the endpoint config (moto) supplies it."""
    w: World = make_world()
    sm = w.client("sagemaker", MEMBER)
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    sm.create_endpoint_config(  # moto knows no controlled endpoint type: a V100 one is decided, and allowed
        EndpointConfigName="MyEndpointConfig",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 2, "InstanceType": "ml.p3.2xlarge"}
        ],
    )
    sm.create_endpoint(EndpointName="MyEndpoint", EndpointConfigName="MyEndpointConfig")
    event = load_event("sagemaker_endpoint_state_change.json")
    event["account"], event["region"] = MEMBER, REGION
    (r,) = guard(w, w.clients).handle(event, w.rt.budget(), NOW)["results"]
    assert (r["effect"], r["remediation"]["status"]) == ("allow", "allowed"), r
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["MyEndpoint"]


def test_endpoint_with_controlled_variant_is_deleted(make_world: Any) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    t = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    endpoint = {
        "EndpointName": "MyEndpoint",
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{MEMBER}:endpoint/myendpoint",
        "EndpointConfigName": "MyEndpointConfig",
        "EndpointStatus": "InService",
        "CreationTime": t,
        "LastModifiedTime": t,
        "ProductionVariants": [{"VariantName": "v", "CurrentInstanceCount": 3}],
    }
    config = {
        "EndpointConfigName": "MyEndpointConfig",
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{MEMBER}:endpoint-config/myendpointconfig",
        "CreationTime": t,
        "ProductionVariants": [
            {
                "VariantName": "v",
                "ModelName": "m",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.p5.48xlarge",
            },
            {
                "VariantName": "sl",
                "ModelName": "m",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
            },
        ],
    }
    stub.add_response("describe_endpoint", endpoint, {"EndpointName": "MyEndpoint"})
    stub.add_response("describe_endpoint_config", config, {"EndpointConfigName": "MyEndpointConfig"})
    stub.add_response("delete_endpoint", {}, {"EndpointName": "MyEndpoint"})
    event = load_event("sagemaker_endpoint_state_change.json")
    event["account"], event["region"] = MEMBER, REGION
    (r,) = guard(w, Overlay(w, {"sagemaker": sm})).handle(event, w.rt.budget(), NOW)["results"]
    stub.assert_no_pending_responses()
    assert (r["effect"], r["remediation"]["status"]) == ("deny", "deleted"), r


class Split:
    """A moto client, except for the operations moto lacks, which go to a Stubber-checked client."""

    def __init__(self, moto_client: Any, stub_client: Any, ops: set[str]) -> None:
        self.moto_client, self.stub_client, self.ops = moto_client, stub_client, ops

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stub_client if name in self.ops else self.moto_client, name)


def hyperpod(w: World, account: str = MEMBER) -> tuple[Any, dict[str, Any]]:
    sm = w.client("sagemaker", account)
    group = {
        "InstanceCount": 4,
        "InstanceGroupName": "workers",
        "InstanceType": "ml.p5.48xlarge",
        "LifeCycleConfig": {"SourceS3Uri": "s3://sagemaker-lifecycle/x", "OnCreate": "on_create.sh"},
        "ExecutionRole": ROLE,
        "ThreadsPerCore": 1,
    }
    sm.create_cluster(ClusterName="sample-cluster", InstanceGroups=[group])
    return sm, group


def test_hyperpod_cluster_described_in_moto_and_scaled_to_zero(make_world: Any) -> None:
    """The state-change event carries no groups: moto's DescribeCluster gives p5 x 4; UpdateCluster
    (not in moto) is checked against the model, every group's specification kept, count 0."""
    w: World = make_world()
    sm, group = hyperpod(w)
    stub_client, stub = stubbed("sagemaker")
    arn = sm.describe_cluster(ClusterName="sample-cluster")["ClusterArn"]
    stub.add_response(
        "update_cluster",
        {"ClusterArn": arn},
        {"ClusterName": "sample-cluster", "InstanceGroups": [{**group, "InstanceCount": 0}]},
    )
    event = load_event("sagemaker_hyperpod_state_change.json")
    event["account"], event["region"] = MEMBER, REGION
    g = guard(w, Overlay(w, {"sagemaker": Split(sm, stub_client, {"update_cluster"})}))
    (r,) = g.handle(event, w.rt.budget(), NOW)["results"]
    stub.assert_no_pending_responses()
    assert (r["effect"], r["remediation"]["status"]) == ("deny", "scaled_to_zero"), r


def test_dryrun_does_not_act(make_world: Any) -> None:
    w: World = make_world(ENFORCER_MODE="dryrun")
    sm, _stub = stubbed("sagemaker")  # nothing queued: any call would fail the test
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    event = at(load_event("sagemaker_training_state_change.json"), MEMBER)
    (r,) = g.handle(event, w.rt.budget(), NOW)["results"]
    assert (r["effect"], r["remediation"]["status"]) == ("deny", "would_deny")
    assert w.notifications() == []


def test_blast_radius_cap_alerts_instead(make_world: Any) -> None:
    """A deny that is not a legal prohibition (an account the directory does not know) is capped by the
    budget, counted in instances (2 x p5 here); ORIGIN_RESTRICTED is never capped, as for EC2."""
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    unknown = at(load_event("sagemaker_training_state_change.json"), "222222222222")
    (r,) = g.handle(unknown, Budget(1), NOW)["results"]
    assert r["effect"] == "deny" and "ORIGIN_RESTRICTED" not in r["reasons"], r
    assert r["remediation"]["status"] == "capped" and r["remediation"]["notified"] is True
    assert w.notifications()[0]["remediation"]["capped"] == ["sagemaker:training-job/llm-pretrain-0301"]
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "llm-pretrain-0301"})
    (legal,) = g.handle(at(load_event("sagemaker_training_state_change.json"), MEMBER), Budget(0), NOW)[
        "results"
    ]
    assert "ORIGIN_RESTRICTED" in legal["reasons"] and legal["remediation"]["status"] == "stopped"


def test_cloudtrail_create_training_job_stops_the_named_job(make_world: Any) -> None:
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    g = guard(w, Overlay(w, {"sagemaker": sm}))
    ct = load_event("cloudtrail_sagemaker_training.json")["detail"]
    event = cloudtrail(
        "CreateTrainingJob",
        MEMBER,
        ct["requestParameters"],
        ct.get("responseElements"),
        source="sagemaker.amazonaws.com",
    )
    stub.add_response(
        "stop_training_job", {}, {"TrainingJobName": ct["requestParameters"]["trainingJobName"]}
    )
    (r,) = g.handle(event, w.rt.budget(), NOW)["results"]
    stub.assert_no_pending_responses()
    assert r["effect"] == "deny" and r["remediation"]["status"] == "stopped"


# -- the sweep -----------------------------------------------------------------------------------------
def _stub_other_fleets(stubs: dict[str, Stubber]) -> None:
    """Recorded answers of the fleets moto does not run: one GPU fleet each, and their remediation."""
    t = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    stubs["appstream"].add_response(
        "describe_fleets",
        {
            "Fleets": [
                {
                    "Arn": f"arn:aws:appstream:{REGION}:{MEMBER}:fleet/render",
                    "Name": "render",
                    "InstanceType": "stream.graphics.g6.2xlarge",
                    "ComputeCapacityStatus": {"Desired": 4, "Running": 4},
                    "State": "RUNNING",
                    "CreatedTime": t,
                },
                {
                    "Arn": f"arn:aws:appstream:{REGION}:{MEMBER}:fleet/office",
                    "Name": "office",
                    "InstanceType": "stream.standard.medium",
                    "ComputeCapacityStatus": {"Desired": 2},
                    "State": "RUNNING",
                },
            ]
        },
    )
    stubs["appstream"].add_response(
        "describe_image_builders",
        {
            "ImageBuilders": [
                {"Name": "golden", "InstanceType": "stream.graphics.g6.4xlarge", "State": "RUNNING"},
                {"Name": "old", "InstanceType": "stream.graphics.g6.4xlarge", "State": "STOPPED"},
            ]
        },
    )
    # the sweep lists every family first, then decides and remediates in order
    stubs["appstream"].add_response("stop_fleet", {}, {"Name": "render"})
    stubs["appstream"].add_response("stop_image_builder", {}, {"Name": "golden"})
    stubs["deadline"].add_response(
        "list_farms",
        {
            "farms": [
                {
                    "farmId": "farm-0123456789abcdef0123456789abcdef",
                    "displayName": "f",
                    "createdAt": t,
                    "createdBy": "u",
                }
            ]
        },
    )
    stubs["deadline"].add_response(
        "list_fleets",
        {
            "fleets": [
                {
                    "fleetId": "fleet-0123456789abcdef0123456789abcdef",
                    "farmId": "farm-0123456789abcdef0123456789abcdef",
                    "displayName": "gpu",
                    "status": "ACTIVE",
                    "workerCount": 3,
                    "minWorkerCount": 0,
                    "maxWorkerCount": 10,
                    "configuration": {
                        "serviceManagedEc2": {
                            "instanceCapabilities": {
                                "vCpuCount": {"min": 4},
                                "memoryMiB": {"min": 16384},
                                "osFamily": "LINUX",
                                "cpuArchitectureType": "x86_64",
                                "acceleratorCapabilities": {"selections": [{"name": "l40s"}]},
                            },
                            "instanceMarketOptions": {"type": "on-demand"},
                        }
                    },
                    "createdAt": t,
                    "createdBy": "u",
                }
            ]
        },
        {"farmId": "farm-0123456789abcdef0123456789abcdef"},
    )
    fleet = {
        "fleetId": "fleet-0123456789abcdef0123456789abcdef",
        "farmId": "farm-0123456789abcdef0123456789abcdef",
        "displayName": "gpu",
        "status": "ACTIVE",
        "workerCount": 3,
        "minWorkerCount": 0,
        "maxWorkerCount": 10,
        "roleArn": "arn:aws:iam::111111111111:role/deadline",
        "configuration": {
            "serviceManagedEc2": {
                "instanceCapabilities": {
                    "vCpuCount": {"min": 4},
                    "memoryMiB": {"min": 16384},
                    "osFamily": "LINUX",
                    "cpuArchitectureType": "x86_64",
                    "acceleratorCapabilities": {"selections": [{"name": "l40s"}]},
                },
                "instanceMarketOptions": {"type": "on-demand"},
            }
        },
        "createdAt": t,
        "createdBy": "u",
    }
    stubs["deadline"].add_response(
        "get_fleet", fleet, {"farmId": fleet["farmId"], "fleetId": fleet["fleetId"]}
    )
    stubs["deadline"].add_response(
        "update_fleet",
        {},
        {"farmId": fleet["farmId"], "fleetId": fleet["fleetId"], "minWorkerCount": 0, "maxWorkerCount": 0},
    )
    stubs["workspaces"].add_response(
        "describe_workspaces",
        {
            "Workspaces": [
                {
                    "WorkspaceId": "ws-0123456789",
                    "State": "AVAILABLE",
                    "WorkspaceProperties": {
                        "RunningMode": "AUTO_STOP",
                        "ComputeTypeName": "GRAPHICS_G6_4XLARGE",
                    },
                },
                {
                    "WorkspaceId": "ws-9876543210",
                    "State": "AVAILABLE",
                    "WorkspaceProperties": {"RunningMode": "ALWAYS_ON", "ComputeTypeName": "STANDARD"},
                },
            ]
        },
    )
    stubs["workspaces"].add_response(
        "stop_workspaces",
        {"FailedRequests": []},
        {"StopWorkspaceRequests": [{"WorkspaceId": "ws-0123456789"}]},
    )
    stubs["codebuild"].add_response(
        "list_fleets", {"fleets": [f"arn:aws:codebuild:{REGION}:{MEMBER}:fleet/gpu:1"]}
    )
    stubs["codebuild"].add_response(
        "batch_get_fleets",
        {
            "fleets": [
                {
                    "arn": f"arn:aws:codebuild:{REGION}:{MEMBER}:fleet/gpu:1",
                    "name": "gpu",
                    "baseCapacity": 2,
                    "environmentType": "LINUX_EC2",
                    "computeType": "CUSTOM_INSTANCE_TYPE",
                    "computeConfiguration": {"instanceType": "p5.48xlarge"},
                }
            ]
        },
    )
    stubs["braket"].add_response(
        "search_jobs",
        {
            "jobs": [
                {
                    "status": "RUNNING",
                    "jobArn": f"arn:aws:braket:{REGION}:{MEMBER}:job/qaoa-hybrid",
                    "jobName": "qaoa-hybrid",
                    "device": "arn:aws:braket:::device/quantum-simulator/amazon/sv1",
                    "createdAt": t,
                }
            ]
        },
    )
    stubs["braket"].add_response(
        "get_job",
        {
            "status": "RUNNING",
            "jobArn": f"arn:aws:braket:{REGION}:{MEMBER}:job/qaoa-hybrid",
            "jobName": "qaoa-hybrid",
            "roleArn": "arn:aws:iam::111111111111:role/braket",
            "algorithmSpecification": {"containerImage": {"uri": "img"}},
            "outputDataConfig": {"s3Path": "s3://b/o"},
            "instanceConfig": {"instanceType": "ml.p4d.24xlarge", "instanceCount": 2, "volumeSizeInGb": 30},
            "createdAt": t,
        },
        {"jobArn": f"arn:aws:braket:{REGION}:{MEMBER}:job/qaoa-hybrid"},
    )
    stubs["braket"].add_response(
        "cancel_job",
        {"jobArn": f"arn:aws:braket:{REGION}:{MEMBER}:job/qaoa-hybrid", "cancellationStatus": "CANCELLING"},
        {"jobArn": f"arn:aws:braket:{REGION}:{MEMBER}:job/qaoa-hybrid"},
    )
    stubs["lambda"].add_response(
        "list_capacity_providers",
        {
            "CapacityProviders": [
                {
                    "CapacityProviderArn": f"arn:aws:lambda:{REGION}:{MEMBER}:capacity-provider:infer",
                    "State": "Active",
                    "VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
                    "PermissionsConfig": {
                        "CapacityProviderOperatorRoleArn": "arn:aws:iam::111111111111:role/op"
                    },
                    "InstanceRequirements": {"AllowedInstanceTypes": ["g6e.xlarge", "m7i.large"]},
                }
            ]
        },
    )


def test_sweep_decides_every_family_and_remediates(make_world: Any) -> None:
    """SageMaker from moto (HyperPod, endpoint, notebook), the other fleets from recorded answers."""
    w: World = make_world()
    sm, group = hyperpod(w)
    sm.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    sm.create_endpoint_config(
        EndpointConfigName="ec",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.p3.8xlarge"}
        ],
    )
    sm.create_endpoint(EndpointName="chat", EndpointConfigName="ec")
    sm.create_notebook_instance(NotebookInstanceName="cpu-nb", InstanceType="ml.t3.medium", RoleArn=ROLE)
    services = ("appstream", "deadline", "workspaces", "codebuild", "lambda", "braket", "sagemaker")
    clients = {s: stubbed(s) for s in services}
    _stub_other_fleets({s: st for s, (_c, st) in clients.items()})
    clients["sagemaker"][1].add_response(
        "update_cluster",
        {"ClusterArn": sm.describe_cluster(ClusterName="sample-cluster")["ClusterArn"]},
        {"ClusterName": "sample-cluster", "InstanceGroups": [{**group, "InstanceCount": 0}]},
    )
    overlay = {s: c for s, (c, _st) in clients.items()}
    overlay["sagemaker"] = Split(sm, overlay["sagemaker"], {"update_cluster"})
    g = guard(w, Overlay(w, overlay), sweep_accounts=(MEMBER,), sweep_regions=(REGION,))
    g.sweep_workers = 1  # Stubber answers in the order calls come: list one family after the other

    out = g.handle(load_event("scheduled_sweep.json"), Budget(100), NOW)
    for _c, st in clients.values():
        st.assert_no_pending_responses()
    by_kind = {
        r["remediation"]["targets"][0].split("/")[0]: r for r in out["results"] if r["remediation"]["targets"]
    }
    assert by_kind["sagemaker:cluster"]["remediation"]["status"] == "scaled_to_zero"
    assert by_kind["appstream:fleet"]["remediation"]["status"] == "stopped"
    assert by_kind["deadline:fleet"]["remediation"]["status"] == "scaled_to_zero"
    assert by_kind["workspaces:workspace"]["remediation"]["status"] == "stopped"
    assert by_kind["codebuild:fleet"]["remediation"]["status"] == "alerted"  # no scale-to-zero call exists
    assert by_kind["lambda:capacity-provider"]["remediation"]["status"] == "alerted"
    assert by_kind["braket:job"]["remediation"]["status"] == "stopped"
    assert by_kind["appstream:image-builder"]["remediation"]["status"] == "stopped"
    assert all(r["effect"] == "deny" for r in by_kind.values())
    assert "sagemaker:notebook-instance" not in by_kind  # ml.t3.medium: no accelerator, not decided
    assert "sagemaker:endpoint" not in by_kind  # moto's endpoint types carry no controlled chip
    assert out["managed_errors"] == [f"{MEMBER}/{REGION}/sagemaker:app: NotImplemented"]  # moto: no ListApps


def test_sweep_reports_a_family_it_cannot_list(make_world: Any) -> None:
    w: World = make_world()
    ops = {
        "appstream": "describe_fleets",
        "deadline": "list_farms",
        "workspaces": "describe_workspaces",
        "codebuild": "list_fleets",
        "lambda": "list_capacity_providers",
        "braket": "search_jobs",
    }
    clients = {s: stubbed(s) for s in ops}
    for s, op in ops.items():
        clients[s][1].add_client_error(
            op, "AccessDeniedException" if s == "appstream" else "ThrottlingException"
        )
    g = guard(
        w,
        Overlay(w, {s: c for s, (c, _st) in clients.items()}),
        sweep_accounts=(MEMBER,),
        sweep_regions=(REGION,),
    )
    out = g.handle(load_event("scheduled_sweep.json"), Budget(100), NOW)
    assert f"{MEMBER}/{REGION}/appstream:fleet: AccessDeniedException" in out["managed_errors"]
    assert f"{MEMBER}/{REGION}/lambda:capacity-provider: ThrottlingException" in out["managed_errors"]


# -- remediation calls recorded against the model ---------------------------------------------------------
def test_studio_app_is_deleted_and_workspace_refusal_is_reported(make_world: Any) -> None:
    from enforcer.managed.registry import ManagedResource

    sm, stub = stubbed("sagemaker")
    stub.add_response(
        "list_apps",
        {
            "Apps": [
                {
                    "DomainId": "d-abc",
                    "SpaceName": "s1",
                    "AppType": "JupyterLab",
                    "AppName": "default",
                    "Status": "InService",
                    "ResourceSpec": {"InstanceType": "ml.p4d.24xlarge"},
                },
                {
                    "DomainId": "d-abc",
                    "UserProfileName": "u",
                    "AppType": "JupyterServer",
                    "AppName": "default",
                    "Status": "InService",
                },
                {  # Studio's default apps run on "system": no instance of their own, never decided
                    "DomainId": "d-abc",
                    "UserProfileName": "u",
                    "AppType": "KernelGateway",
                    "AppName": "datascience-1-0-ml-t3-medium",
                    "Status": "InService",
                    "ResourceSpec": {"InstanceType": "system"},
                },
            ]
        },
    )
    (app,) = list(FAMILIES["sagemaker:app"].sweep(sm, 10))
    assert app.items == [("p4d.24xlarge", 1)]
    stub.add_response(
        "delete_app",
        {},
        {"DomainId": "d-abc", "AppType": "JupyterLab", "AppName": "default", "SpaceName": "s1"},
    )
    assert FAMILIES["sagemaker:app"].remediate(sm, app) == "deleted"  # type: ignore[misc]
    ws, wstub = stubbed("workspaces")
    wstub.add_response(
        "stop_workspaces",
        {
            "FailedRequests": [
                {"WorkspaceId": "ws-1", "ErrorCode": "InvalidResourceState.AlwaysOn", "ErrorMessage": "x"}
            ]
        },
    )
    with pytest.raises(RuntimeError, match="AlwaysOn"):
        FAMILIES["workspaces:workspace"].remediate(ws, ManagedResource("workspaces:workspace", "ws-1"))  # type: ignore[misc]


# -- names from the service models ---------------------------------------------------------------------
def test_every_workspaces_graphics_compute_type_maps_to_an_instance_type() -> None:
    model = botocore.session.get_session().get_service_model("workspaces")
    values = model.shape_for("Compute").enum
    for value in values:
        mapped = workspaces_type(value)
        assert (mapped is None) == ("GRAPHICS" not in value), value
    assert workspaces_type("GRAPHICS_G6_4XLARGE") == "g6.4xlarge"
    assert workspaces_type("GRAPHICSPRO_G4DN") == "g4dn.16xlarge"
    assert workspaces_type("GRAPHICS_GR6F_4XLARGE") == "gr6f.4xlarge"


def test_appstream_names() -> None:
    assert appstream_type("stream.graphics.g5.2xlarge") == "g5.2xlarge"
    assert appstream_type("stream.graphics.g6.48xlarge") == "g6.48xlarge"
    assert appstream_type("stream.graphics-pro.4xlarge") == "g3.4xlarge"
    assert (
        appstream_type("stream.graphics-design.large") == "stream.graphics-design.large"
    )  # unknown: controlled
    assert appstream_type("stream.standard.medium") is None


def test_every_family_names_its_remedy() -> None:
    assert {f.kind for f in FAMILIES.values()} >= {
        "sagemaker:training-job",
        "sagemaker:processing-job",
        "sagemaker:transform-job",
        "sagemaker:endpoint",
        "sagemaker:notebook-instance",
        "sagemaker:cluster",
        "sagemaker:app",
        "appstream:fleet",
        "deadline:fleet",
        "workspaces:workspace",
        "codebuild:fleet",
        "lambda:capacity-provider",
        "braket:job",
        "appstream:image-builder",
    }
    session = botocore.session.get_session()
    for fam in FAMILIES.values():
        assert fam.remedy
        if fam.remediate is not None:  # the remedy names a real operation of the service's model
            op = fam.remedy.split(":", 1)[1].split(" ")[0]
            assert op in session.get_service_model(fam.service).operation_names, fam.kind


# -- deployment: the rules and the member role carry what the code needs -----------------------------------
def _resources(path: str) -> dict[str, Any]:
    from pathlib import Path

    from enforcer.intake.cfn_stack import load_template

    doc = load_template((Path(__file__).resolve().parent.parent / "infra" / path).read_text())
    return dict(doc["Resources"])


def test_event_rules_route_every_sagemaker_detail_type_the_detector_handles() -> None:
    from enforcer.intake.sagemaker_events import EVENTS

    rule = _resources("template.yaml")["SageMakerStateChangeRule"]["Properties"]["EventPattern"]
    assert rule["source"] == ["aws.sagemaker"] and set(rule["detail-type"]) == set(EVENTS)
    forward = _resources("member-account.yaml")["ForwardLaunchEvents"]["Properties"]["EventPattern"]["$or"]
    assert any(set(p.get("detail-type", [])) == set(EVENTS) for p in forward)


def test_member_guard_role_allows_every_managed_call() -> None:
    statements = _resources("member-account.yaml")["GuardRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    granted = set()
    for st in statements:
        if isinstance(st, dict) and st.get("Effect") == "Allow":
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            granted |= set(actions)
    session = botocore.session.get_session()
    needed = {
        "sagemaker": [
            "ListTrainingJobs",
            "DescribeTrainingJob",
            "StopTrainingJob",
            "ListProcessingJobs",
            "DescribeProcessingJob",
            "StopProcessingJob",
            "ListTransformJobs",
            "DescribeTransformJob",
            "StopTransformJob",
            "ListEndpoints",
            "DescribeEndpoint",
            "DescribeEndpointConfig",
            "DeleteEndpoint",
            "ListNotebookInstances",
            "DescribeNotebookInstance",
            "StopNotebookInstance",
            "ListClusters",
            "DescribeCluster",
            "UpdateCluster",
            "ListApps",
            "DeleteApp",
        ],
        "appstream": ["DescribeFleets", "StopFleet", "DescribeImageBuilders", "StopImageBuilder"],
        "deadline": ["ListFarms", "ListFleets", "GetFleet", "UpdateFleet"],
        "workspaces": ["DescribeWorkspaces", "StopWorkspaces"],
        "codebuild": ["ListFleets", "BatchGetFleets"],
        "lambda": ["ListCapacityProviders"],
        "braket": ["SearchJobs", "GetJob", "CancelJob"],
    }
    for service, ops in needed.items():
        model_ops = set(session.get_service_model(service).operation_names)
        for op in ops:
            assert op in model_ops, f"{service}:{op} is not an operation"
            assert f"{service}:{op}" in granted, f"{service}:{op} missing from GuardRole"


def test_heterogeneous_training_job_groups_are_read_from_the_event() -> None:
    from enforcer.intake import normalise

    event = load_event("sagemaker_training_state_change.json")
    rc = event["detail"]["ResourceConfig"]
    rc.pop("InstanceType"), rc.pop("InstanceCount")
    rc["InstanceGroups"] = [
        {"InstanceGroupName": "cpu", "InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
        {"InstanceGroupName": "gpu", "InstanceType": "ml.p5.48xlarge", "InstanceCount": 8},
    ]
    req = normalise(event)
    assert [(i.instance_type, i.count) for i in req.items] == [("c5.xlarge", 1), ("p5.48xlarge", 8)]  # type: ignore[union-attr]


@pytest.mark.parametrize("account", [MEMBER, HOME])
def test_serverless_endpoint_is_never_deleted(make_world: Any, account: str) -> None:
    """An endpoint whose variants are all serverless runs on no instance: described, nothing to deny."""
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    t = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": "MyEndpoint",
            "EndpointArn": f"arn:aws:sagemaker:{REGION}:{account}:endpoint/myendpoint",
            "EndpointConfigName": "sl",
            "EndpointStatus": "InService",
            "CreationTime": t,
            "LastModifiedTime": t,
        },
    )
    stub.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "sl",
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{account}:endpoint-config/sl",
            "CreationTime": t,
            "ProductionVariants": [
                {
                    "VariantName": "sl",
                    "ModelName": "m",
                    "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
                }
            ],
        },
    )
    event = load_event("sagemaker_endpoint_state_change.json")
    event["account"], event["region"] = account, REGION
    (r,) = guard(w, Overlay(w, {"sagemaker": sm})).handle(event, w.rt.budget(), NOW)["results"]
    stub.assert_no_pending_responses()  # and no DeleteEndpoint was queued: a call would have failed
    assert r["effect"] != "deny", r


@pytest.mark.parametrize(
    ("name", "params", "op", "call"),
    [
        (
            "StartNotebookInstance",
            {"notebookInstanceName": "nb"},
            "stop_notebook_instance",
            {"NotebookInstanceName": "nb"},
        ),
        (
            "CreateEndpoint",
            {"endpointName": "ep1", "endpointConfigName": "cfg"},
            "delete_endpoint",
            {"EndpointName": "ep1"},
        ),
        (
            "UpdateEndpointWeightsAndCapacities",
            {
                "endpointName": "ep1",
                "desiredWeightsAndCapacities": [{"variantName": "v", "desiredInstanceCount": 4}],
            },
            "delete_endpoint",
            {"EndpointName": "ep1"},
        ),
    ],
)
def test_cloudtrail_starts_and_endpoint_calls_act_on_the_named_resource(
    make_world: Any, name: str, params: dict[str, Any], op: str, call: dict[str, Any]
) -> None:
    """Restarts and endpoint calls (references the resolver cannot read here: denied, fail closed)
    are remediated on the resource they name."""
    w: World = make_world()
    sm, stub = stubbed("sagemaker")
    stub.add_response(op, {}, call)
    event = cloudtrail(name, MEMBER, params, None, source="sagemaker.amazonaws.com")
    (r,) = guard(w, Overlay(w, {"sagemaker": sm})).handle(event, w.rt.budget(), NOW)["results"]
    assert r["effect"] == "deny", r
    stub.assert_no_pending_responses()
    assert r["remediation"]["status"] in ("stopped", "deleted")


def test_guard_handler_takes_the_managed_path(make_world: Any) -> None:
    """Through lambdas.guard and the runtime build_runtime makes (ManagedGuard), on moto: the
    HyperPod state change is described and denied; moto has no UpdateCluster, so the failure is
    reported and alerted, not swallowed."""
    from lambdas import guard as guard_handler
    from tests.lambda_env import LambdaContext

    w: World = make_world()
    hyperpod(w)
    assert isinstance(w.rt.guard, ManagedGuard)
    event = load_event("sagemaker_hyperpod_state_change.json")
    event["account"], event["region"] = MEMBER, REGION
    out = guard_handler.handler(event, LambdaContext())
    (r,) = out["results"]
    assert r["effect"] == "deny" and "ORIGIN_RESTRICTED" in r["reasons"]
    assert r["remediation"]["remedy"].startswith("sagemaker:UpdateCluster")
    assert r["remediation"]["status"] == "failed" and r["remediation"]["notified"] is True


def test_sweep_time_budget_reports_what_was_not_listed(make_world: Any) -> None:
    """A family that does not answer within the sweep's time is reported, and the rest is decided."""
    import threading

    w: World = make_world()
    release = threading.Event()

    class Hanging:
        def client(
            self,
            service: str,
            account_id: str | None = None,
            region: str | None = None,
            role: str | None = None,
        ) -> Any:
            if service == "appstream":
                release.wait(5)
                raise TimeoutError("appstream hung")
            return w.clients.client(service, account_id, region, role)

    from enforcer.managed.guard import sweep as managed_sweep
    from enforcer.model import LaunchRequest

    trigger = LaunchRequest(source="sweep", action="sweep", account_id=HOME, region=REGION, event_id="s-1")
    g = guard(w, Hanging())
    try:
        _results, errors = managed_sweep(
            g, trigger, [(MEMBER, REGION)], Budget(10), NOW, 10, workers=4, seconds=1.0
        )
    finally:
        release.set()
    assert f"{MEMBER}/{REGION}/appstream:fleet: not listed within 1 s" in errors
