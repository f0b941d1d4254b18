"""Shared helpers for the attestation tests (no tests here).

A "world" is a registry with two resellers and four accounts:

* reseller-a: keys ``a-es`` (ES256) and ``a-ed`` (EdDSA); accounts X and Y.
* reseller-b: key ``b-es`` (ES256); account Z.
* account D is direct (no reseller).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import click
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from moto import mock_aws

from enforcer.attestation import (
    DEFAULT_AUDIENCE,
    DynamoDBRegistry,
    EndCustomer,
    LocalRegistry,
    ResellerKey,
    SigningKey,
    build_claims,
    create_tables,
    generate_private_key_pem,
    load_signing_key,
    sign_token,
)
from enforcer.attestation.registry import AttestationRegistry
from enforcer.cli.attest import build_attest_group
from enforcer.cli.reseller import build_reseller_group
from enforcer.model import AccountOrigin
from enforcer.state import CliState

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
ACC_X = "111111111111"
ACC_Y = "222222222222"
ACC_Z = "333333333333"
ACC_D = "444444444444"
RA = "reseller-a"
RB = "reseller-b"
BACKENDS = ["local", "dynamodb"]


def rfc3339(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_json(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def unb64u(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def raw_sign(private_pem: bytes, header_seg: str, payload_seg: str) -> str:
    """Sign arbitrary segments directly with cryptography (to build hostile but well-signed tokens)."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    signing_input = f"{header_seg}.{payload_seg}".encode("ascii")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        sig = key.sign(signing_input)
    return f"{header_seg}.{payload_seg}.{b64u(sig)}"


class StubDirectory:
    """A tiny ports.AccountDirectory."""

    def __init__(self, origins: list[AccountOrigin]) -> None:
        self.origins = {o.account_id: o for o in origins}

    def get(self, account_id: str) -> AccountOrigin | None:
        return self.origins.get(account_id)


@dataclass
class World:
    registry: AttestationRegistry
    pems: dict[str, bytes] = field(default_factory=dict)
    keys: dict[str, SigningKey] = field(default_factory=dict)
    origins: dict[str, AccountOrigin] = field(default_factory=dict)

    def origin(self, account: str) -> AccountOrigin:
        return self.origins[account]

    def directory(self) -> StubDirectory:
        return StubDirectory(list(self.origins.values()))

    def claims(
        self,
        issuer: str = RA,
        account: str = ACC_X,
        now: float = T0,
        valid_days: int = 30,
        audience: str = DEFAULT_AUDIENCE,
        **overrides: Any,
    ) -> dict[str, Any]:
        c = build_claims(
            issuer=issuer,
            account=account,
            end_customer=EndCustomer("DE", "DE", "US", "verified"),
            now=now,
            valid_days=valid_days,
            max_valid_days=max(valid_days, 90),
            audience=audience,
            end_use="model training",
        )
        c.update(overrides)
        return c

    def token(self, kid: str = "a-es", **kw: Any) -> str:
        return sign_token(self.keys[kid], kid, self.claims(**kw))

    def add_key(self, reseller: str, kid: str, alg: str, **kw: Any) -> None:
        pem = generate_private_key_pem(alg)
        self.pems[kid] = pem
        self.keys[kid] = load_signing_key(pem)
        self.registry.add_key(reseller, ResellerKey(kid, alg, self.keys[kid].public_pem, created_at=T0, **kw))


def make_world(registry: AttestationRegistry) -> World:
    w = World(registry)
    registry.put_reseller(RA, name="Reseller A", country="DE", hq_country="DE", parent_hq_country="DE")
    registry.put_reseller(RB, name="Reseller B", country="FR", hq_country="FR", parent_hq_country="FR")
    w.add_key(RA, "a-es", "ES256")
    w.add_key(RA, "a-ed", "EdDSA")
    w.add_key(RB, "b-es", "ES256")
    w.origins = {
        ACC_X: AccountOrigin(ACC_X, "DE", "DE", "DE", "verified", RA),
        ACC_Y: AccountOrigin(ACC_Y, "DE", "DE", "DE", "verified", RA),
        ACC_Z: AccountOrigin(ACC_Z, "FR", "FR", "FR", "verified", RB),
        ACC_D: AccountOrigin(ACC_D, "US", "US", "US", "verified", None),
    }
    return w


@contextlib.contextmanager
def registry_backend(kind: str, tmp_path: Path) -> Iterator[AttestationRegistry]:
    """A fresh registry of the given kind (``local`` files or ``dynamodb`` under moto)."""
    if kind == "local":
        yield LocalRegistry(tmp_path / "registry")
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "test-")
        yield DynamoDBRegistry(client, "test-")


def cli_invoke(world: World, tmp_path: Path, args: list[str], input: str | None = None) -> Result:
    """Run ``attest``/``reseller`` commands against the world's registry and stub account directory."""

    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = CliState(state=tmp_path / "state")

    root.add_command(build_attest_group(lambda s: world.directory(), lambda s: world.registry))
    root.add_command(build_reseller_group(lambda s: world.registry))
    return CliRunner().invoke(root, args, input=input, catch_exceptions=False)
