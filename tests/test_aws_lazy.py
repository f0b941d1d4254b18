"""Cold start: clients built on first use, one botocore session (one model load) for every account."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws

from enforcer.aws_lazy import LazyClient, resolve
from enforcer.wiring.aws import ClientFactory

HOME, MEMBER, OTHER = "123456789012", "111111111111", "222222222222"


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(k, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    seen: dict[str, list[Any]] = {"created": [], "models": []}
    create, load = botocore.session.Session.create_client, botocore.loaders.JSONFileLoader.load_file

    def counted_create(self: Any, service_name: str, *a: Any, **kw: Any) -> Any:
        seen["created"].append((service_name, kw.get("aws_access_key_id")))
        return create(self, service_name, *a, **kw)

    def counted_load(self: Any, file_path: str) -> Any:
        parts = str(file_path).split("/")
        if parts[-1] == "service-2" or parts[-1].startswith("service-2."):
            seen["models"].append((parts[-3], self))  # .../botocore/data/<service>/<version>/service-2
        return load(self, file_path)

    monkeypatch.setattr(botocore.session.Session, "create_client", counted_create)
    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted_load)
    with mock_aws():
        yield seen


def test_no_client_is_built_until_an_operation_is_called(aws: dict[str, list[Any]]) -> None:
    f = ClientFactory("us-east-1", home_account=HOME)
    ddb, ec2, member = f.client("dynamodb"), f.client("ec2"), f.client("ec2", MEMBER, "eu-west-1")
    assert isinstance(ddb, LazyClient) and not ddb.built
    assert aws["created"] == [] and aws["models"] == []
    assert "not built" in repr(ec2)
    assert ddb.list_tables()["TableNames"] == []
    # the stand-in's client (trimmed DynamoDB model), then a full-model one for ListTables, outside it
    assert [s for s, _ in aws["created"]] == ["dynamodb", "dynamodb"] and ddb.built
    assert ddb.list_tables()["TableNames"] == [] and len(aws["created"]) == 2  # both kept
    assert "ec2" not in {svc for svc, _ in aws["models"]}  # ec2 never used: its model never loaded
    assert member.service_name == "ec2"


def test_one_session_and_one_model_load_for_every_account_and_region(aws: dict[str, list[Any]]) -> None:
    f = ClientFactory("us-east-1", home_account=HOME)
    f.client("ec2").describe_regions()
    ours = f.session._session.get_component("data_loader").file_loader

    def ec2_loads() -> int:
        return [svc for svc, loader in aws["models"] if loader is ours].count("ec2")

    once = ec2_loads()
    assert once >= 1
    f.client("ec2", MEMBER).describe_instances()
    f.client("ec2", OTHER, "eu-west-1").describe_instances()
    f.client("ec2", MEMBER, "ap-south-1").describe_instances()
    # one loader, shared: EC2's model is parsed once by the factory (moto's own sessions load it too)
    assert ec2_loads() == once
    member_keys = [k for s, k in aws["created"] if s == "ec2" and k is not None]
    assert len(member_keys) == 3 and all(k != "testing" for k in member_keys)  # assumed-role keys
    # a repeated call reuses the built client (no new client, no second assume-role)
    before = len(aws["created"])
    f.client("ec2", MEMBER).describe_instances()
    assert len(aws["created"]) == before


def test_member_clients_follow_refreshed_credentials(aws: dict[str, list[Any]]) -> None:
    now = [1_000_000_000.0]
    f = ClientFactory("us-east-1", home_account=HOME, clock=lambda: now[0])
    held = f.client("ec2", MEMBER)  # a stand-in kept across the credential refresh
    first = resolve(held)
    assert resolve(held) is first
    # moto's credentials expire an hour after the real clock; jump past that, minus the margin
    exp = f._creds[(MEMBER, "GpuEnforcerGuard")][0]
    now[0] = exp
    second = resolve(held)
    assert second is not first  # assumed again, new client with the new keys
    assert second.describe_instances()["Reservations"] == []


def test_home_account_resolved_lazily_from_sts(aws: dict[str, list[Any]]) -> None:
    f = ClientFactory("us-east-1")
    c = f.client("sqs")
    assert aws["created"] == []  # not even STS yet
    assert c.list_queues().get("QueueUrls", []) == []
    assert f.home_account == HOME


def test_kms_signer_is_built_at_the_first_seal_not_at_cold_start(aws: dict[str, list[Any]]) -> None:
    from enforcer.audit.signing import KmsSigner, SignerError, make_checkpoint, verify_checkpoint
    from enforcer.aws_lazy import LazySigner

    f = ClientFactory("us-east-1", home_account=HOME)
    kms = f.client("kms")
    setup = botocore.session.get_session().create_client("kms", region_name="us-east-1")
    good = setup.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    rsa = setup.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    aws["created"].clear()
    signer = LazySigner(lambda: KmsSigner(kms, good), KmsSigner.alg)
    assert signer.alg == "ES256" and aws["created"] == []  # no client, no GetPublicKey yet
    cp = make_checkpoint(signer, 3, "ab" * 32, "2026-12-01T00:00:00Z")
    assert [s for s, _ in aws["created"]] == ["kms"]
    verify_checkpoint(cp, signer.public_key_pem())
    with pytest.raises(AttributeError):
        signer.key_id = "sha256:forged"
    wrong = LazySigner(lambda: KmsSigner(kms, rsa), KmsSigner.alg)
    for _ in range(2):  # the failure reaches the seal, every time (a failed build is not cached)
        with pytest.raises(SignerError, match="ECC_NIST_P256"):
            make_checkpoint(wrong, 3, "ab" * 32, "2026-12-01T00:00:00Z")


def test_attestation_provider_is_built_for_the_first_reseller_account(aws: dict[str, list[Any]]) -> None:
    from enforcer.attestation import DynamoDBRegistry, RegistryAttestationProvider, create_tables
    from enforcer.aws_lazy import LazyAttestations
    from enforcer.model import AccountOrigin

    f = ClientFactory("us-east-1", home_account=HOME)
    create_tables(resolve(f.client("dynamodb")), "t-")
    built: list[Any] = []

    def make() -> RegistryAttestationProvider:
        built.append(RegistryAttestationProvider(DynamoDBRegistry(f.client("dynamodb"), "t-")))
        return built[-1]

    lazy = LazyAttestations(make)
    direct = AccountOrigin(MEMBER, "CN", "CN", "CN", kyc="verified")
    real = RegistryAttestationProvider(DynamoDBRegistry(f.client("dynamodb"), "t-"))
    assert lazy.for_account(direct, 1e9) == real.for_account(direct, 1e9)
    assert built == []  # a direct account never builds the registry provider
    resold = AccountOrigin(OTHER, "US", "US", "US", kyc="verified", reseller="acme")
    assert lazy.for_account(resold, 1e9).status == real.for_account(resold, 1e9).status == "missing"
    assert len(built) == 1
    assert lazy.for_account(direct, 1e9) == real.for_account(direct, 1e9)  # now answered by the real one
    assert len(built) == 1
