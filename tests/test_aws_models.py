"""Trimmed service models: same definitions as botocore's, faster to load, never less capable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore
import botocore.loaders
import botocore.session
import pytest
from botocore import xform_name
from moto import mock_aws

from enforcer import aws_models
from enforcer.aws_lazy import LazyClient, resolve
from enforcer.wiring.aws import ClientFactory

ROOT = Path(__file__).resolve().parents[1]
HOME, MEMBER = "123456789012", "111111111111"


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """moto, and every service-2 model file parsed: (path, the file loader that parsed it)."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    loaded: list[tuple[str, Any]] = []
    load = botocore.loaders.JSONFileLoader.load_file

    def counted(self: Any, file_path: str) -> Any:
        data = load(self, file_path)
        if Path(str(file_path)).name == "service-2" and data is not None:
            loaded.append((str(file_path), self))
        return data

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    with mock_aws():
        yield loaded


def test_committed_models_are_cut_from_the_installed_botocore(tmp_path: Path) -> None:
    manifest = aws_models.write_models(tmp_path)
    assert manifest["botocore"] == botocore.__version__, "regenerate: python -m enforcer.aws_models"
    for f in sorted(tmp_path.rglob("*.json")):
        committed = aws_models.MODELS_DIR / f.relative_to(tmp_path)
        assert committed.read_bytes() == f.read_bytes(), f"stale {committed}: python -m enforcer.aws_models"


def test_trimmed_model_holds_botocores_own_definitions() -> None:
    full = botocore.session.get_session().get_service_model("ec2")
    path = next((aws_models.MODELS_DIR / "ec2").glob("*/service-2.json"))
    trimmed = json.loads(path.read_text())
    assert sorted(trimmed["operations"]) == sorted(aws_models.TRIMMED["ec2"])
    for name in trimmed["operations"]:
        ours = botocore.model.ServiceModel(trimmed).operation_model(name)
        theirs = full.operation_model(name)
        assert ours.http == theirs.http
        for a, b in ((ours.input_shape, theirs.input_shape), (ours.output_shape, theirs.output_shape)):
            assert (a is None) == (b is None)
            if a is not None:
                assert sorted(a.members) == sorted(b.members)
                assert a.required_members == b.required_members
    assert len(trimmed["operations"]) < len(full.operation_names) / 20


@pytest.mark.parametrize("service", sorted(aws_models.TRIMMED))
def test_every_operation_the_package_calls_is_kept(service: str) -> None:
    """Fallback aside, the operations our code names must be on the fast path (source scan)."""
    src = "\n".join(p.read_text() for d in ("enforcer", "lambdas") for p in (ROOT / d).rglob("*.py"))
    called = set(re.findall(r"\.([a-z][a-z0-9_]+)\(", src))
    called |= set(re.findall(r"get_paginator\(\s*[\"']([a-z0-9_]+)[\"']", src))
    model = botocore.session.get_session().get_service_model(service)
    ops = {xform_name(op) for op in model.operation_names}
    kept = {xform_name(op) for op in aws_models.TRIMMED[service]}
    missing = (called & ops) - kept - {"get_paginator", "get_waiter", "can_paginate"}
    assert not missing, f"add to aws_models.TRIMMED[{service!r}] and regenerate: {sorted(missing)}"


def ours(f: ClientFactory, loaded: list[tuple[str, Any]], service: str) -> list[str]:
    """The model files of ``service`` the factory's own session parsed (moto parses its own too)."""
    mine = f.session._session.get_component("data_loader").file_loader
    return [p for p, loader in loaded if loader is mine and f"/{service}/" in p]


