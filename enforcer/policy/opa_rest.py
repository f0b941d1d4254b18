"""OPA server engine: ``data.gpu.launch.decision`` over OPA's Data API with ``opa-python-client`` 3.0.

One ``OpaClient`` (one keep-alive ``requests`` session) per engine, an explicit short timeout, no
retries (urllib3 would not retry a POST anyway, and a blind retry doubles the worst case), and a
circuit breaker so a dead server costs one timeout per window rather than one per launch.

Every failure -- ``requests`` exceptions (timeouts, refused or dropped connections, HTTP errors,
bad JSON), ``opa_client.errors``, a body of the wrong shape, an undefined result (``{}``) -- raises
``ports.EngineError``; the pipeline turns that into a fail-closed deny.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from enforcer.model import InputError
from enforcer.policy import DECISION_PATH
from enforcer.policy.breaker import CircuitBreaker
from enforcer.policy.limits import refuse_deep
from enforcer.policy.opa_client import (
    CLIENT_ERRORS,
    InFlight,
    describe,
    make_client,
    track_connections,
    worker_state,
)
from enforcer.policy.provenance import RevisionTracker
from enforcer.ports import EngineError

DEFAULT_URL = "http://127.0.0.1:8181"
DEFAULT_TIMEOUT = 0.25
#: Longest the total deadline of a query may exceed its per-operation timeout (seconds).
MAX_GRACE = 0.5
#: Most decision queries in flight at once per engine (each runs in a worker under a total deadline).
MAX_IN_FLIGHT = 8
#: Effects a decision may carry; anything else is an engine error (fail closed).
EFFECTS = ("allow", "deny", "audit")
#: Most reasons taken from one decision (a larger list is a malformed answer).
MAX_REASONS = 64

__all__ = [
    "CLIENT_ERRORS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "OpaRestEngine",
    "check_decision",
    "make_client",
    "plain_numbers",
]

#: Every query asks OPA which bundle revision answered it (see ``provenance``).
_PROVENANCE: dict[str, Any] = {"provenance": "true"}


def check_decision(value: Any, where: str = "decision") -> dict[str, Any]:
    """Return ``value`` when it is a well-formed decision object; raise EngineError otherwise.

    A decision is ``{"effect": "allow"|"deny"|"audit", "reasons": [{"code": str, ...}, ...]}``
    (``reasons`` may be absent). Anything else -- a string, a list, a reason that is not an
    object, a code that is not an UPPER_SNAKE string, a message that is not a string -- is refused
    so the pipeline fails closed instead of raising on it later.
    """
    if not isinstance(value, dict):
        raise EngineError(f"{where} is a {type(value).__name__}, not an object")
    if value.get("effect") not in EFFECTS:
        raise EngineError(f"{where}.effect is not one of {', '.join(EFFECTS)}")
    reasons = value.get("reasons", [])
    if reasons is None:
        reasons = []
    if not isinstance(reasons, list) or len(reasons) > MAX_REASONS:
        raise EngineError(f"{where}.reasons is not a list of at most {MAX_REASONS} reasons")
    for r in reasons:
        if not isinstance(r, dict):
            raise EngineError(f"{where}.reasons holds a {type(r).__name__}, not an object")
        code = r.get("code")
        if (
            not isinstance(code, str)
            or not code.isascii()
            or not code
            or len(code) > 64
            or not code.replace("_", "A").isalnum()
        ):
            raise EngineError(f"{where}.reasons has a code that is not an UPPER_SNAKE string")
        if not code.isupper():
            raise EngineError(f"{where}.reasons has a code that is not an UPPER_SNAKE string")
        for k in ("message", "severity"):
            if k in r and r[k] is not None and not isinstance(r[k], str):
                raise EngineError(f"{where}.reasons[].{k} is not a string")
    return value


def plain_numbers(value: Any) -> Any:
    """``value`` with every integral float written as an int (2732032.0 -> 2732032), recursively.

    The embedded engine reads a JSON number like Go's ``float64`` (``2732032.0`` is ``2732032``); an OPA
    server keeps the literal, so ``sprintf("%v")`` of the same input gave ``2.732032e+06`` there. Sending
    integral numbers without the fraction (as RFC 8785 does) gives both engines the same document.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_numbers(v) for v in value]
    return value


