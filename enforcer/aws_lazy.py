"""A boto3 client that is created on its first use, so a cold start loads only the models it calls.

Building a botocore client loads its service model (EC2's is several MB of JSON). The handlers wire
every backend at cold start, but one event touches only a few of them: a client that is never called
must never be built. :class:`LazyClient` stands in for the client and builds it through a callable the
first time an attribute (an operation, ``meta``, ``exceptions`` ...) is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LazyClient:
    """Stand-in for a boto3 client, built by ``make`` on the first attribute access.

    Parameters
    ----------
    make
        Returns the real client (a ClientFactory lookup: cached per service, account and region).
    service
        The service name, for ``repr`` and :attr:`service_name` (readable without building).
    pin
        Keep the real client once built (home-account clients, whose credentials never expire).
        Unpinned stand-ins ask ``make`` on every access, so an assumed role's refreshed credentials
        are used by a stand-in that lives longer than them.
    """

    __slots__ = ("_lock", "_make", "_pin", "_real", "service_name")

    def __init__(self, make: Callable[[], Any], service: str, *, pin: bool = True) -> None:
        self._make = make
        self._pin = pin
        self._real: Any = None
        self._lock = threading.Lock()
        self.service_name = service

    def resolve(self) -> Any:
        """The real client (built now if it was not yet)."""
        if not self._pin:
            return self._make()
        real = self._real
        if real is None:
            with self._lock:
                if self._real is None:
                    self._real = self._make()
                real = self._real
        return real

    @property
    def built(self) -> bool:
        """Whether the real client exists (pinned stand-ins only; tests and the bench check it)."""
        return self._real is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        state = "built" if self._real is not None else "not built"
        return f"<LazyClient {self.service_name} ({state})>"


def resolve(client: Any) -> Any:
    """The real client behind ``client`` (itself when it is not a :class:`LazyClient`)."""
    return client.resolve() if isinstance(client, LazyClient) else client
