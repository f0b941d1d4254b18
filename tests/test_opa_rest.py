"""The OPA REST path against the loopback test server: decisions, faults, fail-closed, breaker, push."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.model import AccountOrigin, InputError, LaunchItem, LaunchRequest
from enforcer.policy.breaker import CircuitBreaker, CircuitOpenError
from enforcer.policy.opa_rest import OpaRestEngine
from enforcer.policy.push import PolicyPushError, push_policies
from enforcer.ports import EngineError
from tests.opa_fixtures import opa_server_fixture, opa_server_session_fixture  # noqa: F401  (fixtures)
from tests.opa_server import FAULTS, OpaTestServer, unused_port

ROOT = Path(__file__).resolve().parents[1]
US = AccountOrigin("111122223333", "US", "US", "US", "verified")
TIMEOUT = 0.25
#: For a server that answers normally: long enough for a loaded CI machine (a first query compiles on the
#: server), so only the fault tests time out.
HEALTHY_TIMEOUT = 10.0
#: Every injected fault plus "refused" (nothing listening).
ALL_FAULTS = [*FAULTS, "refused"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def req(itype: str, account: str = US.account_id) -> LaunchRequest:
    return LaunchRequest("cloudtrail", "ec2:RunInstances", account, "us-east-1", items=[LaunchItem(itype, 1)])


def rest_engine(server: OpaTestServer, fault: str | None = None, **kw: Any) -> OpaRestEngine:
    """An engine on ``server`` with ``fault`` switched on ("refused" points it at an unused port)."""
    url = f"http://127.0.0.1:{unused_port()}" if fault == "refused" else server.url
    if fault not in (None, "refused"):
        server.fault = fault
        server.delay = 1.0  # well past the 0.25 s timeout
    kw.setdefault("timeout", TIMEOUT if fault is not None else HEALTHY_TIMEOUT)
    return OpaRestEngine(url, "sha256:test", **kw)


# -- the happy path -----------------------------------------------------------------------------
def test_decision_over_rest_matches_embedded(
    opa_server: OpaTestServer, make_enforcer: Any, bundle: Any
) -> None:
    rest = OpaRestEngine(opa_server.url, bundle.revision)
    d = make_enforcer([US], engine=rest).decide(req("p5.48xlarge"))
    assert d.effect == "allow" and d.reasons == []
    assert d.to_dict()["policy"] == {"revision": bundle.revision, "engine": "opa"}
    denied = make_enforcer([], engine=rest).decide(req("p5.48xlarge", "999999999999"))
    assert denied.effect == "deny" and denied.reason_codes == ["ACCOUNT_UNKNOWN"]


def test_one_keep_alive_connection_for_many_decisions(opa_server: OpaTestServer) -> None:
    engine = rest_engine(opa_server)
    before = opa_server.connections
    for _ in range(5):
        assert engine.evaluate({"request": {"items": [], "account_id": "1"}})["effect"] == "allow"
    assert opa_server.connections - before == 1
    assert opa_server.requests[("POST", "data")] == 5
    engine.close()


def test_eval_path_reads_any_document(opa_server: OpaTestServer) -> None:
    engine = rest_engine(opa_server)
    assert engine.eval_path("gpu.config.required_kyc") == "verified"
    with pytest.raises(EngineError, match="undefined"):
        engine.eval_path("gpu.launch.no_such_rule")
    with pytest.raises(EngineError, match="empty"):
        engine.eval_path("")


def test_unserialisable_input_is_an_engine_error(opa_server: OpaTestServer) -> None:
    engine = rest_engine(opa_server)
    with pytest.raises(EngineError, match="OPA query failed: InvalidJSONError"):
        engine.evaluate({"x": float("nan")})
    with pytest.raises(EngineError, match="OPA query failed: TypeError"):
        engine.evaluate({"x": object()})
    assert opa_server.requests[("POST", "data")] == 0


def test_health(opa_server: OpaTestServer) -> None:
    assert rest_engine(opa_server).health() is True
    assert rest_engine(opa_server, "refused").health() is False


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1:8181",
        "http://",
        "http://127.0.0.1:notaport",
        "http://u:p@127.0.0.1:8181",
        "http://h:1/?q=1",
    ],
)
def test_bad_url_is_input_error(url: str) -> None:
    with pytest.raises(InputError) as ei:
        OpaRestEngine(url, "r")
    assert ei.value.code == "BAD_OPA_URL"


def test_bad_timeout_and_path_are_input_errors() -> None:
    with pytest.raises(InputError):
        OpaRestEngine("http://127.0.0.1:8181", "r", timeout=0)
    with pytest.raises(InputError):
        OpaRestEngine("http://127.0.0.1:8181", "r", path="/")


def test_url_prefix_is_kept(opa_server: OpaTestServer) -> None:
    engine = OpaRestEngine(opa_server.url + "/opa", "r", timeout=HEALTHY_TIMEOUT)
    with pytest.raises(EngineError, match="HTTP 404"):
        engine.evaluate({})  # the test server has no /opa prefix: the prefix was used


def test_factory_builds_rest_engine(opa_server: OpaTestServer, bundle: Any) -> None:
    from enforcer.policy.factory import make_engine

    engine = make_engine("opa", ROOT / "policies", opa_url=opa_server.url, timeout=0.5)
    assert isinstance(engine, OpaRestEngine)
    assert engine.revision == bundle.revision and engine.name == "opa" and engine.timeout == 0.5
    assert engine.evaluate({"request": {"items": []}})["effect"] == "allow"


# -- faults: fail closed -----------------------------------------------------------------------
def test_post_is_never_retried(opa_server: OpaTestServer) -> None:
    engine = rest_engine(opa_server, "http500")
    with pytest.raises(EngineError, match="HTTP 500"):
        engine.evaluate({})
    assert opa_server.requests[("POST", "data")] == 1


@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_engine_raises_engine_error_on_fault(opa_server: OpaTestServer, fault: str) -> None:
    engine = rest_engine(opa_server, fault)
    with pytest.raises(EngineError):
        engine.evaluate({"request": {"items": []}})


@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_controlled_chip_fails_closed(opa_server: OpaTestServer, make_enforcer: Any, fault: str) -> None:
    enforcer = make_enforcer([US], engine=rest_engine(opa_server, fault), fail_policy="open")
    start = time.monotonic()
    d = enforcer.decide(req("p5.48xlarge"))
    elapsed = time.monotonic() - start
    assert d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]
    assert d.fail_open is False and enforcer.counters["fail_open"] == 0
    assert enforcer.counters["engine_failures"] == 1
    assert elapsed < TIMEOUT + 1.0  # a generous bound: no retry, no waiting on the fault


@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_uncontrolled_chip_fail_open_is_audited_and_counted(
    opa_server: OpaTestServer, make_enforcer: Any, fault: str
) -> None:
    enforcer = make_enforcer([US], engine=rest_engine(opa_server, fault), fail_policy="open")
    start = time.monotonic()
    d = enforcer.decide(req("g5.xlarge"))
    assert time.monotonic() - start < TIMEOUT + 1.0
    assert d.effect == "audit" and d.fail_open is True and d.to_dict()["fail_open"] is True
    assert d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]
    assert enforcer.counters["fail_open"] == 1


@pytest.mark.parametrize("fault", ALL_FAULTS)
def test_uncontrolled_chip_fail_closed_denies(
    opa_server: OpaTestServer, make_enforcer: Any, fault: str
) -> None:
    enforcer = make_enforcer([US], engine=rest_engine(opa_server, fault), fail_policy="closed")
    d = enforcer.decide(req("g5.xlarge"))
    assert d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"] and not d.fail_open
    assert enforcer.counters["fail_open"] == 0


def test_stopped_server_refuses_even_on_a_kept_alive_connection(make_enforcer: Any, bundle: Any) -> None:
    from enforcer.policy.push import push_bundle

    with OpaTestServer() as server:
        push_bundle(bundle, server.url, include_tests=False)
        enforcer = make_enforcer(
            [US], engine=OpaRestEngine(server.url, bundle.revision, timeout=HEALTHY_TIMEOUT)
        )
        assert enforcer.decide(req("p5.48xlarge")).effect == "allow"
    d = enforcer.decide(req("p5.48xlarge"))
    assert d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"]


# -- circuit breaker ---------------------------------------------------------------------------
def test_breaker_opens_then_half_opens_with_injected_clock(opa_server: OpaTestServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_after=5.0, clock=clock)
    engine = rest_engine(opa_server, "http500", breaker=breaker)
    for _ in range(3):
        with pytest.raises(EngineError, match="HTTP 500"):
            engine.evaluate({})
    assert breaker.state == "open" and opa_server.requests[("POST", "data")] == 3
    # Open: no request reaches the server.
    clock.now += 4.9
    with pytest.raises(CircuitOpenError, match="circuit open"):
        engine.evaluate({})
    assert opa_server.requests[("POST", "data")] == 3 and breaker.short_circuited == 1
    # Half-open trial fails: exactly one request, open again for a full window.
    clock.now += 0.2
    with pytest.raises(EngineError, match="HTTP 500"):
        engine.evaluate({})
    assert opa_server.requests[("POST", "data")] == 4 and breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        engine.evaluate({})
    # Server recovers; the next trial after the window closes the circuit.
    opa_server.fault = None
    clock.now += 5.0
    assert engine.evaluate({"request": {"items": []}})["effect"] == "allow"
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    assert opa_server.requests[("POST", "data")] == 5


def test_dead_server_costs_one_timeout_per_window(opa_server: OpaTestServer, make_enforcer: Any) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5.0, clock=clock)
    enforcer = make_enforcer([US], engine=rest_engine(opa_server, "delay", breaker=breaker))
    decisions = [enforcer.decide(req("p5.48xlarge")) for _ in range(5)]
    assert all(d.effect == "deny" and d.reason_codes == ["POLICY_ENGINE_UNAVAILABLE"] for d in decisions)
    assert opa_server.faults_served == 1 and breaker.short_circuited == 4
    assert "circuit open" in decisions[-1].reasons[0].message


def test_breaker_unit_behaviour() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=2, reset_after=1.0, clock=clock)

    def boom() -> int:
        raise EngineError("down")

    assert b.call(lambda: 7) == 7
    for _ in range(2):
        with pytest.raises(EngineError, match="down"):
            b.call(boom)
    assert b.state == "open" and b.times_opened == 1
    with pytest.raises(CircuitOpenError):
        b.call(lambda: 1)
    clock.now += 1.0
    b.before_call()  # the one half-open trial
    with pytest.raises(CircuitOpenError, match="in flight"):
        b.before_call()
    b.record_success()
    assert b.state == "closed"
    b.record_failure()
    assert b.state == "closed"  # one failure is below the threshold
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


def test_non_engine_exception_releases_half_open_slot() -> None:
    clock = FakeClock()
    b = CircuitBreaker(failure_threshold=1, reset_after=1.0, clock=clock)
    b.record_failure()
    clock.now += 2

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.call(lambda: "ok") == "ok" and b.state == "closed"


# -- push ------------------------------------------------------------------------------------
def test_push_uploads_every_module_and_data_file(tmp_path: Path) -> None:
    with OpaTestServer() as server:
        root = ROOT / "policies"
        rego = {p.relative_to(root).as_posix() for p in root.rglob("*.rego")}
        tests = {p for p in rego if p.endswith("_test.rego")}
        report = push_policies(root, server.url, include_tests=True)
        assert set(report.policies) == rego and "gpu/launch/launch.rego" in rego and tests
        assert set(report.data) == {p.parent.relative_to(root).as_posix() for p in root.rglob("data.json")}
        assert {"gpu/config", "gpu/reasons", "gpu/country_groups"} <= set(report.data)
        assert sorted(server.policies) == sorted(report.policies)
        assert server.data["gpu"]["config"]["required_kyc"] == "verified"
        no_tests = push_policies(root, server.url, prune=True)  # tests only when asked
        assert set(no_tests.pruned) == tests
        assert set(server.policies) == rego - tests


def test_push_names_the_file_the_server_refuses(tmp_path: Path) -> None:
    (tmp_path / "ok.rego").write_text("package ok\n\nx := 1\n")
    (tmp_path / "broken.rego").write_text("package broken\n\nx := {\n")
    with OpaTestServer() as server, pytest.raises(PolicyPushError, match=r"broken\.rego"):
        push_policies(tmp_path, server.url)


def test_push_to_nothing_listening_is_a_push_error() -> None:
    with pytest.raises(PolicyPushError, match=r"push to .* failed"):
        push_policies(ROOT / "policies", f"http://127.0.0.1:{unused_port()}", timeout=0.5)


def test_push_cli(tmp_path: Path) -> None:
    from enforcer.cli.policy import push_command

    runner = CliRunner()
    with OpaTestServer() as server:
        res = runner.invoke(push_command, [str(ROOT / "policies"), "--opa-url", server.url, "--no-tests"])
        assert res.exit_code == 0, res.output
        assert '"gpu/launch/launch.rego"' in res.output and "launch_test" not in res.output
    res = runner.invoke(
        push_command, [str(ROOT / "policies"), "--opa-url", f"http://127.0.0.1:{unused_port()}"]
    )
    assert res.exit_code == 1 and "error: push to" in res.output
    res = runner.invoke(push_command, [str(tmp_path / "missing"), "--opa-url", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "policy directory not found" in res.output


def test_bench_engines_reports_both_engines() -> None:
    from benchmarks.engines_bench import bench_engines

    figures = bench_engines(n=20, warmup=2)
    assert figures["n"] == 20
    for case in ("embedded_decide", "rest_decide", "embedded_eval", "rest_eval"):
        assert set(figures[case]) == {"p50_us", "p99_us", "mean_us"}
        assert 0 < figures[case]["p50_us"] <= figures[case]["p99_us"]
