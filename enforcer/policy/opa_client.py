"""The HTTP side of the OPA REST engine: the client, the connections a deadline can cut, error lines.

``make_client`` builds an ``OpaClient`` (one keep-alive ``requests`` session) for a base URL, keeping a
path prefix (OPA behind a reverse proxy). ``track_connections`` makes its pools report the connection
each worker takes (``InFlight``), so a query past its deadline is cut at the socket rather than left
reading. ``describe`` turns any client-stack exception into one short line.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from opa_client import OpaClient
from opa_client import errors as opa_errors
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from enforcer.model import InputError

#: Longest detail taken from an error body into a message.
_MAX_DETAIL = 200
#: What the client stack raises: requests (timeouts, refused/dropped connections, HTTP errors, bad JSON,
#: which is a ValueError), opa_client.errors, and urllib3/http.client/socket errors should any leak.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    ValueError,
    TypeError,
    opa_errors.ConnectionsError,
    opa_errors.QueryExecuteError,
    opa_errors.PolicyNotFoundError,
    opa_errors.PathNotFoundError,
    opa_errors.RegoParseError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)


def _split_url(url: str) -> tuple[str, str, int, str]:
    """Return ``(scheme, host, port, prefix)`` of an OPA base URL, or raise InputError."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InputError(f"bad OPA URL {url!r}: {exc}", "BAD_OPA_URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"bad OPA URL {url!r}: expected http(s)://HOST[:PORT][/PREFIX]", "BAD_OPA_URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(f"bad OPA URL {url!r}: no query, fragment or credentials allowed", "BAD_OPA_URL")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.scheme, host, port, parts.path.rstrip("/")


class InFlight:
    """The connection a worker is using for one query, so a missed deadline can cut it."""

    __slots__ = ("abandoned", "conn")

    def __init__(self) -> None:
        self.conn: Any = None
        self.abandoned = False

    def cut(self) -> None:
        """Shut the connection's socket down: the worker's pending read fails at once."""
        self.abandoned = True
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


#: The query the current worker thread is running (set by the engine around each query).
worker_state = threading.local()


def _note_conn(conn: Any) -> Any:
    holder = getattr(worker_state, "in_flight", None)
    if isinstance(holder, InFlight):
        holder.conn = conn
    return conn


class _TrackedHTTPPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _note_conn(super()._get_conn(timeout))


class _TrackedHTTPSPool(HTTPSConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> Any:
        return _note_conn(super()._get_conn(timeout))


def track_connections(session: requests.Session) -> None:
    """Make the session's pools report the connection each worker takes (see ``InFlight``)."""
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        if isinstance(adapter, HTTPAdapter):
            adapter.poolmanager.pool_classes_by_scheme = {
                "http": _TrackedHTTPPool,
                "https": _TrackedHTTPSPool,
            }


def make_client(
    url: str,
    timeout: float,
    retries: int = 0,
    token: str | None = None,
    trust_env: bool = False,
) -> OpaClient:
    """Create an ``OpaClient`` for the base ``url`` (``http(s)://HOST[:PORT][/PREFIX]``).

    Parameters
    ----------
    url
        OPA's base URL; a path prefix (OPA behind a reverse proxy) is kept.
    timeout
        Seconds for connect and for each read.
    retries
        urllib3 retries (0 for decisions; uploads may use a few, PUT being idempotent).
    token
        Optional bearer token.
    trust_env
        Honour proxy variables and ``.netrc`` (off: a sidecar must never be reached via a proxy).

    Raises
    ------
    model.InputError
        When the URL is not usable.
    """
    if timeout <= 0:
        raise InputError(f"OPA timeout must be positive, got {timeout}", "BAD_OPA_TIMEOUT")
    scheme, host, port, prefix = _split_url(url)
    client = OpaClient(
        host=host, port=port, ssl=scheme == "https", token=token, retries=retries, timeout=timeout
    )
    if prefix:
        client.root_url = f"{client.schema}{host}:{port}{prefix}/{client.version}"
    client._session.trust_env = trust_env
    return client


def _http_detail(exc: requests.HTTPError) -> str:
    resp = exc.response
    if resp is None:
        return str(exc)[:_MAX_DETAIL]
    detail = ""
    try:
        body = resp.json()
        if isinstance(body, dict):
            detail = f": {body.get('code', '')} {body.get('message', '')}".rstrip()
    except ValueError:
        pass
    return f"HTTP {resp.status_code}{detail}"[:_MAX_DETAIL]


def describe(exc: BaseException) -> str:
    """One short line for an exception raised while querying OPA."""
    if isinstance(exc, requests.HTTPError):
        return _http_detail(exc)
    if isinstance(exc, requests.Timeout):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, requests.ConnectionError):
        return f"connection failed ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-response"
    if isinstance(exc, json.JSONDecodeError):  # requests' JSONDecodeError is one too
        return "response is not valid JSON"
    msg = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {msg}"[:_MAX_DETAIL]
