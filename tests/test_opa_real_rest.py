"""The REST engine against a REAL OPA server: decisions, documents, and the faults a real server has.

Faults produced with the real process: killed (SIGKILL) mid-session, restarted on the same port, hung
(SIGSTOP: the kernel still accepts, nothing answers -- the total deadline cuts it), no policy loaded
(undefined), a policy whose rules conflict (OPA answers 500), and a policy answering a decision of the
wrong shape. Faults the real server cannot be made to produce (a trickled body, a connection dropped
mid-response, invalid JSON, HTTP 503) stay on the fault-injecting test server (tests/test_opa_rest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enforcer.model import AccountOrigin, LaunchItem, LaunchRequest
from enforcer.policy.breaker import CircuitBreaker, CircuitOpenError
from enforcer.policy.opa_rest import OpaRestEngine
from enforcer.ports import EngineError
from tests.opa_real import POLICIES, RealOpa

US = AccountOrigin("111122223333", "US", "US", "US", "verified")
TIMEOUT = 0.5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def req(itype: str = "p5.48xlarge", account: str = US.account_id) -> LaunchRequest:
    return LaunchRequest("cloudtrail", "ec2:RunInstances", account, "us-east-1", items=[LaunchItem(itype, 1)])


@pytest.fixture(scope="module")
def real_opa() -> Iterator[RealOpa]:
    with RealOpa([POLICIES]) as server:
        yield server


def engine_on(opa: RealOpa, **kw: Any) -> OpaRestEngine:
    kw.setdefault("timeout", TIMEOUT)
    return OpaRestEngine(opa.url, "sha256:local", **kw)


def unavailable(d: Any) -> bool:
    return d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"] and not d.fail_open


# -- the happy path -----------------------------------------------------------------------------
def test_decisions_and_documents_from_the_real_server(real_opa: RealOpa, make_enforcer: Any) -> None:
    engine = engine_on(real_opa)
    assert engine.health() is True
    d = make_enforcer([US], engine=engine).decide(req())
    assert d.effect == "allow" and d.reasons == [] and d.engine == "opa"
    assert d.policy_revision == "sha256:local", "no bundle on the server: the local revision is recorded"
    denied = make_enforcer([], engine=engine).decide(req(account="999999999999"))
    assert denied.effect == "deny" and denied.reason_codes == ["ACCOUNT_UNKNOWN"]
    assert engine.eval_path("gpu.config.required_kyc") == "verified"
    with pytest.raises(EngineError, match="undefined"):
        engine.eval_path("gpu.launch.no_such_rule")
    engine.close()


def test_url_prefix_reaches_the_real_server_404(real_opa: RealOpa) -> None:
    engine = OpaRestEngine(real_opa.url + "/opa", "r", timeout=TIMEOUT)
    with pytest.raises(EngineError, match="HTTP 404"):
        engine.evaluate({})


# -- faults of a real process ---------------------------------------------------------------------
def test_killed_then_restarted_server(make_enforcer: Any) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_after=5.0, clock=clock)
    with RealOpa([POLICIES]) as opa:
        engine = engine_on(opa, breaker=breaker)
        enforcer = make_enforcer([US], engine=engine)
        assert enforcer.decide(req()).effect == "allow"  # a kept-alive connection now exists
        opa.kill()
        first = enforcer.decide(req())
        assert unavailable(first) and "connection" in first.reasons[0].message
        assert unavailable(enforcer.decide(req()))
        assert breaker.state == "open"
        third = enforcer.decide(req())
        assert unavailable(third) and "circuit open" in third.reasons[0].message
        opa.start()  # same port, same policies
        clock.now += 5.0
        assert enforcer.decide(req()).effect == "allow"
        assert breaker.state == "closed"
        engine.close()


def test_hung_server_is_cut_at_the_deadline(make_enforcer: Any) -> None:
    with RealOpa([POLICIES]) as opa:
        engine = engine_on(opa, timeout=0.3, breaker=CircuitBreaker(failure_threshold=100))
        enforcer = make_enforcer([US], engine=engine)
        assert enforcer.decide(req()).effect == "allow"
        opa.pause()
        try:
            start = time.perf_counter()
            d = enforcer.decide(req())
            elapsed = time.perf_counter() - start
        finally:
            opa.resume()
        message = d.reasons[0].message
        assert unavailable(d) and ("deadline" in message or "timeout" in message), message
        assert elapsed < 1.5, f"a hung server held a decision for {elapsed:.2f} s"
        # Resumed: the next decision is answered (a new connection; the cut one is never reused).
        assert enforcer.decide(req()).effect == "allow"
        engine.close()


def test_uncontrolled_chip_on_a_dead_server_follows_fail_policy(make_enforcer: Any) -> None:
    with RealOpa([POLICIES]) as opa:
        url = opa.url
    engine = OpaRestEngine(url, "r", timeout=TIMEOUT)
    closed = make_enforcer([US], engine=engine, fail_policy="closed").decide(req("g5.xlarge"))
    assert unavailable(closed)
    opened = make_enforcer([US], engine=OpaRestEngine(url, "r", timeout=TIMEOUT)).decide(req("g5.xlarge"))
    assert opened.effect in ("audit", "deny") and opened.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]
    # A controlled chip never fails open.
    assert unavailable(make_enforcer([US], engine=OpaRestEngine(url, "r", timeout=TIMEOUT)).decide(req()))


def test_server_without_our_policy_is_undefined_and_fails_closed(make_enforcer: Any) -> None:
    with RealOpa([]) as opa:
        engine = engine_on(opa)
        with pytest.raises(EngineError, match="undefined"):
            engine.evaluate({"request": {"items": []}})
        assert unavailable(make_enforcer([US], engine=engine).decide(req()))


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (  # two complete definitions disagree: OPA answers HTTP 500 (eval_conflict_error)
            'package gpu.launch\n\ndecision := {"effect": "allow"} if input.a\n\n'
            'decision := {"effect": "deny"} if input.b\n',
            "HTTP 500",
        ),
        ('package gpu.launch\n\ndecision := "allow"\n', "not an object"),
        ('package gpu.launch\n\ndecision := {"effect": "permit"}\n', "effect"),
        ('package gpu.launch\n\ndecision := {"effect": "allow", "reasons": [{"code": 7}]}\n', "UPPER_SNAKE"),
    ],
)
def test_a_wrong_policy_on_the_real_server_fails_closed(
    tmp_path: Path, make_enforcer: Any, module: str, match: str
) -> None:
    (tmp_path / "bad.rego").write_text(module)
    with RealOpa([tmp_path]) as opa:
        engine = engine_on(opa)
        with pytest.raises(EngineError, match=match):
            engine.evaluate({"a": True, "b": True})
        d = make_enforcer([US], engine=engine_on(opa)).decide(req())
        assert unavailable(d)


def test_breaker_short_circuits_a_dead_real_server(make_enforcer: Any) -> None:
    with RealOpa([POLICIES]) as opa:
        url = opa.url
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, clock=clock)
    engine = OpaRestEngine(url, "r", timeout=TIMEOUT, breaker=breaker)
    with pytest.raises(EngineError):
        engine.evaluate({})
    with pytest.raises(CircuitOpenError):
        engine.evaluate({})
    assert breaker.short_circuited == 1
