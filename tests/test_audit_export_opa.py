"""``audit export`` writes OPA's own decision-log event: checked against a real OPA in the same run.

A real ``opa run --server`` (``make tools``) with our signed bundle and a ``decision_logs`` service
pointing at a loopback capture server answers the very inputs our pipeline logged; our export of
those records must use only the members OPA's event has (the ``EventV1`` JSON names, read from OPA's
source in the module cache when present), with the same JSON types, the same path and result, a
``labels.version`` that is an OPA version (never ours) and our additions under one member.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from enforcer import __version__
from enforcer.audit.opa_export import EXTRA_KEY, embedded_opa_version, go_module_version, to_opa_event
from enforcer.audit.query import iter_records
from enforcer.policy.bundle import build_bundle
from tests.audit_report_kit import PRINCIPAL, write_log
from tests.opa_real import OPA_BIN, POLICIES, ROOT, RealOpa
from tests.test_policy_signing import keypair

#: OPA's event members as documented (management-decision-logs), used when OPA's source is absent.
DOCUMENTED = {
    "labels",
    "decision_id",
    "trace_id",
    "span_id",
    "bundles",
    "path",
    "query",
    "input",
    "result",
    "requested_by",
    "request_context",
    "timestamp",
    "metrics",
    "erased",
    "masked",
    "nd_builtin_cache",
    "req_id",
    "ids",
    "rule_labels",
}


def opa_event_members() -> set[str]:
    """The JSON names of OPA's ``EventV1`` from the OPA module ``make tools`` built (docs list otherwise)."""
    for plugin in sorted(
        (ROOT / ".tools" / "gomod").glob("github.com/open-policy-agent/opa@*/v1/plugins/logs/plugin.go")
    ):
        src = plugin.read_text(encoding="utf-8")
        body = src[src.index("type EventV1 struct {") :]
        body = body[: body.index("\n}\n")]
        names = set(re.findall(r'json:"([a-z_]+)[,"]', body))
        if names:
            return names
    return DOCUMENTED


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}[type(value)]


def test_event_members_and_labels(tmp_path: Path, engine: Any, catalog: Any) -> None:
    audit = write_log(tmp_path / "state", engine, catalog)
    records = [lr.record for lr in iter_records(audit)]
    members = opa_event_members()
    assert {"labels", "decision_id", "bundles", "requested_by", "revision"} <= members or (
        members == DOCUMENTED
    )
    for rec in records:
        ev = to_opa_event(rec, labels_id="5f0c6e5e-0000-4000-8000-000000000001")
        assert set(ev) - {EXTRA_KEY} <= members, set(ev) - members
        assert set(ev["labels"]) == {"app", "id", "version"}
        assert all(isinstance(v, str) for v in ev["labels"].values())  # map[string]string
        # the OPA that compiled the wasm module, or the embedded engine's library
        want = getattr(engine, "version", None) or embedded_opa_version()
        assert ev["labels"]["version"] == want != __version__
        assert re.fullmatch(r"\d+\.\d+\.\d+", ev["labels"]["version"])
        assert "revision" not in ev and ev["bundles"] == {
            "gpu-launch-enforcer": {"revision": rec["policy"]["revision"]}
        }
        assert "erased" not in ev and "masked" not in ev  # OPA omits them when empty
        assert ev["path"] == "gpu/launch/decision" and ev["input"] == rec["input"]
        assert ev["result"] == rec["result"] and ev["decision_id"] == rec["decision_id"]
        extra = ev[EXTRA_KEY]
        assert (
            extra["seq"] == rec["seq"]
            and extra["hash"] == rec["hash"]
            and extra["prev_hash"] == rec["prev_hash"]
        )
        assert extra["attestation"] == rec["attestation"] and extra["trigger"] == rec["trigger"]
        assert [r["message"] for r in extra["reasons"]] == [r["message"] for r in rec["result"]["reasons"]]
    assert to_opa_event(records[1])["requested_by"] == PRINCIPAL


