"""OPA decision logs into the hash-chained local log: ``enforcer audit ingest``.

OPA's ``decision_logs`` plugin uploads batches to ``POST {service url}/logs`` (``Content-Encoding:
gzip``, a JSON array of events: ``decision_id``, ``path``, ``input``, ``result``, ``timestamp``,
``bundles``, ``labels``, ``metrics`` ...). Each event becomes one chained record in OPA's order, its
trigger ``{"source": "opa-decision-log", "event_id": <OPA decision_id>}`` -- the log's idempotency key,
so a batch OPA re-sends (after a timeout, say) is not logged twice. The record keeps OPA's decision id,
the bundle revision OPA reports, the result's effect and reasons, and the input (masked like ours).

Only launch decisions are logged: events for another path (OPA logs every Data API query, e.g. a
``data.gpu.config`` lookup) are counted as ignored. A decision event whose result is not a well-formed
decision, or that carries OPA's evaluation ``error``, is logged as the pipeline would have decided it: a
fail-closed deny (``POLICY_ENGINE_UNAVAILABLE``) -- kept, never dropped, and never stalling the stream.
A batch that is not OPA's format at all (not gzip, too large, not a JSON array, an event that is not an
object or has no usable decision id) is refused whole with 400 and nothing of it is written. A write
failure answers 500 (OPA retries); events already written are then skipped as duplicates on retry.
"""

from __future__ import annotations

import gzip
import hmac
import io
import json
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from enforcer.model import Decision, Effect, LaunchRequest, Reason
from enforcer.policy import DECISION_PATH
from enforcer.policy.opa_rest import check_decision
from enforcer.policy.provenance import server_version
from enforcer.ports import AuditSink, EngineError

SOURCE = "opa-decision-log"
#: Largest upload accepted, compressed (OPA's default upload_size_limit_bytes is 32 KiB).
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Largest upload accepted once decompressed (a gzip bomb stops here).
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 100_000
_MAX_ID = 128


class IngestError(ValueError):
    """A batch that is not OPA decision-log JSON; the message says why."""


@dataclass(slots=True)
class IngestStats:
    """Counters of one ingest endpoint."""

    batches: int = 0
    events: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)


