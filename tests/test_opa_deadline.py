"""Total deadline and shape checks on the OPA REST path (issue 11): a real loopback socket server.

A server that trickles a complete "allow" answer one byte every 50 ms passes any per-read timeout;
the engine must still give up at its total deadline (connect + read + parse) and the pipeline must
deny a controlled chip within timeout + 0.5 s. Results of the wrong shape fail closed too.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
from enforcer.policy.opa_rest import OpaRestEngine, check_decision
from enforcer.ports import EngineError
from tests.opa_fixtures import opa_server_fixture, opa_server_session_fixture  # noqa: F401  (fixtures)
from tests.opa_server import OpaTestServer

US = AccountOrigin("111122223333", "US", "US", "US", "verified")
TIMEOUT = 0.25


def _req(itype: str = "p5.48xlarge") -> LaunchRequest:
    return LaunchRequest(
        "cloudtrail", "ec2:RunInstances", US.account_id, "us-east-1", items=[LaunchItem(itype, 1)]
    )


def test_trickling_server_is_cut_at_the_total_deadline(opa_server: OpaTestServer, make_enforcer: Any) -> None:
    opa_server.fault = "trickle"
    opa_server.trickle_interval = 0.05  # < the 0.25 s per-read timeout: every read gets a byte
    engine = OpaRestEngine(opa_server.url, "r", timeout=TIMEOUT)
    t0 = time.monotonic()
    d = make_enforcer([US], engine=engine).decide(_req())
    elapsed = time.monotonic() - t0
    assert d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]
    assert elapsed < TIMEOUT + 0.5, elapsed
    # the connection was really shut down: the server's next write fails
    deadline = time.monotonic() + 2
    while opa_server.trickle_cut == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert opa_server.trickle_cut >= 1
    engine.close()


def test_engine_recovers_after_a_cut_connection(opa_server: OpaTestServer) -> None:
    opa_server.fault = "trickle"
    engine = OpaRestEngine(opa_server.url, "r", timeout=TIMEOUT)
    with pytest.raises(EngineError, match="deadline"):
        engine.evaluate({"request": {"items": [], "account_id": "1"}})
    opa_server.fault = None
    assert engine.evaluate({"request": {"items": [], "account_id": "1"}})["effect"] == "allow"
    engine.close()


def _silent_listener() -> tuple[socket.socket, list[socket.socket]]:
    """Accepts connections and never answers (or answers one header byte every 50 ms)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []

    def loop() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)

            def dribble(c: socket.socket = c) -> None:
                try:
                    c.recv(65536)
                    for b in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 10_000:
                        c.sendall(bytes([b]))
                        time.sleep(0.05)
                except OSError:
                    return

            threading.Thread(target=dribble, daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv, conns


def test_trickled_status_line_and_headers_are_bounded_too(make_enforcer: Any) -> None:
    srv, conns = _silent_listener()
    try:
        url = f"http://127.0.0.1:{srv.getsockname()[1]}"
        engine = OpaRestEngine(url, "r", timeout=TIMEOUT)
        t0 = time.monotonic()
        d = make_enforcer([US], engine=engine).decide(_req())
        assert time.monotonic() - t0 < TIMEOUT + 0.5
        assert d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]
        engine.close()
    finally:
        srv.close()
        for c in conns:
            c.close()


def test_reasons_of_the_wrong_type_fail_closed(opa_server: OpaTestServer, make_enforcer: Any) -> None:
    opa_server.fault = "bad_reasons"
    engine = OpaRestEngine(opa_server.url, "r", timeout=TIMEOUT)
    d = make_enforcer([US], engine=engine).decide(_req())
    assert d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]
    engine.close()


@pytest.mark.parametrize(
    "value",
    [
        "allow",
        ["allow"],
        {"effect": "permit"},
        {"effect": "allow", "reasons": 5},
        {"effect": "allow", "reasons": "ORIGIN_RESTRICTED"},
        {"effect": "allow", "reasons": {"code": "X"}},
        {"effect": "deny", "reasons": [5]},
        {"effect": "deny", "reasons": [{"code": 5}]},
        {"effect": "deny", "reasons": [{"code": "lower_case"}]},
        {"effect": "deny", "reasons": [{"code": "A" * 65}]},
        {"effect": "deny", "reasons": [{"code": "\u00c9TAT"}]},
        {"effect": "deny", "reasons": [{"code": "X", "message": ["m"]}]},
        {"effect": "deny", "reasons": [{"code": "X"}] * 65},
    ],
)
def test_check_decision_refuses_malformed_shapes(value: Any) -> None:
    with pytest.raises(EngineError):
        check_decision(value)


def test_check_decision_accepts_well_formed() -> None:
    ok = {
        "effect": "deny",
        "reasons": [{"code": "ORIGIN_RESTRICTED", "message": "m", "severity": "critical"}],
    }
    assert check_decision(ok) is ok
    assert check_decision({"effect": "allow"})["effect"] == "allow"
