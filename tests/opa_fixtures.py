"""Pytest fixtures for the OPA REST path: a loopback OPA Data API test server loaded via ``policy push``.

Import the fixture functions into a test module: ``from tests.opa_fixtures import opa_server_fixture,
opa_server_session_fixture``; tests then ask for ``opa_server`` (or ``opa_server_session``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.opa_server import OpaTestServer


@pytest.fixture(scope="module", name="opa_server_session")
def opa_server_session_fixture(bundle: Any) -> Iterator[OpaTestServer]:
    """One test server per module, with the repository's policies (tests included) pushed to it."""
    from enforcer.policy.push import push_bundle

    server = OpaTestServer().start()
    try:
        push_bundle(bundle, server.url, include_tests=True)
        _warm(server)
        yield server
    finally:
        server.stop()


def _warm(server: OpaTestServer) -> None:
    """Prepare the documents the tests query now (a real OPA compiles on PUT; this server prepares each
    path on its first query), not inside a test's 0.25 s deadline: on a busy machine one prepare of
    the bundle alone can take longer."""
    import requests

    for path in ("gpu/launch/decision", "gpu/config/required_kyc"):  # each path is prepared once
        requests.post(f"{server.url}/v1/data/{path}", json={"input": {}}, timeout=60)
    server.reset_faults()


@pytest.fixture(name="opa_server")
def opa_server_fixture(opa_server_session: OpaTestServer) -> Iterator[OpaTestServer]:
    """The module's server with no fault and cleared counters (reset again afterwards)."""
    opa_server_session.reset_faults()
    yield opa_server_session
    opa_server_session.reset_faults()