def test_masked_and_erased_pointers_and_ingested_revisions() -> None:
    rec = {
        "decision_id": "d-1",
        "path": "gpu/launch/decision",
        "input": {"attestation": {"claims": {"end_use": {"sha256": "ab"}}}},
        "result": {"effect": "allow", "reasons": []},
        "timestamp": "2026-12-01T00:00:00.000Z",
        "policy": {"revision": "authz=r1,extra=r2", "engine": "opa"},
        "masked": ["/input/attestation/claims/end_use"],
        "erased": ["/trigger/token"],
        "metrics": {},
        "seq": 0,
    }
    ev = to_opa_event(rec)
    assert ev["masked"] == ["/input/attestation/claims/end_use"]
    assert ev["erased"] == [f"/{EXTRA_KEY}/trigger/token"]  # points where the member now is
    assert ev["bundles"] == {"authz": {"revision": "r1"}, "extra": {"revision": "r2"}}
    assert ev["labels"]["version"] == "unknown"  # an OPA server's version is not in the record
    assert "metrics" not in ev and "revision" not in ev
    rec["policy"] = {"revision": "unknown", "engine": "opa", "engine_version": "1.22.3"}
    ev = to_opa_event(rec)
    assert "bundles" not in ev and ev["labels"]["version"] == "1.22.3"


def test_go_module_version_reads_build_info(tmp_path: Path) -> None:
    blob = tmp_path / "lib.so"
    pad = b"\0" * (1 << 20)  # the marker straddles a read boundary
    blob.write_bytes(pad[:-10] + b"dep\tgithub.com/open-policy-agent/opa\tv1.20.2\th1:abc=\n" + pad)
    assert go_module_version(blob) == "1.20.2"
    blob.write_bytes(b"dep\tgithub.com/open-policy-agent/opa\tv1.2<script>\t")
    assert go_module_version(blob) is None
    assert go_module_version(tmp_path / "missing.so") is None
    if OPA_BIN.is_file():  # the real OPA binary records its own module as the main module, not a dep
        assert go_module_version(OPA_BIN, b"\tgithub.com/open-policy-agent/opa\tv") in (None, "1.22.3")


class _Capture(BaseHTTPRequestHandler):
    events: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).events.extend(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_a: Any) -> None:
        return


@pytest.fixture
def capture() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    handler = type("Capture", (_Capture,), {"events": events})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", events
    server.shutdown()
    server.server_close()