def decode_batch(body: bytes, encoding: str | None) -> list[dict[str, Any]]:
    """Decompress (when gzip) and parse one upload; raise IngestError when it is not a list of events."""
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(f"body larger than {MAX_BODY_BYTES} bytes")
    raw = body
    if (encoding or "").strip().lower() == "gzip":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
                raw = gz.read(MAX_JSON_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise IngestError(f"body is not valid gzip ({exc})") from exc
        if len(raw) > MAX_JSON_BYTES:
            raise IngestError(f"decompressed body larger than {MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeError) as exc:
        raise IngestError(f"body is not JSON ({exc})") from exc
    except RecursionError as exc:  # "[[[[...]]]]" nested deeper than the parser goes
        raise IngestError("body is nested too deeply") from exc
    if not isinstance(doc, list):
        raise IngestError(f"body is a JSON {type(doc).__name__}, not an array of decision events")
    if len(doc) > MAX_EVENTS:
        raise IngestError(f"more than {MAX_EVENTS} events in one upload")
    for i, ev in enumerate(doc):
        _check_event(i, ev)
    return doc


def _check_event(i: int, ev: Any) -> None:
    if not isinstance(ev, dict):
        raise IngestError(f"event {i} is not an object")
    did = ev.get("decision_id")
    if not isinstance(did, str) or not did or len(did) > _MAX_ID or not did.isprintable():
        raise IngestError(f"event {i} has no usable decision_id")


def is_launch_decision(ev: dict[str, Any]) -> bool:
    """True for an event of the launch decision (``path`` ``gpu/launch/decision``, any slashes/dots)."""
    path = ev.get("path")
    return isinstance(path, str) and path.strip("/").replace(".", "/") == DECISION_PATH


def _revision(ev: dict[str, Any]) -> str:
    bundles = ev.get("bundles")
    if isinstance(bundles, dict) and bundles:
        revs = [
            f"{n}={b.get('revision', '')}" if len(bundles) > 1 else str(b.get("revision", ""))
            for n, b in sorted(bundles.items())
            if isinstance(b, dict)
        ]
        return ",".join(revs)[:200] or "unknown"
    return "unknown"


def _timestamp(ev: dict[str, Any]) -> str:
    ts = ev.get("timestamp")
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            pass
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def event_decision(ev: dict[str, Any]) -> Decision:
    """The Decision an OPA decision-log event stands for (decision_id and trigger = OPA's id)."""
    inp = _obj(ev.get("input"))
    req_doc, account = _obj(inp.get("request")), _obj(inp.get("account"))
    effect: Effect
    try:
        if ev.get("error") is not None:  # OPA failed to evaluate: the launch was not allowed by policy
            raise EngineError(f"OPA evaluation error: {str(ev['error'])[:400]}")
        result = check_decision(ev.get("result"), "result")
        effect = "allow" if result["effect"] == "allow" else "deny" if result["effect"] == "deny" else "audit"
        reasons = [
            Reason(str(r["code"]), str(r.get("message") or ""), str(r.get("severity") or ""))
            for r in result.get("reasons") or []
        ]
    except EngineError as exc:  # as the pipeline does with a bad answer: fail closed, and keep the record
        effect, reasons = "deny", [Reason("POLICY_ENGINE_UNAVAILABLE", f"{exc}; failing closed", "critical")]
    request = LaunchRequest(
        source=SOURCE,
        action=str(req_doc.get("action") or "opa:decision")[:200],
        account_id=str(req_doc.get("account_id") or account.get("account_id") or "unknown")[:64],
        region=str(req_doc.get("region") or "")[:64],
        event_id=str(ev["decision_id"]),
    )
    metrics = {str(k): float(v) for k, v in _obj(ev.get("metrics")).items() if isinstance(v, int | float)}
    return Decision(
        decision_id=str(ev["decision_id"]),
        timestamp=_timestamp(ev),
        effect=effect,
        enforced=False,
        reasons=reasons,
        request=request,
        policy_revision=_revision(ev),
        engine="opa",
        engine_version=server_version(_obj(ev.get("labels"))),
        mode="dryrun",
        metrics=metrics,
        input=inp,
    )


def ingest_batch(sink: AuditSink, events: list[dict[str, Any]], stats: IngestStats | None = None) -> int:
    """Append ``events`` (already checked by ``decode_batch``) in order; return how many were new."""
    new = 0
    for ev in events:
        if not is_launch_decision(ev):
            if stats is not None:
                stats.ignored += 1
            continue
        receipt = sink.write(event_decision(ev), None)
        if receipt.duplicate:
            if stats is not None:
                stats.duplicates += 1
        else:
            new += 1
    if stats is not None:
        stats.batches += 1
        stats.events += new
    return new


class IngestServer(ThreadingHTTPServer):
    """Loopback HTTP endpoint for OPA's decision-log uploads (``POST <prefix>/logs``).

    Parameters
    ----------
    address
        ``(host, port)``; port 0 picks a free one.
    sink
        The audit log to append to.
    token
        When set, uploads must carry ``Authorization: Bearer <token>`` (OPA's ``credentials.bearer``).
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], sink: AuditSink, token: str | None = None) -> None:
        super().__init__(address, _Handler)
        self.sink = sink
        self.token = token
        self.stats = IngestStats()
        self.write_lock = threading.Lock()  # one batch at a time: records keep OPA's order

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: IngestServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stall mid-request (a slow-loris holds a thread, not forever)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.server.token is None:
            return True
        got = self.headers.get("Authorization", "")
        want = f"Bearer {self.server.token}"
        return hmac.compare_digest(got.encode(), want.encode())

    def do_POST(self) -> None:
        if not self.path.split("?", 1)[0].rstrip("/").endswith("/logs"):
            self._reply(404, {"error": "decision logs are uploaded to POST /logs"})
            return
        if not self._authorised():
            self.server.stats.rejected += 1
            self._reply(401, {"error": "missing or wrong bearer token"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, {"error": "Content-Length required"})
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self.server.stats.rejected += 1
            self.close_connection = True
            self._reply(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(length)
        try:
            events = decode_batch(body, self.headers.get("Content-Encoding"))
        except IngestError as exc:
            self.server.stats.rejected += 1
            self.server.stats.errors.append(str(exc)[:300])
            self._reply(400, {"error": str(exc)[:500]})
            return
        try:
            with self.server.write_lock:
                before = self.server.stats.duplicates
                new = ingest_batch(self.server.sink, events, self.server.stats)
                dup = self.server.stats.duplicates - before
        except Exception as exc:  # AuditWriteError and anything else: OPA keeps the batch and retries
            self.server.stats.errors.append(f"write failed: {exc}"[:300])
            self._reply(500, {"error": f"audit write failed: {type(exc).__name__}"})
            return
        self._reply(200, {"accepted": new, "duplicates": dup, "ignored": len(events) - new - dup})
