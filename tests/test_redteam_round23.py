"""Red-team findings of round 23 (stop 23), each pinned by a test.

Finding 1 (low, open, strict xfail): arithmetic precision. OPA's Go evaluator adds numbers as binary
floats; its wasm target as exact decimals. A sum that lands a hair under a whole number prints
differently in a message that truncates it (``format_int``): ``4900000 + -2.9561272715225193e-197`` is
``4900000`` in Go and ``4899999.999…`` in wasm, so the ``AGGREGATE_COMPUTE`` message reads 4900000 in one
and 4899999 in the other. The same hair can tip a threshold compared at exactly its boundary. The effect
here is the same (deny); the numbers come from the pipeline (chip table TPP, ledger sums), not from an
attacker. Found by round 22's differential fuzzing once it ran unseeded (it is now derandomized, so CI
replays the same examples every run, and this case is pinned here instead).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.loader import PolicyBundle
from enforcer.policy.wasm import WasmEngine
from enforcer.policy.wasm_build import CompiledPolicy

_DOC: dict[str, Any] = {
    "account": {
        "account_id": "111122223333",
        "country": "CN",
        "hq_country": "MO",
        "kyc": "verified",
        "parent_hq_country": "SC",
        "reseller": None,
    },
    "attestation": {"status": "not_required"},
    "ledger": {
        "owners": [{"kind": "end_customer", "owner": "o0", "running_tpp": 4900000, "tpp_hours": 0}],
        "source": "ledger",
        "time": "t",
    },
    "request": {
        "account_id": "111122223333",
        "action": "ec2:RunInstances",
        "items": [
            {
                "chip_class": "3A090.b",
                "count": 1,
                "instance_type": "trn2.48xlarge",
                "tpp": 50000,
                "unresolved": False,
            }
        ],
        "region": "ca-central-1",
        "source": "cloudtrail",
        "total_tpp": 50000,
    },
}


@pytest.fixture(scope="module")
def engines(bundle: PolicyBundle, compiled: CompiledPolicy) -> tuple[WasmEngine, EmbeddedEngine]:
    return WasmEngine(bundle, compiled), EmbeddedEngine(bundle)


def test_whole_sums_print_the_same_on_both_engines(engines: tuple[WasmEngine, EmbeddedEngine]) -> None:
    wasm, go = engines
    doc = copy.deepcopy(_DOC)
    assert wasm.evaluate(doc) == go.evaluate(doc)  # the control: whole numbers agree


@pytest.mark.xfail(
    strict=True, reason="finding 1: Go adds binary floats, wasm exact decimals (message digits)"
)
def test_a_sum_a_hair_under_a_whole_number_prints_the_same(
    engines: tuple[WasmEngine, EmbeddedEngine],
) -> None:
    wasm, go = engines
    doc = copy.deepcopy(_DOC)
    doc["request"]["total_tpp"] = -2.9561272715225193e-197
    assert wasm.evaluate(doc) == go.evaluate(doc)
