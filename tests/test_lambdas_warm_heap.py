"""Every handler freezes the heap once, at the end of its first invocation (issue 16: the warm p99).

A full collection after the cold start would otherwise walk everything the cold start built (the
runtime, its clients and service models, the engine): one 240-270 ms pause per 100 warm denies in
``benchmarks/guard_warm.py`` before the freeze.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas import _common

HANDLERS = ("guard", "cfn_hook", "broker", "attestation_intake")


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    _common._heap_frozen = False
    yield
    gc.unfreeze()  # the rest of the session runs as before
    _common._heap_frozen = False


@pytest.mark.parametrize("name", HANDLERS)
def test_the_handler_is_wrapped_to_freeze_after_its_first_invocation(name: str) -> None:
    module = importlib.import_module(f"lambdas.{name}")
    assert module.handler.__wrapped__ is not None  # functools.wraps of freezes_warm_heap
    assert module.handler.__code__ is _common.freezes_warm_heap(lambda e, c: {}).__code__


def test_the_first_invocation_freezes_once_whichever_way_it_ends(unfrozen: None) -> None:
    calls: list[str] = []

    @_common.freezes_warm_heap
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event["how"])
        if event["how"] == "raise":
            raise ValueError("bad event")
        return {"ok": True}

    with pytest.raises(ValueError):
        handler({"how": "raise"}, None)
    frozen = gc.get_freeze_count()
    assert frozen > 0 and _common._heap_frozen  # frozen even though the first invocation raised
    garbage = [[i] for i in range(1000)]  # objects born after the freeze stay collectable
    assert handler({"how": "return"}, None) == {"ok": True}
    assert gc.get_freeze_count() == frozen  # not frozen again
    assert not _common.freeze_warm_heap()
    del garbage
    assert calls == ["raise", "return"]