def test_export_matches_a_real_opa_decision_log_event(
    tmp_path: Path, engine: Any, catalog: Any, capture: tuple[str, list[dict[str, Any]]]
) -> None:
    import time

    url, events = capture
    audit = write_log(tmp_path / "state", engine, catalog)
    records = [lr.record for lr in iter_records(audit)]
    pem, pub = keypair("ES256")
    (tmp_path / "pub.pem").write_bytes(pub)
    built = build_bundle(POLICIES, tmp_path / "b.tar.gz", pem, "k1", revision="release-9")
    config = {
        "labels": {"app": "gpu-launch-enforcer"},
        "services": {"capture": {"url": url}},
        "decision_logs": {
            "service": "capture",
            "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 2},
        },
    }
    (tmp_path / "opa.json").write_text(json.dumps(config))
    args = ["--bundle", "--verification-key", str(tmp_path / "pub.pem"), "--verification-key-id", "k1"]
    args += ["--signing-alg", "ES256", "--config-file", str(tmp_path / "opa.json")]
    answers: dict[str, dict[str, Any]] = {}
    with RealOpa([built.path], args) as opa:
        for rec in records:
            body = requests.post(
                opa.url + "/v1/data/gpu/launch/decision", json={"input": rec["input"]}, timeout=10
            ).json()
            answers[body["decision_id"]] = rec
        deadline = time.monotonic() + 60
        while len(events) < len(records) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert len(events) == len(records)
    members = opa_event_members()
    for theirs in events:
        rec = answers[theirs["decision_id"]]
        ours = to_opa_event(rec, labels_id="5f0c6e5e-0000-4000-8000-000000000001")
        assert set(theirs) <= members  # the reference itself is a real OPA event
        # Every member we write is one OPA writes (or may write), with the same JSON type.
        assert set(ours) - {EXTRA_KEY} <= members
        for k in set(ours) & set(theirs):
            assert _json_type(ours[k]) == _json_type(theirs[k]), k
        assert {"labels", "decision_id", "bundles", "path", "input", "result", "timestamp"} <= set(
            theirs
        ) & set(ours)
        assert set(theirs["labels"]) >= {"id", "version"} and set(ours["labels"]) >= set(theirs["labels"])
        assert all(isinstance(v, str) for v in theirs["labels"].values())
        # labels.version is an OPA engine version in OPA's own format, never the enforcer's.
        assert re.fullmatch(r"\d+\.\d+\.\d+", theirs["labels"]["version"])
        assert (
            re.fullmatch(r"\d+\.\d+\.\d+", ours["labels"]["version"])
            and ours["labels"]["version"] != __version__
        )
        assert "revision" not in theirs and "revision" not in ours
        assert [b["revision"] for b in theirs["bundles"].values()] == ["release-9"]
        assert set(ours["bundles"]) and all(set(b) == {"revision"} for b in ours["bundles"].values())
        # The same decision for the same input, on the same path.
        assert theirs["path"].strip("/") == ours["path"]
        assert theirs["result"] == ours["result"] and theirs["input"] == ours["input"]
        assert "erased" not in theirs and "masked" not in theirs and "erased" not in ours
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", theirs["timestamp"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", ours["timestamp"])
        assert all(
            _json_type(v) == "number"
            for v in [*theirs.get("metrics", {}).values(), *ours.get("metrics", {}).values()]
        )


def test_opa_events_ingested_then_exported_come_back_as_opa_wrote_them(
    tmp_path: Path, engine: Any, catalog: Any, capture: tuple[str, list[dict[str, Any]]]
) -> None:
    """Round trip: a real OPA's own events, appended to our chain by ``ingest``, exported again."""
    import time

    from enforcer.audit.defaults import open_local_store
    from enforcer.audit.ingest import ingest_batch
    from tests.opa_real import opa_version

    url, events = capture
    source = write_log(tmp_path / "src", engine, catalog)
    inputs = [lr.record["input"] for lr in iter_records(source)]
    config = {
        "services": {"capture": {"url": url}},
        "decision_logs": {
            "service": "capture",
            "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 2},
        },
    }
    (tmp_path / "opa.json").write_text(json.dumps(config))
    with RealOpa([POLICIES], ["--config-file", str(tmp_path / "opa.json")]) as opa:
        for inp in inputs:
            requests.post(
                opa.url + "/v1/data/gpu/launch/decision", json={"input": inp}, timeout=10
            ).raise_for_status()
        deadline = time.monotonic() + 60
        while len(events) < len(inputs) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert len(events) == len(inputs)
    store = open_local_store(tmp_path / "log" / "audit", tmp_path / "log" / "keys")
    assert ingest_batch(store, events) == len(events)
    store.close()
    exported = [to_opa_event(lr.record) for lr in iter_records(tmp_path / "log" / "audit")]
    version = opa_version()
    for theirs, ours in zip(events, exported, strict=True):
        assert ours["decision_id"] == theirs["decision_id"]
        assert ours["labels"]["version"] == theirs["labels"]["version"] == version  # OPA's, carried through
        assert ours["result"] == theirs["result"] and ours["path"] == theirs["path"].strip("/")
        assert ours["gpu_enforcer"]["trigger"]["source"] == "opa-decision-log"
        assert set(ours) - {EXTRA_KEY} <= opa_event_members()
