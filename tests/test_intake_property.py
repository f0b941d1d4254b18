"""Property tests: whatever arrives, normalise returns a result or raises InputError, nothing else."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcer.intake import CLOUDTRAIL_SHAPES, iter_cloudtrail_records, normalise, parse_event_bytes
from enforcer.model import Ignored, InputError, LaunchRequest

EVENTS = Path(__file__).parent / "events"
FIXTURES = {p.name: json.loads(p.read_text()) for p in sorted(EVENTS.glob("*.json"))}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "",
            "p5.48xlarge",
            "ml.p5.48xlarge",
            "i-0a1b2c3d4e5f60001",
            "111122223333",
            "us-east-1",
            "$Latest",
            "gpu-attestation",
            "items",
            "item",
            "tag",
            "POST",
            "/launch",
            "pending",
        ]
    )
)
keys = st.text(max_size=12) | st.sampled_from(
    [
        "instanceType",
        "InstanceType",
        "items",
        "item",
        "tag",
        "key",
        "value",
        "Key",
        "Value",
        "launchTemplate",
        "Overrides",
        "LaunchTemplateConfigs",
        "instancesSet",
        "maxCount",
        "instanceCount",
        "resourceConfig",
        "computeResources",
        "instanceTypes",
        "scalingConfig",
        "gpu-attestation",
        "instanceId",
        "detail",
    ]
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)


def check(event: Any) -> None:
    try:
        result = normalise(event, now="2025-03-01T10:00:00Z")
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(result, LaunchRequest | Ignored)
    if isinstance(result, Ignored):
        assert "\n" not in result.reason
    if isinstance(result, LaunchRequest):
        json.dumps(result.to_dict())
        for item in result.items:
            assert (item.instance_type is None) == (item.ref is not None)
            assert isinstance(item.count, int) and item.count >= 0


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def mutate(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@SETTINGS
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    check(value)


@SETTINGS
@given(st.sampled_from(sorted(CLOUDTRAIL_SHAPES)), json_values, st.booleans())
def test_arbitrary_request_parameters(shape: tuple[str, str], params: Any, wrapped: bool) -> None:
    source, name = shape
    if wrapped:
        params = {f"{name}Request": params}
    record = {
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "requestParameters": params,
        "responseElements": params,
    }
    check(record)
    check({"detail-type": "AWS API Call via CloudTrail", "id": "x", "detail": record})


@SETTINGS
@given(st.sampled_from(sorted(FIXTURES)), st.data())
def test_mutated_fixtures(name: str, data: st.DataObject) -> None:
    doc = copy.deepcopy(FIXTURES[name])
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(doc)
        path = data.draw(st.sampled_from(candidates))
        doc = mutate(doc, path, data.draw(json_values), data.draw(st.booleans()))
    check(doc)
    if isinstance(doc, dict) and "Records" in doc:
        try:
            records = list(iter_cloudtrail_records(doc))
        except InputError:
            return
        for rec in records:
            check(rec)


@SETTINGS
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes(raw: bytes | str) -> None:
    with contextlib.suppress(InputError):
        parse_event_bytes(raw)
    check(raw)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(FIXTURES)), st.integers(min_value=0, max_value=5000))
def test_truncated_fixtures(name: str, cut: int) -> None:
    raw = json.dumps(FIXTURES[name]).encode()
    check(raw[: min(cut, len(raw) - 1)])


def test_a_request_key_that_does_not_print_stays_escaped_in_the_error() -> None:
    """Found by test_arbitrary_request_parameters (unseeded): the table's walk put a request's own key,
    a newline, into the path of its error message (one log line became two)."""
    record = {
        "eventSource": "appstream.amazonaws.com",
        "eventName": "UpdateFleet",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "requestParameters": {"\n": {"INSTANCETYPE": False}, "a\u2028b": {"instanceType": 7}},
    }
    with pytest.raises(InputError) as err:
        normalise(record, now="2025-03-01T10:00:00Z")
    assert "\n" not in str(err.value) and "\u2028" not in str(err.value)
    assert "requestParameters.\\n.INSTANCETYPE" in str(err.value) or "a\\u2028b" in str(err.value)
    check(record)
