"""A real OPA's decision logs land in our hash-chained log, once each, in order, and verify.

``enforcer audit ingest`` runs as a subprocess (the real CLI); a real ``opa run --server`` with our signed
bundle and a ``decision_logs`` service pointing at it (bearer token) answers launches; every decision id
OPA returned must appear in the chain exactly once, in the order OPA made them, with OPA's result and the
bundle revision, and ``enforcer audit verify`` must pass. The endpoint is also hit directly with what OPA
might re-send (a duplicate batch) and with what an attacker might send (no token, not gzip, not an array,
events without ids or with a forged result): nothing of those is written.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from enforcer.audit import layout
from enforcer.audit.query import iter_records
from enforcer.policy.bundle import build_bundle
from tests.opa_real import POLICIES, ROOT, RealOpa, opa_version
from tests.test_opa_real_parity import synthetic_cases

ENFORCER = str(Path(sys.executable).parent / "enforcer")
TOKEN = "s3cret-ingest-token-0123456789"


class Ingest:
    """``enforcer audit ingest`` in a subprocess on a free loopback port."""

    def __init__(self, state: Path, token_file: Path | None) -> None:
        cmd = [ENFORCER, "--state", str(state), "audit", "ingest", "--listen", "127.0.0.1:0"]
        if token_file is not None:
            cmd += ["--token-file", str(token_file)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ingest did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = json.loads(line)["listening"]
        self.state = state

    def stop(self) -> dict[str, Any]:
        self.proc.terminate()
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    server = Ingest(tmp_path / "state", tmp_path / "token")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


def logged(state: Path) -> list[dict[str, Any]]:
    audit = state / "audit"
    return [r.record for r in iter_records(audit)] if audit.is_dir() else []


def post(url: str, events: Any, token: str | None = TOKEN, gz: bool = True) -> requests.Response:
    body = json.dumps(events).encode()
    headers = {"Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url + "/logs", data=body, headers=headers, timeout=10)


def _inputs(catalog: Any, engine: Any, n: int) -> list[dict[str, Any]]:
    """Policy inputs of ``n`` replayed synthetic launches (built by the pipeline)."""
    from enforcer.accounts import StaticAccountDirectory
    from enforcer.pipeline import Enforcer
    from tests.test_engine_parity import FixedAttestation

    out = []
    for _label, req, origins, att, now in synthetic_cases(n):
        d = Enforcer(
            catalog=catalog,
            accounts=StaticAccountDirectory(origins),
            engine=engine,
            attestations=FixedAttestation(att),
        ).decide(copy.deepcopy(req), now=now)
        assert d.input is not None
        out.append(d.input)
    return out


def test_real_opa_decision_logs_arrive_once_in_order_and_verify(
    tmp_path: Path, ingest: Ingest, catalog: Any, engine: Any
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    built = build_bundle(POLICIES, tmp_path / "b.tar.gz", pem, "k1", revision="release-7")
    config = {
        "services": {"enforcer": {"url": ingest.url, "credentials": {"bearer": {"token": TOKEN}}}},
        "decision_logs": {
            "service": "enforcer",
            "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 2},
        },
    }
    (tmp_path / "opa.json").write_text(json.dumps(config))
    args = ["--bundle", "--verification-key", str(tmp_path / "pub.pem"), "--verification-key-id", "k1"]
    args += ["--signing-alg", "ES256", "--config-file", str(tmp_path / "opa.json")]
    answers: list[tuple[str, dict[str, Any]]] = []
    with RealOpa([built.path], args) as opa:
        for inp in _inputs(catalog, engine, 120):
            body = requests.post(
                opa.url + "/v1/data/gpu/launch/decision", json={"input": inp}, timeout=10
            ).json()
            answers.append((body["decision_id"], body["result"]))
        deadline = time.monotonic() + 60
        while len(logged(ingest.state)) < len(answers) and time.monotonic() < deadline:
            time.sleep(0.3)
    stats = ingest.stop()
    records = logged(ingest.state)
    ids = [r["trigger"]["event_id"] for r in records]
    assert ids == [d for d, _ in answers], "every decision once, in the order OPA made them"
    assert len(set(ids)) == len(ids) == 120
    assert all(
        r["trigger"]["source"] == "opa-decision-log" and r["decision_id"] == r["trigger"]["event_id"]
        for r in records
    )
    for rec, (_did, result) in zip(records, answers, strict=True):
        assert rec["result"]["effect"] == result["effect"]
        assert rec["result"]["reasons"] == result.get("reasons", [])
        assert rec["policy"] == {"revision": "release-7", "engine": "opa", "engine_version": opa_version()}
    assert {r["result"]["effect"] for r in records} >= {"allow", "deny"}
    assert stats["events"] == 120 and stats["rejected"] == 0
    verify = subprocess.run(
        [ENFORCER, "--state", str(ingest.state), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Tampering with one ingested record is caught by the chain.
    seg = layout.segment_files(ingest.state / "audit")[0][1]
    raw = seg.read_bytes()
    flipped = raw.replace(b'"effect":"deny"', b'"effect":"allow"', 1)
    assert flipped != raw
    seg.write_bytes(flipped)
    bad = subprocess.run(
        [ENFORCER, "--state", str(ingest.state), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1


def _event(i: int, **kw: Any) -> dict[str, Any]:
    ev = {
        "decision_id": f"00000000-0000-4000-8000-{i:012d}",
        "path": "gpu/launch/decision",
        "input": {"request": {"account_id": "111122223333", "items": []}},
        "result": {"effect": "allow", "reasons": []},
        "timestamp": "2026-12-01T00:00:00.123456789Z",
        "bundles": {"b": {"revision": "r1"}},
    }
    ev.update(kw)
    return ev


def test_a_resent_batch_is_logged_once(ingest: Ingest) -> None:
    batch = [_event(i) for i in range(5)]
    first = post(ingest.url, batch)
    assert first.status_code == 200 and first.json() == {"accepted": 5, "duplicates": 0, "ignored": 0}
    again = post(ingest.url, [*batch, _event(5)])
    assert again.status_code == 200 and again.json() == {"accepted": 1, "duplicates": 5, "ignored": 0}
    assert [r["trigger"]["event_id"] for r in logged(ingest.state)] == [
        e["decision_id"] for e in [*batch, _event(5)]
    ]


def test_errors_and_malformed_results_are_logged_as_fail_closed_denies_not_dropped(ingest: Ingest) -> None:
    """A buggy or hostile policy answer must neither vanish nor stall OPA's upload stream (a 400 would
    make OPA re-send the same batch forever): it is logged as the pipeline would decide it, a deny."""
    err = _event(1, error={"code": "internal_error", "message": "boom"})
    del err["result"]
    bad = [
        err,
        _event(2, result={"effect": "permit"}),
        _event(3, result={"effect": "allow", "reasons": [{"code": "lower"}]}),
        _event(4, result="allow"),
        _event(5, result={"effect": "allow", "reasons": [{"code": "X_" * 40}]}),
    ]
    res = post(ingest.url, [*bad, _event(6)])
    assert res.status_code == 200 and res.json()["accepted"] == 6
    records = logged(ingest.state)
    assert [r["result"]["effect"] for r in records] == ["deny"] * 5 + ["allow"]
    assert all(r["result"]["reasons"][0]["code"] == "POLICY_ENGINE_UNAVAILABLE" for r in records[:5])
    assert "boom" in records[0]["result"]["reasons"][0]["message"]


def test_queries_of_other_documents_are_ignored_not_logged(ingest: Ingest) -> None:
    other = [_event(1, path="gpu/config/required_kyc", result="verified"), _event(2, path="", result=1)]
    res = post(ingest.url, [*other, _event(3, path="/gpu/launch/decision")])
    assert res.status_code == 200 and res.json() == {"accepted": 1, "duplicates": 0, "ignored": 2}
    assert [r["trigger"]["event_id"] for r in logged(ingest.state)] == [_event(3)["decision_id"]]


def test_a_stalled_client_does_not_block_uploads(ingest: Ingest) -> None:
    import socket

    host, port = ingest.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(b"POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n[")
        assert post(ingest.url, [_event(1)]).status_code == 200
    assert len(logged(ingest.state)) == 1


@pytest.mark.parametrize(
    ("events", "kwargs", "status"),
    [
        ([_event(1)], {"token": None}, 401),
        ([_event(1)], {"token": "wrong-token-0123456789012345"}, 401),
        ({"decision_id": "x"}, {}, 400),
        ([_event(1), "not an event"], {}, 400),
        ([_event(1), _event(2, decision_id="")], {}, 400),
        ([_event(1), _event(2, decision_id="a" * 500)], {}, 400),
        ([_event(1), _event(2, decision_id="line\nbreak")], {}, 400),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_written(
    ingest: Ingest, events: Any, kwargs: dict[str, Any], status: int
) -> None:
    res = post(ingest.url, events, **kwargs)
    assert res.status_code == status, res.text
    assert "error" in res.json()
    assert logged(ingest.state) == []


def test_not_gzip_and_gzip_bomb_are_refused(ingest: Ingest) -> None:
    headers = {"Content-Encoding": "gzip", "Authorization": f"Bearer {TOKEN}"}
    res = requests.post(ingest.url + "/logs", data=b"definitely not gzip", headers=headers, timeout=10)
    assert res.status_code == 400 and "gzip" in res.json()["error"]
    bomb = gzip.compress(b"[" + b" " * (65 * 1024 * 1024) + b"]")
    res = requests.post(ingest.url + "/logs", data=bomb, headers=headers, timeout=30)
    assert res.status_code == 400 and "decompressed" in res.json()["error"]
    deep = gzip.compress(b"[" * 200_000 + b"]" * 200_000)
    res = requests.post(ingest.url + "/logs", data=deep, headers=headers, timeout=30)
    assert res.status_code == 400 and "nested" in res.json()["error"]
    res = requests.post(ingest.url + "/elsewhere", data=b"[]", headers=headers, timeout=10)
    assert res.status_code == 404
    assert logged(ingest.state) == []
    # Plain (not compressed) JSON is accepted too; the server is still up after all of the above.
    assert post(ingest.url, [_event(9)], gz=False).status_code == 200
    assert len(logged(ingest.state)) == 1


def test_bad_listen_address_and_token_file_exit_2(tmp_path: Path) -> None:
    for args in (
        ["--listen", "nonsense"],
        ["--token-file", str(tmp_path / "missing")],
        ["--listen", "0.0.0.0:0"],  # reachable from other hosts without a token: refused
    ):
        proc = subprocess.run(
            [ENFORCER, "--state", str(tmp_path / "s"), "audit", "ingest", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
