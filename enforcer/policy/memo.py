"""Memoise policy evaluations for bulk what-ifs (replay), where the same launch shape repeats.

Sound only for deterministic policies: OPA's result is a function of input and data unless the policy
calls non-deterministic built-ins. ``is_deterministic`` refuses the memo when any module mentions one.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from enforcer.policy.loader import PolicyBundle
from enforcer.ports import PolicyEngine

NON_DETERMINISTIC = ("time.now_ns", "rand.", "http.send", "uuid.", "net.lookup", "opa.runtime", "crypto.x509")


def is_deterministic(bundle: PolicyBundle) -> bool:
    """True when no policy module calls a built-in whose result depends on more than input and data."""
    return not any(tok in src for src in bundle.modules.values() for tok in NON_DETERMINISTIC)


class MemoEngine:
    """A bounded LRU cache in front of an engine, keyed by the canonical JSON of the input.

    Building the key (the input's canonical JSON) costs about as much as a small part of an
    evaluation, so a memo that does not hit only adds work: when the first ``probe`` evaluations
    found fewer than ``min_hit_rate`` of them in the cache, the memo steps aside for good (the cache
    is dropped; every later input goes straight to ``inner``, as with ``--no-memo``). A replay with
    the ledger (each launch's input carries the running figures and its own time) never repeats an
    input; a trail without it repeats launch shapes and keeps the memo.

    Parameters
    ----------
    inner
        The engine to ask on a miss.
    size
        Entries kept (least recently used evicted first), so memory stays bounded.
    probe
        Evaluations after which the hit rate is judged (0: never step aside).
    min_hit_rate
        The share of hits below which the memo steps aside after ``probe`` evaluations.
    """

    def __init__(
        self, inner: PolicyEngine, size: int = 4096, probe: int = 512, min_hit_rate: float = 0.02
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.revision = inner.revision
        self.size = size
        self.probe = probe
        self.min_hit_rate = min_hit_rate
        self.hits = 0
        self.misses = 0
        #: True once the memo stepped aside (too few hits in the probe).
        self.bypassed = False
        self._judged = False
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def evaluate(self, input_doc: dict[str, Any]) -> dict[str, Any]:
        """Return the cached decision for an identical input, else evaluate and cache it."""
        if self.bypassed:
            return self.inner.evaluate(input_doc)
        try:
            key = json.dumps(input_doc, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):  # not JSON, a cycle, or nested too deeply to
            return self.inner.evaluate(input_doc)  # key: the engine's own answer (an EngineError), unkept
        hit = self._cache.get(key)
        if hit is not None:
            self.hits += 1
            self._cache.move_to_end(key)
            return hit
        self.misses += 1
        result = self.inner.evaluate(input_doc)
        self._cache[key] = result
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        if not self._judged and self.probe and self.hits + self.misses >= self.probe:
            self._judged = True  # judged once, on the first miss at or after the probe
            if self.hits < self.min_hit_rate * (self.hits + self.misses):
                self.bypassed = True
                self._cache.clear()
        return result
