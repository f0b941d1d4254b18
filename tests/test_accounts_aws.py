"""AWS account directory backends (DynamoDB table, Organizations tags) under moto, shared cases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from enforcer.accounts_aws import (
    DynamoDBAccountDirectory,
    OrganizationsAccountDirectory,
    create_accounts_table,
)
from enforcer.model import AccountOrigin, InputError
from enforcer.ports import AccountDirectory

FULL = AccountOrigin("111111111111", "CN", "HK", "CN", "verified", "reseller-a")
DIRECT = AccountOrigin("222222222222", "DE", None, None, "pending", None)
MESSY = {"country": "nl", "hq_country": "Netherlands", "kyc": "VERIFIED", "reseller": " reseller-x "}


@dataclass
class Backend:
    directory: AccountDirectory
    add: Callable[[str, dict[str, str]], None]  # account id, fields -> stored in the backend's own format
    ids: dict[str, str]  # logical name -> real account id (Organizations assigns its own)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _fields(o: AccountOrigin) -> dict[str, str]:
    return {k: v for k, v in o.to_dict().items() if isinstance(v, str) and k != "account_id"}


def _dynamodb() -> Backend:
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = create_accounts_table(client, "accounts")
    directory = DynamoDBAccountDirectory(client, table)

    def add(account_id: str, fields: dict[str, str]) -> None:
        item = {"account_id": {"S": account_id}, **{k: {"S": v} for k, v in fields.items()}}
        client.put_item(TableName=table, Item=item)

    ids = {"full": FULL.account_id, "direct": DIRECT.account_id, "messy": "333333333333"}
    directory.put(FULL)
    directory.put(DIRECT)
    add(ids["messy"], MESSY)
    return Backend(directory, add, ids)


TAG_NAMES = {
    "country": "origin:country",
    "hq_country": "origin:hq-country",
    "parent_hq_country": "origin:parent-hq-country",
    "kyc": "kyc:status",
    "reseller": "reseller:id",
}


def _organizations(clock: FakeClock) -> Backend:
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")

    def create(name: str, fields: dict[str, str]) -> str:
        tags = [{"Key": TAG_NAMES[k], "Value": v} for k, v in fields.items() if k in TAG_NAMES]
        status = org.create_account(AccountName=name, Email=f"{name}@example.com", Tags=tags)
        return str(status["CreateAccountStatus"]["AccountId"])

    ids = {"full": create("full", _fields(FULL)), "direct": create("direct", _fields(DIRECT)),
           "messy": create("messy", MESSY)}  # fmt: skip

    def add(account_id: str, fields: dict[str, str]) -> None:
        org.tag_resource(
            ResourceId=account_id, Tags=[{"Key": TAG_NAMES[k], "Value": v} for k, v in fields.items()]
        )

    return Backend(OrganizationsAccountDirectory(org, ttl=300, clock=clock), add, ids)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["dynamodb", "organizations"])
def backend(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[Backend]:
    with mock_aws():
        yield _dynamodb() if request.param == "dynamodb" else _organizations(clock)


def test_implements_the_port(backend: Backend) -> None:
    assert isinstance(backend.directory, AccountDirectory)


def test_full_origin(backend: Backend) -> None:
    got = backend.directory.get(backend.ids["full"])
    assert got is not None
    assert (got.country, got.hq_country, got.parent_hq_country, got.kyc, got.reseller) == ("CN", "HK", "CN",
                                                                                             "verified", "reseller-a")  # fmt: skip


def test_direct_account(backend: Backend) -> None:
    got = backend.directory.get(backend.ids["direct"])
    assert got is not None
    assert got.reseller is None and got.kyc == "pending" and got.hq_country is None


def test_values_are_normalised_conservatively(backend: Backend) -> None:
    got = backend.directory.get(backend.ids["messy"])
    assert got is not None
    assert got.country == "NL"  # upper-cased
    assert got.hq_country is None  # malformed code -> unknown
    assert got.kyc == "verified"
    assert got.reseller == "reseller-x"  # kept: dropping it would waive the attestation requirement


def test_unknown_account_is_none(backend: Backend) -> None:
    assert backend.directory.get("999999999999") is None


def test_bad_account_id_is_input_error(backend: Backend) -> None:
    with pytest.raises(InputError):
        backend.directory.get("../../x")


def test_organizations_ttl_cache(clock: FakeClock) -> None:
    with mock_aws():
        b = _organizations(clock)
        acc = b.ids["direct"]
        assert b.directory.get(acc).country == "DE"  # type: ignore[union-attr]
        b.add(acc, {"country": "RU"})
        assert b.directory.get(acc).country == "DE"  # type: ignore[union-attr]  # within TTL
        clock.t += 301
        assert b.directory.get(acc).country == "RU"  # type: ignore[union-attr]
        assert isinstance(b.directory, OrganizationsAccountDirectory)
        b.add(acc, {"country": "BY"})
        b.directory.invalidate(acc)
        assert b.directory.get(acc).country == "BY"  # type: ignore[union-attr]


def test_dynamodb_put_round_trip() -> None:
    with mock_aws():
        b = _dynamodb()
        assert isinstance(b.directory, DynamoDBAccountDirectory)
        named = AccountOrigin("444444444444", "us", None, None, "none", None, name="Team GPU")
        b.directory.put(named)
        got = b.directory.get("444444444444")
        assert got == AccountOrigin("444444444444", "US", None, None, "none", None, name="Team GPU")
        assert create_accounts_table(b.directory.client, "accounts") == "accounts"  # idempotent


def test_account_ids_with_a_trailing_newline_or_non_ascii_digits_are_refused() -> None:
    from enforcer.accounts import validate_account_id
    from enforcer.attestation.registry import RegistryError, check_account

    for bad in ("123456789012\n", "١٢٣٤٥٦٧٨٩٠١٢"):
        with pytest.raises(InputError):
            validate_account_id(bad)
        with pytest.raises(RegistryError):
            check_account(bad)