def test_factory_clients_use_the_trimmed_model_and_act_against_moto(aws: list[tuple[str, Any]]) -> None:
    f = ClientFactory("us-east-1", home_account=HOME)
    ec2 = f.client("ec2")
    assert isinstance(ec2, LazyClient)
    img = ec2.describe_instance_types(InstanceTypes=["p5.48xlarge"])["InstanceTypes"][0]
    assert img["GpuInfo"]["Gpus"][0]["Name"] == "H100"
    assert [p.startswith(str(aws_models.MODELS_DIR)) for p in ours(f, aws, "ec2")] == [True]
    assert len(resolve(ec2).meta.service_model.operation_names) == len(aws_models.TRIMMED["ec2"])
    member = f.client("ec2", MEMBER)
    ami = "ami-12c6146b"  # moto's default Amazon Linux AMI
    iid = member.run_instances(ImageId=ami, InstanceType="p5.48xlarge", MinCount=1, MaxCount=1)["Instances"][
        0
    ]["InstanceId"]
    member.create_tags(Resources=[iid], Tags=[{"Key": "gpu-enforcer", "Value": "deny"}])
    member.stop_instances(InstanceIds=[iid])
    state = member.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert state["State"]["Name"] == "stopped" and state["Tags"][0]["Value"] == "deny"


def test_operations_outside_the_trimmed_model_fall_back_to_the_full_one(aws: list[tuple[str, Any]]) -> None:
    f = ClientFactory("us-east-1", home_account=HOME)
    ec2 = f.client("ec2")
    assert ec2.describe_vpcs()["Vpcs"]  # not in the trimmed model: served by the full one
    full_loader = f.full_session._session.get_component("data_loader").file_loader
    assert [p for p, loader in aws if loader is full_loader and "/botocore/data/ec2/" in p]
    assert ec2.can_paginate("describe_images") and ec2.can_paginate("describe_instances")
    pages = list(ec2.get_paginator("describe_images").paginate(Owners=["amazon"]))  # outside the trim
    assert pages and "Images" in pages[0]
    pages = list(ec2.get_paginator("describe_instances").paginate())  # inside the trim
    assert pages[0]["Reservations"] == []
    assert ec2.get_waiter("instance_running").name == "InstanceRunning"
    assert ec2.exceptions.ClientError is botocore.exceptions.ClientError
    # a member-account stand-in falls back with the assumed role's credentials, not the function's
    member = f.client("ec2", MEMBER)
    assert member.describe_security_groups()["SecurityGroups"]
    full = f.real_client("ec2", MEMBER, full=True)
    assert len(full.meta.service_model.operation_names) > 500
    assert full._request_signer._credentials.access_key != "testing"


def test_other_botocore_release_means_full_models(
    monkeypatch: pytest.MonkeyPatch, aws: list[tuple[str, Any]]
) -> None:
    aws_models._manifest.cache_clear()
    try:
        with monkeypatch.context() as m:
            m.setattr(botocore, "__version__", "0.0.1")
            assert aws_models.trimmed_operations("ec2") is None
            f = ClientFactory("us-east-1", home_account=HOME)
            ec2 = f.client("ec2")
            assert ec2.describe_regions()["Regions"]
            assert len(resolve(ec2).meta.service_model.operation_names) > 500
            assert not any(str(aws_models.MODELS_DIR) in p for p, _ in aws)
    finally:
        aws_models._manifest.cache_clear()
    assert aws_models.trimmed_operations("ec2")


