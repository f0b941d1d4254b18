"""A small OPA Data API test server that evaluates with OPA's own Go library (``opa_bindings``).

It is not OPA's server (no bundles, decision logs or auth), but it speaks the part of the REST API
the enforcer uses, so the REST path can be tested on loopback in CI:

- ``POST /v1/data/{path}`` ``{"input": ...}`` -> ``{"result": ...}``, or ``{}`` when undefined
- ``GET /v1/data/{path}``, ``PUT /v1/data/{path}`` (204), ``GET /health``
- ``PUT /v1/policies/{id}`` (400 with OPA's error shape on a parse error), ``GET /v1/policies``,
  ``GET``/``DELETE /v1/policies/{id}``

Faults for ``POST /v1/data`` (the decision query) are switched with :attr:`OpaTestServer.fault`:
``delay`` (sleep ``delay`` seconds, then answer), ``http500``, ``malformed`` (invalid JSON body),
``undefined`` (``{}``), ``wrong_shape`` (``{"result": "..."}``), ``drop`` (headers with a
Content-Length, part of the body, then the connection is closed), ``trickle`` (a complete "allow"
answer, status line included, sent one byte every ``trickle_interval`` seconds: each read gets a
byte well within a per-read timeout), ``bad_reasons`` (``{"result": {"effect": "allow",
"reasons": 5}}``). A refused connection is a
stopped server (:meth:`OpaTestServer.stop`) or :func:`unused_port`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

FAULTS = ("delay", "http500", "malformed", "undefined", "wrong_shape", "drop", "trickle", "bad_reasons")
MAX_BODY = 8 * 1024 * 1024


def unused_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, owner: OpaTestServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._track(request)
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: clients that time out and go away are part of the tests."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    # -- plumbing --------------------------------------------------------------------------
    @property
    def owner(self) -> OpaTestServer:
        return self.server.owner

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        if data or status != 204:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, errors: list[Any] | None = None) -> None:
        doc: dict[str, Any] = {"code": code, "message": message}
        if errors:
            doc["errors"] = errors
        self._send(status, doc)

    def _route(self) -> tuple[str, str]:
        path = self.path.split("?", 1)[0]
        for prefix, kind in (("/v1/data", "data"), ("/v1/policies", "policies")):
            if path == prefix or path.startswith(prefix + "/"):
                return kind, path[len(prefix) :].strip("/")
        return path, ""

    def _count(self) -> None:
        kind, _rest = self._route()
        self.owner.requests[(self.command, kind)] += 1

    # -- verbs -----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._count()
        kind, rest = self._route()
        if kind == "/health":
            self._send(200, {})
        elif kind == "data":
            self._eval(rest, None)
        elif kind == "policies" and not rest:
            self._send(200, {"result": self.owner.policy_list()})
        elif kind == "policies":
            src = self.owner.policies.get(rest)
            if src is None:
                self._error(404, "resource_not_found", f"storage_not_found_error: policy id {rest!r}")
            else:
                self._send(200, {"result": {"id": rest, "raw": src}})
        else:
            self._error(404, "resource_not_found", "not found")

    def do_POST(self) -> None:
        self._count()
        kind, rest = self._route()
        try:
            body = json.loads(self._body() or b"{}")
        except ValueError as exc:
            self._error(400, "invalid_parameter", f"body is not JSON: {exc}")
            return
        if kind != "data":
            self._error(404, "resource_not_found", "not found")
            return
        input_doc = body.get("input") if isinstance(body, dict) else None
        if self._inject_fault():
            return
        self._eval(rest, input_doc)

    def do_PUT(self) -> None:
        self._count()
        kind, rest = self._route()
        raw = self._body()
        if kind == "policies" and rest:
            try:
                self.owner.put_policy(rest, raw.decode("utf-8"))
            except (OpaError, UnicodeDecodeError) as exc:
                self._error(
                    400,
                    "invalid_parameter",
                    "error(s) occurred while compiling module(s)",
                    [{"code": "rego_parse_error", "message": str(exc), "location": {"file": rest}}],
                )
                return
            self._send(200, {})
        elif kind == "data":
            try:
                self.owner.put_data(rest, json.loads(raw or b"null"))
            except (ValueError, OpaError) as exc:
                self._error(400, "invalid_parameter", str(exc))
                return
            self._send(204)
        else:
            self._error(404, "resource_not_found", "not found")

    def do_DELETE(self) -> None:
        self._count()
        kind, rest = self._route()
        if kind == "policies" and rest and self.owner.delete_policy(rest):
            self._send(200, {})
        else:
            self._error(404, "resource_not_found", "not found")

    # -- evaluation and faults -------------------------------------------------------------
    def _eval(self, rest: str, input_doc: Any) -> None:
        dotted = rest.replace("/", ".")
        try:
            value = self.owner.engine.eval_document(dotted, input_doc)
        except OpaUndefinedError:
            self._send(200, {})
            return
        except OpaError as exc:
            self._error(500, "internal_error", str(exc))
            return
        self._send(200, {"result": value})

    def _inject_fault(self) -> bool:
        fault = self.owner.fault
        if fault is None:
            return False
        self.owner.faults_served += 1
        if fault == "delay":
            self.owner._stopping.wait(self.owner.delay)
            return False  # answer normally, late
        if fault == "http500":
            self._error(500, "internal_error", "injected fault")
        elif fault == "malformed":
            self._send(200, raw=b'{"result": {"effect": "allow", ')
        elif fault == "undefined":
            self._send(200, {})
        elif fault == "wrong_shape":
            self._send(200, {"result": "allow"})
        elif fault == "bad_reasons":
            self._send(200, {"result": {"effect": "allow", "reasons": 5}})
        elif fault == "trickle":
            body = json.dumps({"result": {"effect": "allow", "reasons": []}}).encode()
            raw = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            self.close_connection = True
            for i in range(len(raw)):
                if self.owner._stopping.wait(self.owner.trickle_interval):
                    break
                try:
                    self.wfile.write(raw[i : i + 1])
                    self.wfile.flush()
                except OSError:  # the client cut the connection at its deadline
                    self.owner.trickle_cut += 1
                    break
        elif fault == "drop":
            full = json.dumps({"result": {"effect": "allow", "reasons": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(full)))
            self.end_headers()
            self.wfile.write(full[: len(full) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            raise ValueError(f"unknown fault {fault!r}")
        return True


class OpaTestServer:
    """The test server on ``127.0.0.1`` (port 0 = any free port), serving from a background thread.

    Attributes
    ----------
    fault
        One of :data:`FAULTS` or None, applied to every ``POST /v1/data`` query.
    delay
        Seconds the ``delay`` fault waits before answering.
    requests
        ``Counter`` of ``(method, "data" | "policies" | path)`` requests received.
    connections
        TCP connections accepted (keep-alive reuse shows as one connection for many requests).
    """

    def __init__(self) -> None:
        self.fault: str | None = None
        self.delay = 1.0
        self.trickle_interval = 0.05
        self.trickle_cut = 0
        self.requests: Counter[tuple[str, str]] = Counter()
        self.connections = 0
        self.faults_served = 0
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.engine = OpaEngine()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        port: int = self._httpd.server_address[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OpaTestServer:
        """Bind and serve in a daemon thread; returns self."""
        self._stopping.clear()
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection (keep-alive ones too)."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            socks, self._sockets = self._sockets, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpaTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_faults(self) -> None:
        """No fault, default delay, counters cleared."""
        self.fault, self.delay, self.faults_served = None, 1.0, 0
        self.requests.clear()

    def _track(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Go's net/http: no Nagle delay
        with self._lock:
            self.connections += 1
            self._sockets = [s for s in self._sockets if s.fileno() != -1]
            self._sockets.append(sock)

    # -- state -----------------------------------------------------------------------------
    def _rebuild(self, policies: dict[str, str], data: dict[str, Any]) -> None:
        engine = OpaEngine()
        for pid, src in sorted(policies.items()):
            engine.add_policy(pid, src)
        engine.add_data(data)
        self.engine, self.policies, self.data = engine, policies, data

    def put_policy(self, pid: str, src: str) -> None:
        """Add or replace a module; raises OpaError (and keeps the old state) when it does not parse."""
        with self._lock:
            self._rebuild({**self.policies, pid: src}, self.data)

    def delete_policy(self, pid: str) -> bool:
        """Remove a module; False when there was none."""
        with self._lock:
            if pid not in self.policies:
                return False
            self._rebuild({k: v for k, v in self.policies.items() if k != pid}, self.data)
            return True

    def put_data(self, path: str, value: Any) -> None:
        """Replace the document at ``path`` (slash-separated; empty = root, which must be an object)."""
        with self._lock:
            data = json.loads(json.dumps(self.data))
            parts = [p for p in path.split("/") if p]
            if not parts:
                if not isinstance(value, dict):
                    raise ValueError("root document must be an object")
                data = value
            else:
                node = data
                for p in parts[:-1]:
                    nxt = node.setdefault(p, {})
                    if not isinstance(nxt, dict):
                        raise ValueError(f"{p} is not an object")
                    node = nxt
                node[parts[-1]] = value
            self._rebuild(self.policies, data)

    def policy_list(self) -> list[dict[str, Any]]:
        """``GET /v1/policies`` result (id and raw source; no AST)."""
        return [{"id": pid, "raw": src, "ast": {}} for pid, src in sorted(self.policies.items())]
