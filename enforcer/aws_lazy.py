"""A boto3 client that is created on its first use, so a cold start loads only the models it calls.

Building a botocore client loads its service model (EC2's is several MB of JSON). The handlers wire
every backend at cold start, but one event touches only a few of them: a client that is never called
must never be built. :class:`LazyClient` stands in for the client and builds it through a callable the
first time an attribute (an operation, ``meta``, ``exceptions`` ...) is read.

A stand-in may be built on a trimmed model (:mod:`enforcer.aws_models`: EC2, DynamoDB): then any operation the
trimmed client lacks, and every paginator or waiter outside it, is served by a client on botocore's
full model, built when first asked for.
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
    full
        Returns a client of the same account and region on botocore's full model, when ``make``
        builds one on a trimmed model; ``operations`` then names the methods the trimmed one has.
    """

    __slots__ = ("_full", "_lock", "_make", "_ops", "_pin", "_real", "service_name")

    def __init__(
        self,
        make: Callable[[], Any],
        service: str,
        *,
        pin: bool = True,
        full: Callable[[], Any] | None = None,
        operations: frozenset[str] | None = None,
    ) -> None:
        self._make = make
        self._pin = pin
        self._real: Any = None
        self._lock = threading.Lock()
        self._full = full if operations is not None else None
        self._ops = operations or frozenset()
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
        if self._full is None or name in self._ops or name in ("meta", "exceptions"):
            return getattr(self.resolve(), name)
        if name in ("get_paginator", "can_paginate"):
            return self._by_operation(name)
        if name == "get_waiter":  # a waiter names its operation only in its own definition
            return getattr(self._full(), name)
        try:
            return getattr(self.resolve(), name)
        except AttributeError:  # an operation outside the trimmed model
            return getattr(self._full(), name)

    def _by_operation(self, name: str) -> Callable[..., Any]:
        def call(operation_name: str, *args: Any, **kwargs: Any) -> Any:
            assert self._full is not None
            client = self.resolve() if operation_name in self._ops else self._full()
            return getattr(client, name)(operation_name, *args, **kwargs)

        return call

    def __repr__(self) -> str:
        state = "built" if self._real is not None else "not built"
        return f"<LazyClient {self.service_name} ({state})>"


def resolve(client: Any) -> Any:
    """The real client behind ``client`` (itself when it is not a :class:`LazyClient`)."""
    return client.resolve() if isinstance(client, LazyClient) else client


class LazySigner:
    """A checkpoint signer (``audit.signing.Signer``) built on first use, not at cold start.

    ``KmsSigner`` reads and checks its key's public half when created: a KMS client and a call that a
    first deny does not need (checkpoints are sealed later). A failure to build is raised by the use
    that needed it (a seal, which is retried) and building is tried again next time.

    Parameters
    ----------
    make
        Builds the real signer.
    alg
        The real signer's algorithm (known without building it: ``KmsSigner.alg``).
    """

    def __init__(self, make: Callable[[], Any], alg: str) -> None:
        self._make = make
        self._real: Any = None
        self._lock = threading.Lock()
        self.alg = alg

    def resolve(self) -> Any:
        """The real signer (built now if it was not yet)."""
        with self._lock:
            if self._real is None:
                self._real = self._make()
            return self._real

    @property
    def key_id(self) -> str:
        """The real signer's key id."""
        return str(self.resolve().key_id)

    @key_id.setter
    def key_id(self, value: str) -> None:  # the Signer protocol declares a plain attribute
        raise AttributeError("a signer's key id is its key's fingerprint; it cannot be set")

    def sign(self, message: bytes) -> bytes:
        """Sign with the real signer."""
        sig: bytes = self.resolve().sign(message)
        return sig

    def public_key_pem(self) -> bytes:
        """The real signer's public key (SubjectPublicKeyInfo PEM)."""
        pem: bytes = self.resolve().public_key_pem()
        return pem


class LazyAttestations:
    """An attestation provider (``ports.AttestationProvider``) built on the first reseller account.

    Building the registry provider imports the JWS and x509 stack; a direct account (no reseller)
    needs none of it, and the registry provider's answer for one is fixed: ``not_required``.

    Parameters
    ----------
    make
        Builds the real provider (``RegistryAttestationProvider`` over the DynamoDB registry).
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._real: Any = None
        self._lock = threading.Lock()

    def resolve(self) -> Any:
        """The real provider (built now if it was not yet)."""
        with self._lock:
            if self._real is None:
                self._real = self._make()
            return self._real

    def for_account(self, origin: Any, now: float, ref: str | None = None) -> Any:
        """``not_required`` for a direct account, else the real provider's answer."""
        if origin.reseller is None and self._real is None:
            from enforcer.model import AttestationResult

            return AttestationResult("not_required", detail="direct account (no reseller)")
        return self.resolve().for_account(origin, now, ref)