def test_full_model_fallback_uses_the_same_credentials(aws: list[tuple[str, Any]], monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFUNCTIONROLE0001")
    f = ClientFactory("us-east-1", home_account=HOME)
    ec2 = f.client("ec2")
    assert ec2.describe_vpcs()["Vpcs"]  # outside the trim: the full-model client
    trimmed, full = resolve(ec2), f.real_client("ec2", full=True)
    assert full is not trimmed and f.full_session is not f.session
    assert full._request_signer._credentials is trimmed._request_signer._credentials  # one object


def test_a_given_session_is_used_as_given(aws: list[tuple[str, Any]]) -> None:
    import boto3

    given = boto3.session.Session(
        aws_access_key_id="AKIAEXPLICITKEY00001", aws_secret_access_key="s", region_name="us-east-1"
    )
    f = ClientFactory("us-east-1", home_account=HOME, session=given)
    ec2 = f.client("ec2")
    assert ec2.describe_vpcs()["Vpcs"]
    assert f.full_session is given  # no trimmed models put on a caller's session
    assert resolve(ec2)._request_signer._credentials.access_key == "AKIAEXPLICITKEY00001"


def test_endpoint_data_covers_every_service_the_package_builds() -> None:
    """Source scan: each ``client("x")`` service is in the trimmed endpoint data (else it takes the slow path)."""
    src = "\n".join(p.read_text() for d in ("enforcer", "lambdas") for p in (ROOT / d).rglob("*.py"))
    named = set(re.findall(r"client\(\s*[\"']([a-z0-9-]+)[\"']", src))
    missing = named - set(aws_models.ENDPOINT_SERVICES)
    assert not missing, f"add to aws_models.ENDPOINT_SERVICES and regenerate: {sorted(missing)}"


def test_trimmed_endpoint_data_resolves_as_botocores_own(aws: list[tuple[str, Any]]) -> None:
    f = ClientFactory("us-east-1", home_account=HOME)
    ours = f.session._session._get_internal_component("endpoint_resolver")
    theirs = botocore.session.Session()._get_internal_component("endpoint_resolver")
    assert ours.uses_builtin_data and theirs.uses_builtin_data  # the rule sets decide, as with the full file

    def endpoint(resolver: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return resolver.construct_endpoint(*args, **kwargs)
        except Exception as exc:  # an unmodelled variant raises the same error from both
            return repr(exc)

    for service in aws_models.ENDPOINT_SERVICES:
        assert ours.get_available_endpoints(service) == theirs.get_available_endpoints(service)
        for part in theirs.get_available_partitions():
            for region in [*theirs.get_available_endpoints(service, part), "us-east-1", "cn-north-1"]:
                for variant in ({}, {"use_fips_endpoint": True}, {"use_dualstack_endpoint": True}):
                    a = endpoint(ours, service, region, partition_name=part, **variant)
                    assert a == endpoint(theirs, service, region, partition_name=part, **variant)
    for service in ("ec2", "sts", "organizations", "s3"):
        for region in ("us-east-1", "cn-north-1", "us-gov-west-1", "eu-central-1"):
            a = f.real_client(service, region=region).meta
            b = botocore.session.Session().create_client(service, region_name=region).meta
            assert (a.endpoint_url, a.region_name) == (b.endpoint_url, b.region_name)
            assert a.partition == b.partition


def test_a_service_outside_the_endpoint_data_is_built_on_the_full_session(aws: list[tuple[str, Any]]) -> None:
    f = ClientFactory("us-east-1", home_account=HOME)
    f.real_client("sns")
    assert f._full_session is None  # kept services never build the full session
    iam = f.real_client("iam")
    assert f._full_session is not None
    assert iam.meta.region_name == botocore.session.Session().create_client("iam").meta.region_name
    assert iam.list_roles()["Roles"] is not None


def test_make_install_pins_the_botocore_the_data_was_cut_from() -> None:
    """``constraints.txt`` (``make install``) pins the release in the manifest, so a fresh clone installs the
    botocore whose trimmed files it ships instead of the newest one (which would ignore them)."""
    root = aws_models.MODELS_DIR.parents[2]
    pins = dict(
        line.split("==", 1)
        for line in (root / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    manifest = json.loads((aws_models.MODELS_DIR / aws_models.MANIFEST).read_text())
    assert pins["botocore"] == manifest["botocore"] == botocore.__version__
    assert pins["boto3"].rsplit(".", 1)[0] == manifest["botocore"].rsplit(".", 1)[0]


def test_listed_services_answer_as_botocores_walk(tmp_path: Path) -> None:
    """The manifest's service lists (no walk of botocore's 450 folders per client type) give the very list
    botocore's own walk gives, extra search paths included; other types still walk."""
    import boto3

    extra = tmp_path / "models"
    (extra / "madeup" / "2020-01-01").mkdir(parents=True)
    (extra / "madeup" / "2020-01-01" / "service-2.json").write_text("{}")
    session = boto3.session.Session(region_name="us-east-1")
    assert aws_models.use_trimmed_models(session)
    ours = session._session.get_component("data_loader")
    ours.search_paths.append(str(extra))
    reference = botocore.loaders.Loader()
    reference.search_paths[:] = list(ours.search_paths)
    assert set(aws_models.manifest_listed()) == set(aws_models.LISTED_TYPES)
    for type_name in (*aws_models.LISTED_TYPES, "paginators-1", "waiters-2"):
        assert ours.list_available_services(type_name) == reference.list_available_services(type_name)
    assert "madeup" in ours.list_available_services("service-2")
    assert "madeup" not in ours.list_available_services("endpoint-rule-set-1")
