"""For every ``decided`` operation of the coverage table and every instance-type path the service model
gives it: a CloudTrail record built from the model's shape (not typed by hand) with a controlled type
at that path, in both CloudTrail spellings, decided by the real pipeline (embedded OPA) for a
CN-origin account, is a deny that names the controlled type."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from enforcer.accounts import AccountOrigin, StaticAccountDirectory
from enforcer.coverage import load_table
from enforcer.coverage.synth import synth_record, synth_request
from enforcer.coverage.walker import load_model
from enforcer.intake import normalise
from enforcer.model import CONTROLLED_CLASSES, LaunchRequest
from enforcer.pipeline import Enforcer

CN_ACCOUNT = "210987654321"
CASES = [
    (e.service, e.operation, e.event_source, path)
    for e in load_table()
    if e.status == "decided" and not e.reference
    for path in e.paths
]


@cache
def controlled_value(service: str, operation: str, path: str) -> str:
    """``p5.48xlarge``, or the enum's controlled spelling (``ml.p5.48xlarge``) when the member is an enum."""
    from enforcer.coverage.walker import operation_paths

    enum = next(p.enum for p in operation_paths(load_model(service), operation) if p.path == path)
    if not enum:
        return "p5.48xlarge"
    for preferred in ("ml.p5.48xlarge", "p5.48xlarge", "ml.p4d.24xlarge", "p4d.24xlarge"):
        if preferred in enum:
            return preferred
    cat = _catalog()
    for v in enum:  # any enum value the catalogue classes as controlled (not merely unknown)
        if cat.classify(v).chip_class in CONTROLLED_CLASSES - {"unknown"}:
            return v
    return "p5.48xlarge"


@cache
def _catalog() -> Any:
    from enforcer.chips import ChipCatalog

    return ChipCatalog()


@pytest.fixture(scope="module")
def enforcer(engine: Any, catalog: Any) -> Enforcer:
    origin = AccountOrigin(CN_ACCOUNT, "CN", "CN", "CN", "verified", None)
    return Enforcer(catalog=catalog, accounts=StaticAccountDirectory([origin]), engine=engine)


def test_cases_cover_every_decided_operation() -> None:
    decided = {(e.service, e.operation) for e in load_table() if e.status == "decided" and not e.reference}
    assert {(s, o) for s, o, _, _ in CASES} == decided
    assert len(decided) >= 80  # about 95 with botocore 1.44


@pytest.mark.parametrize("style", ["cloudtrail", "wrapped"])
@pytest.mark.parametrize(("service", "operation", "source", "path"), CASES, ids=lambda v: str(v))
def test_controlled_type_at_model_path_is_denied_for_cn(
    enforcer: Enforcer, service: str, operation: str, source: str, path: str, style: str
) -> None:
    itype = controlled_value(service, operation, path)
    params = synth_request(service, operation, path, itype, style=style)
    request = normalise(synth_record(source, operation, params, CN_ACCOUNT))
    assert isinstance(request, LaunchRequest), request
    short = itype.removeprefix("ml.")
    assert short in {i.instance_type for i in request.items}, (params, request.items)
    decision = enforcer.decide(request, now=1_796_083_200.0)
    assert decision.effect == "deny", decision.reasons
    assert "ORIGIN_RESTRICTED" in {r.code for r in decision.reasons}


@pytest.mark.parametrize(("service", "operation", "source", "path"), CASES[::7], ids=lambda v: str(v))
def test_benign_type_at_model_path_is_not_controlled(
    service: str, operation: str, source: str, path: str
) -> None:
    """The same records with a type without accelerators classify as ``none`` (no blanket deny)."""
    value = "ml.m5.large" if controlled_value(service, operation, path).startswith("ml.") else "m5.large"
    params = synth_request(service, operation, path, value)
    request = normalise(synth_record(source, operation, params, CN_ACCOUNT))
    assert isinstance(request, LaunchRequest)
    typed = [i for i in request.items if i.instance_type is not None]
    assert typed and all(_catalog().classify(i.instance_type).chip_class == "none" for i in typed)