class OpaRestEngine:
    """``ports.PolicyEngine`` on an OPA server, through ``opa-python-client`` ``query_rule``.

    Parameters
    ----------
    url
        OPA base URL, e.g. ``http://127.0.0.1:8181``.
    revision
        Revision of the policy bundle the server runs (recorded in each decision).
    timeout
        Seconds for connect and for each read (default 0.25). The whole query -- connect, send,
        every read and the JSON parse -- also ends by ``timeout + min(timeout, 0.5)``: a server
        that trickles its answer is cut off there (the connection is shut down) and the query
        fails closed.
    breaker
        Circuit breaker; None creates ``CircuitBreaker()`` (3 failures, 5 s open).
    path
        Slash-separated document path of the decision under ``/v1/data``.
    token
        Optional bearer token for OPA's authentication.
    trust_env
        Let ``requests`` use proxy variables (off by default).
    """

    name = "opa"

    def __init__(
        self,
        url: str,
        revision: str,
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
        path: str = DECISION_PATH,
        token: str | None = None,
        trust_env: bool = False,
    ) -> None:
        segments = [s for s in path.strip("/").split("/") if s]
        if not segments:
            raise InputError("decision path must not be empty", "BAD_OPA_PATH")
        self.url = url
        self.local_revision = revision
        self._revisions = RevisionTracker(revision)
        self.timeout = timeout
        #: The whole query (connect, send, every read, parse) ends by then: ``timeout`` per operation as
        #: before, plus at most 0.5 s, so a trickling server never holds a decision past timeout + 0.5 s.
        self.deadline = timeout + min(timeout, MAX_GRACE)
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self.path = "/".join(segments)
        self._client = make_client(url, timeout, retries=0, token=token, trust_env=trust_env)
        track_connections(self._client._session)
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="opa-query")

    # -- ports.PolicyEngine ----------------------------------------------------------------
    def evaluate(self, input_doc: dict[str, Any]) -> dict[str, Any]:
        """Evaluate the decision document for ``input_doc``.

        Raises
        ------
        ports.EngineError
            On any transport, HTTP, JSON or shape failure, an undefined decision, or an open circuit.
        """
        value = self._query(self.path.split("/"), input_doc)
        return check_decision(value, f"data.{self.path.replace('/', '.')}")

    def eval_path(self, dotted: str, input_doc: dict[str, Any] | None = None) -> Any:
        """Evaluate the document ``data.<dotted>`` (``POST /v1/data/<path>``) and return its value.

        Raises
        ------
        ports.EngineError
            As :meth:`evaluate`; an undefined document is an error (as on the embedded engine).
        """
        segments = [s for s in dotted.split(".") if s]
        if not segments:
            raise EngineError("empty document path")
        return self._query(segments, input_doc)

    def health(self) -> bool:
        """True when ``GET /health`` answers 200 (never raises)."""
        try:
            return bool(self._client.check_health())
        except Exception:
            return False

    def close(self) -> None:
        """Release the keep-alive connection and the query workers."""
        self._client.close_connection()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------
    @property
    def revision(self) -> str:
        """The policy revision the server reported for this thread's last query (else the local one)."""
        return self._revisions.current

    @revision.setter
    def revision(self, value: str) -> None:
        """Set the local revision (what the server's is compared with, and recorded without one)."""
        self.local_revision = value
        self._revisions.local = value

    @property
    def version(self) -> str | None:
        """The OPA version the server reported for this thread's last query (audit ``labels.version``)."""
        return self._revisions.version

    @property
    def revision_mismatches(self) -> int:
        """Answers whose server revision differed from the local policy directory's."""
        return self._revisions.mismatches

    def _query(self, segments: list[str], input_doc: dict[str, Any] | None) -> Any:
        # as the in-process engines refuse it; an OPA server reads JSON nested to 10,000 levels and would
        # decide (the input's fault: no breaker failure)
        refuse_deep(input_doc)
        dotted = ".".join(segments)
        body = self.breaker.call(lambda: self._post(segments, input_doc))
        self._revisions.note(body.get("provenance"))
        if "result" not in body:
            raise EngineError(f"data.{dotted} is undefined on the OPA server (policy not loaded?)")
        return body["result"]

    def _post(self, segments: list[str], input_doc: dict[str, Any] | None) -> dict[str, Any]:
        """One query under the total deadline: a worker does connect + send + read + parse."""
        holder = InFlight()
        try:
            future = self._pool.submit(self._post_worker, holder, segments, input_doc)
        except RuntimeError as exc:  # the engine was closed
            raise EngineError(f"OPA query failed: {exc}") from exc
        try:
            return future.result(timeout=self.deadline)
        except FutureTimeout:
            holder.cut()
            future.cancel()
            raise EngineError(
                f"OPA query failed: no complete answer within the {self.deadline:g} s deadline"
            ) from None

    def _post_worker(
        self, holder: InFlight, segments: list[str], input_doc: dict[str, Any] | None
    ) -> dict[str, Any]:
        worker_state.in_flight = holder
        try:
            return self._post_once(segments, input_doc)
        finally:
            worker_state.in_flight = None
            if holder.abandoned and holder.conn is not None:  # never hand a cut connection back
                with contextlib.suppress(Exception):  # best effort: it is already shut down
                    holder.conn.close()

    def _post_once(self, segments: list[str], input_doc: dict[str, Any] | None) -> dict[str, Any]:
        package, rule = (".".join(segments[:-1]), segments[-1]) if len(segments) > 1 else (segments[0], None)
        try:
            body = self._client.query_rule(
                plain_numbers(input_doc), package_path=package, rule_name=rule, query_params=_PROVENANCE
            )
        except CLIENT_ERRORS as exc:
            raise EngineError(f"OPA query failed: {describe(exc)}") from exc
        except Exception as exc:  # anything else from the client stack still fails closed
            raise EngineError(f"OPA query failed: {describe(exc)}") from exc
        if not isinstance(body, dict):
            raise EngineError(f"OPA returned a {type(body).__name__}, not a JSON object")
        return body
