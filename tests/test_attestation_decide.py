"""The forgery suite through `decide`: a hostile token that reached the registry (bypassing submit)
must still deny the launch with the right reason code, on both registry backends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.accounts import StaticAccountDirectory
from enforcer.attestation import RegistryAttestationProvider, reason_code
from enforcer.attestation.registry import StoredAttestation
from enforcer.model import LaunchItem, LaunchRequest
from enforcer.pipeline import Enforcer
from tests.test_attestation_forgery import CASES
from tests.test_attestation_support import ACC_X, BACKENDS, T0, World, make_world, registry_backend


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with registry_backend(request.param, tmp_path) as registry:
        yield make_world(registry)


def _smuggle(world: World, account: str, token: str) -> None:
    """Store a token without verification, as a compromised intake or a bug might."""
    jti = "smuggled-" + hashlib.sha256(token.encode()).hexdigest()[:16]
    world.registry.put_attestation(
        StoredAttestation(
            account_id=account,
            jti=jti,
            token=token,
            issuer="unverified",
            kid="unverified",
            iat=int(T0),
            nbf=int(T0),
            exp=int(T0) + 86400,
            submitted_at=T0,
        )
    )


def _decide(world: World, engine: Any, catalog: Any, account: str, now: float) -> Any:
    enf = Enforcer(
        catalog=catalog,
        accounts=StaticAccountDirectory(list(world.origins.values())),
        engine=engine,
        attestations=RegistryAttestationProvider(world.registry),
    )
    req = LaunchRequest(
        "cloudtrail", "ec2:RunInstances", account, "us-east-1", items=[LaunchItem("p5.48xlarge", 1)]
    )
    return enf.decide(req, now)


@pytest.mark.parametrize("name", list(CASES))
def test_decide_denies_forged_attestation(
    world: World, engine: Any, catalog: Any, name: str, tmp_path: Path
) -> None:
    case = CASES[name](world)
    _smuggle(world, case.account, case.token)
    d = _decide(world, engine, catalog, case.account, case.now)
    assert d.effect == "deny", d.to_dict()
    assert reason_code(case.status) in [r.code for r in d.reasons]
    assert d.attestation is not None and d.attestation["status"] == case.status
    # and it is audited: one record, no token in it
    from enforcer.audit import LocalAuditStore, open_verify
    from enforcer.audit.query import iter_records

    with LocalAuditStore(tmp_path / "audit") as store:
        store.write(d, "cli:decide")
    records = [r.record for r in iter_records(tmp_path / "audit")]
    assert len(records) == 1 and open_verify(tmp_path / "audit").ok
    assert case.token not in json.dumps(records[0])
    assert reason_code(case.status) in json.dumps(records[0]["result"])


def test_decide_allows_the_untampered_token(world: World, engine: Any, catalog: Any) -> None:
    _smuggle(world, ACC_X, world.token())
    d = _decide(world, engine, catalog, ACC_X, T0)
    assert d.effect == "allow", d.to_dict()
