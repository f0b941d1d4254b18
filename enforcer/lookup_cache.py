"""A short-lived, bounded cache in front of the account directory and the licence register.

A warm Lambda container decides many launches of the same few accounts; reading the directory item
and querying the licence register for each one put two DynamoDB round trips before the decision on
every deny (issue 16). Both are read here through a cache kept ``ttl`` seconds per account:

- what a lookup returned (an origin, an unknown account, a licence list) is served for ``ttl``
  seconds, then read again; a failed lookup is never cached (the pipeline fails closed on it and
  the next decision reads again);
- entries are bounded (:data:`MAX_ENTRIES`, oldest dropped first) and keyed by the account id the
  directory itself validates;
- callers get copies, so nothing a decision does to a value changes the cached one.

The cost is staleness: a directory change or a revoked licence reaches a warm guard within ``ttl``
seconds (``Config.lookup_ttl``: ``ENFORCER_LOOKUP_TTL``, default 30, at most 300, ``0`` turns it off).
Only the reactive guard decides through the cache (:func:`cached_view`): it acts after the launch
anyway, and the sweep re-decides what runs. The hook and the broker, which prevent, read every time.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from enforcer.model import AccountOrigin
from enforcer.pipeline import Enforcer

#: Most accounts kept per cache.
MAX_ENTRIES = 10_000

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values by key for ``ttl`` seconds, at most ``max_entries`` of them.

    Parameters
    ----------
    ttl
        Seconds a value is served (> 0).
    max_entries
        Entries kept; the oldest is dropped first.
    clock
        Monotonic seconds (injected by tests).
    """

    def __init__(
        self, ttl: float, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self._items: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, load: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``load()`` (cached when it returns; raised otherwise)."""
        now = self.clock()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self.hits += 1
                return copy.deepcopy(hit[1])
        value = load()
        with self._lock:
            self.misses += 1
            self._items.pop(key, None)
            while len(self._items) >= self.max_entries:
                del self._items[next(iter(self._items))]
            self._items[key] = (now, copy.deepcopy(value))
        return value

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._items.clear()


class CachedDirectory:
    """An account directory read through a :class:`TtlCache` (other attributes pass through)."""

    def __init__(self, inner: Any, cache: TtlCache[AccountOrigin | None]) -> None:
        self.inner = inner
        self.cache = cache

    def get(self, account_id: str) -> AccountOrigin | None:
        """See ``ports.AccountDirectory.get``."""
        return self.cache.get(account_id, lambda: self.inner.get(account_id))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CachedLicences:
    """A licence source whose ``for_account`` is read through a :class:`TtlCache`."""

    def __init__(self, inner: Any, cache: TtlCache[list[dict[str, Any]]]) -> None:
        self.inner = inner
        self.cache = cache

    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """See ``ports.LicenceSource.for_account``."""
        return self.cache.get(account_id, lambda: self.inner.for_account(account_id))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def cached_view(enforcer: Enforcer, ttl: float, clock: Callable[[], float] = time.monotonic) -> Enforcer:
    """The reactive guard's view of ``enforcer``: the same pipeline (engine, audit, counters ...) with
    its account directory and licence register behind caches of ``ttl`` seconds.

    Only the guard decides through it: the guard acts after the launch and the sweep re-decides what
    runs, so a change reaching it within ``ttl`` seconds is enough. The preventive paths (hook,
    broker) keep reading the directory and the register on every decision, so a revoked licence
    or a re-classified account stops the next launch there. ``ttl <= 0`` returns ``enforcer``.
    """
    if ttl <= 0:
        return enforcer
    view = copy.copy(enforcer)
    view.accounts = CachedDirectory(enforcer.accounts, TtlCache(ttl, clock=clock))
    if enforcer.licences is not None:
        view.licences = CachedLicences(enforcer.licences, TtlCache(ttl, clock=clock))
    return view
