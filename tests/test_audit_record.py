"""Audit records: fields, masking of personal data, token erasure, RFC 8785 canonical form."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.audit_bench import sample_decision
from enforcer.audit.chain import GENESIS, LineError, parse_line, seal_record, split_line
from enforcer.audit.clean import Cleaner, clean_value, mask_value
from enforcer.audit.record import (
    DECISION_PATH,
    MAX_RECORD_BYTES,
    build_record,
    canonical,
)
from enforcer.model import Decision, LaunchItem, LaunchRequest, Reason

SALT = b"test-salt-0123456789abcdef"
TOKEN = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiIxMTExMjIyMjMzMzMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_record_has_opa_and_enforcer_fields() -> None:
    d = sample_decision(7, effect="deny", chip_class="3A090.a")
    rec = build_record(d, "stop", salt=SALT)
    assert rec["decision_id"] == "decision-7"
    assert rec["timestamp"] == d.timestamp
    assert rec["path"] == DECISION_PATH == "gpu/launch/decision"
    assert rec["result"] == {
        "effect": "deny",
        "reasons": [
            {"code": "ORIGIN_RESTRICTED", "message": "account origin CN is restricted", "severity": "high"}
        ],
    }
    assert rec["policy"] == {"revision": "rev-1", "engine": "embedded"}
    assert rec["metrics"] == {"timer_eval_ns": 250000}
    assert rec["trigger"] == {
        "event_id": "event-7",
        "source": "cloudtrail",
        "action": "RunInstances",
        "event_time": "2025-01-01T00:00:00Z",  # when the launch happened, beside when it was decided
    }
    assert rec["account_id"] == "111122223333"
    assert rec["region"] == "us-east-1"
    assert rec["instance_ids"] == [f"i-{7:017x}"]
    assert rec["chip_classes"] == ["3A090.a"]
    assert rec["attestation"] == {"jti": "att-1", "kid": "k1", "issuer": "reseller-1", "status": "valid"}
    assert rec["action"] == "stop"
    assert rec["mode"] == "enforce"
    assert rec["enforced"] is True
    assert rec["fail_open"] is False
    assert "seq" not in rec and "hash" not in rec


def test_end_customer_name_and_end_use_are_masked_with_salted_hash() -> None:
    d = sample_decision(1, end_customer_name="ACME Holdings Pte Ltd")
    rec = build_record(d, None, salt=SALT)
    claims = rec["input"]["attestation"]["claims"]
    assert claims["end_customer"]["name"] == mask_value("ACME Holdings Pte Ltd", SALT)
    assert claims["end_use"] == {"sha256": mask_value("model training", SALT)["sha256"]}
    assert claims["end_customer"]["country"] == "SG"  # not personal data: kept
    text = json.dumps(rec)
    assert "ACME" not in text and "model training" not in text
    assert "/input/attestation/claims/end_customer/name" in rec["masked"]
    assert "/input/attestation/claims/end_use" in rec["masked"]
    # The salt matters: another salt gives another digest, and it is not a plain sha256.
    assert mask_value("x", SALT) != mask_value("x", b"other-salt-0000000")
    assert mask_value("x", SALT)["sha256"] != hashlib.sha256(b"x").hexdigest()


def test_token_is_never_logged_anywhere() -> None:
    d = sample_decision(2, token=TOKEN)
    assert d.input is not None
    d.input["nested"] = {"deeper": [{"token": TOKEN, "keep": 1}], "raw": TOKEN}
    rec = build_record(d, None, salt=SALT)
    sealed = seal_record(rec, 0, GENESIS)
    assert TOKEN.encode() not in sealed.line
    assert TOKEN.split(".")[1] not in json.dumps(rec)
    assert "token" not in rec["input"]["attestation"]
    assert rec["input"]["nested"]["deeper"] == [{"keep": 1}]
    assert rec["input"]["nested"]["raw"] == mask_value(TOKEN, SALT)  # JWS-looking string masked
    assert "/input/attestation/token" in rec["erased"]
    assert "/input/nested/deeper/0/token" in rec["erased"]
    assert "/input/nested/raw" in rec["masked"]


def test_input_defaults_to_request_when_decision_has_no_input() -> None:
    req = LaunchRequest(
        source="broker",
        action="RunInstances",
        account_id="1",
        region="eu-west-1",
        items=[LaunchItem("g5.xlarge", 1, chip_class="none")],
    )
    d = Decision("d", "2025-01-01T00:00:00Z", "allow", False, [], req, "r", "opa", mode="dryrun")
    rec = build_record(d, None, salt=SALT)
    assert rec["input"]["request"]["items"][0]["instance_type"] == "g5.xlarge"
    assert rec["mode"] == "dryrun" and rec["enforced"] is False
    assert rec["trigger"]["event_id"] is None
    assert rec["chip_classes"] == ["none"]


def test_odd_values_become_plain_json() -> None:
    d = sample_decision(3)
    assert d.input is not None
    d.input["odd"] = {
        "nan": float("nan"),
        "inf": float("inf"),
        "big": 2**70,
        "set": {"b", "a"},
        "tuple": (1, 2.0),
        "bytes": b"\x00\x01",
        1: "int key",
        "deep": _nest(150),
        "surrogate": "bad\udc80",
    }
    rec = build_record(d, None, salt=SALT)
    odd = rec["input"]["odd"]
    assert odd["nan"] == "nan" and odd["inf"] == "inf" and odd["big"] == str(2**70)
    assert odd["set"] == ["a", "b"]
    assert odd["tuple"] == [1, 2]
    assert odd["bytes"]["bytes"] == 2
    assert odd["1"] == "int key"
    assert "truncated" in json.dumps(odd["deep"])
    sealed = seal_record(rec, 0, GENESIS)  # encodable
    body, stated = split_line(sealed.line)
    assert hashlib.sha256(body).hexdigest() == stated
    assert rfc8785.dumps(json.loads(body)) == body


def _nest(n: int) -> object:
    v: object = "leaf"
    for _ in range(n):
        v = {"k": v}
    return v


def test_oversized_input_is_replaced_by_its_digest() -> None:
    d = sample_decision(4)
    assert d.input is not None
    d.input["blob"] = "x" * (MAX_RECORD_BYTES + 10)
    sealed = seal_record(build_record(d, None, salt=SALT), 0, GENESIS)
    assert len(sealed.line) < MAX_RECORD_BYTES
    assert sealed.record["input"]["omitted"] == "input too large for the audit log"
    assert sealed.record["input"]["bytes"] > MAX_RECORD_BYTES


def test_line_is_canonical_record_plus_hash() -> None:
    rec = build_record(sample_decision(5), "tag", salt=SALT)
    sealed = seal_record(rec, 3, "a" * 64)
    assert sealed.line.endswith(b"\n") and sealed.line.count(b"\n") == 1
    parsed = json.loads(sealed.line)
    assert parsed["seq"] == 3 and parsed["prev_hash"] == "a" * 64 and parsed["hash"] == sealed.hash
    without = dict(parsed)
    del without["hash"]
    # hash = sha256(rfc8785(record without "hash")), computed by the reference implementation
    assert hashlib.sha256(rfc8785.dumps(without)).hexdigest() == sealed.hash
    rec2, computed, stated = parse_line(sealed.line)
    assert computed == stated == sealed.hash and rec2 == without


@pytest.mark.parametrize(
    "line",
    [b"", b"{}", b'{"a":1,"hash":"zz"}', b'{"a":1,"hash":"' + b"A" * 64 + b'"}', b"not json at all" * 9],
)
def test_malformed_lines_are_rejected(line: bytes) -> None:
    with pytest.raises(LineError):
        parse_line(line)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_is_byte_identical_to_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)  # type: ignore[arg-type]
    except rfc8785.CanonicalizationError:
        return  # e.g. lone surrogates: canonical() raises RecordError too
    assert canonical(value) == expected


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_cleaned_values_take_the_trusted_fast_path_correctly(value: object) -> None:
    clean, _masked, _erased, safe = clean_value({"v": value}, SALT, "input")
    expected = rfc8785.dumps(clean)
    assert canonical(clean, trusted=safe) == expected


def test_special_floats_go_through_the_reference_path() -> None:
    for f in (
        1e-7,
        1e21,
        123456789012345680000.0,
        9007199254740992.0,
        -(2.0**60),
        5e-324,
        0.1,
        -0.0,
        2.5,
        1e15 + 0.5,
    ):
        clean, _m, _e, safe = clean_value({"f": f}, SALT, "input")
        assert canonical(clean, trusted=safe) == rfc8785.dumps(clean)
        assert not math.isnan(json.loads(canonical(clean))["f"])


def test_cleaner_walks_lists_and_marks_pointers() -> None:
    c = Cleaner(SALT, "input")
    out = c.clean({"a/b": [{"end_use": "secret"}], "x~y": {"end_customer_name": "Bob"}})
    assert out["a/b"][0]["end_use"] == mask_value("secret", SALT)
    assert sorted(c.masked) == ["/input/a~1b/0/end_use", "/input/x~0y/end_customer_name"]


def test_reasons_and_metrics_are_cleaned_too() -> None:
    d = sample_decision(6, reasons=[Reason("LARGE_COMPUTE_REQUEST", "big", "medium")])
    d.metrics = {"timer_ns": float("inf"), "ok": 1.5}
    rec = build_record(d, None, salt=SALT)
    assert rec["metrics"] == {"timer_ns": "inf", "ok": 1.5}
    assert rec["result"]["reasons"][0]["code"] == "LARGE_COMPUTE_REQUEST"


def test_a_lone_surrogate_key_does_not_lose_the_record(tmp_path: Path) -> None:
    """``json.loads('{"\\ud800": 1}')`` gives a key UTF-8 cannot carry; the record is still written."""
    from benchmarks.audit_bench import sample_decision as sample
    from enforcer.audit.local import LocalAuditStore
    from enforcer.audit.verify import open_verify

    d = sample(1)
    assert d.input is not None
    d.input["extra"] = json.loads('{"\\ud800x": 1, "ok": {"\\udfff": "\\ud800"}}')
    store = LocalAuditStore(tmp_path / "log", salt=SALT)
    receipt = store.write(d, "stop")
    store.close()
    assert receipt.seq == 0
    line = next((tmp_path / "log").glob("segment-*.jsonl")).read_bytes()
    rec = json.loads(line)
    assert rec["input"]["extra"]["\\ud800x"] == 1 and "\\udfff" in rec["input"]["extra"]["ok"]
    assert open_verify(tmp_path / "log", None, deep=True).ok
