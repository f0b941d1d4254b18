"""Red-team findings of round 24 (stop 24), each pinned by a test.

Attacked: the 64-level input depth limit (enforcer/policy/limits.py, ecd2a7f/600085a) from every engine
and wrapper, the wasm engine against the embedded one on recorded inputs carrying nesting near the limit,
and the replay's log-file pre-filter. Findings are described where their tests are; "what held" tests pin
attacks that failed.
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import pytest

from enforcer.policy.embedded import EmbeddedEngine
from enforcer.policy.limits import MAX_INPUT_DEPTH, nested_deeper
from enforcer.policy.loader import PolicyBundle
from enforcer.policy.memo import MemoEngine
from enforcer.policy.wasm import WasmEngine
from enforcer.policy.wasm_build import CompiledPolicy
from enforcer.ports import EngineError
from tests.opa_real import POLICIES, ROOT, RealOpa

GOLDEN = ROOT / "tests" / "data" / "policy_golden.jsonl.gz"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def allow_doc(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A recorded plain input the Go evaluator allows."""
    return next(r["input"] for r in rows if r["case"] == "plain" and r["decision"].get("effect") == "allow")


def _nest(levels: int) -> Any:
    v: Any = 0
    for _ in range(levels):
        v = [v]
    return v


def _answer(engine: Any, doc: Any) -> Any:
    try:
        return engine.evaluate(doc)
    except EngineError as exc:
        return ("error", "nested deeper" in str(exc))


# -- finding 1 (low, fixed): the depth walk never ends on a container that holds itself twice ------------
# nested_deeper walks a level at a time and keeps every container it meets, so a Python list or dict that
# holds itself twice doubles every level: 2**64 entries by level 64 (memory, then the process; minutes of
# CPU before that). JSON cannot carry a cycle, so no event can; the pipeline or a direct caller building
# one can (the encoder, which ran first before ecd2a7f, says "Circular reference detected" at once: an
# EngineError). The embedded engine walks before it encodes, so it hung where it used to fail closed. Fix:
# a level wider than 4,096 is deduplicated by identity (the depth is the same), so the walk stays bounded.
def test_a_container_that_holds_itself_is_refused_quickly(reference: EmbeddedEngine) -> None:
    import time

    loop: list[Any] = []
    loop += [loop, loop]
    selfmap: dict[str, Any] = {}
    selfmap.update(a=selfmap, b=[selfmap, selfmap], c=selfmap)
    t0 = time.process_time()
    assert nested_deeper(loop) and nested_deeper(selfmap)
    for doc in ({"request": {"items": loop}}, {"junk": selfmap}):
        with pytest.raises(EngineError, match=f"nested deeper than {MAX_INPUT_DEPTH} levels"):
            reference.evaluate(doc)
    assert time.process_time() - t0 < 5.0
    # sharing without a cycle: the same answers as an unshared copy, and a wide level is still walked
    shared = _nest(MAX_INPUT_DEPTH - 2)
    wide = {"a": [shared] * 10_000}
    assert not nested_deeper(wide) and nested_deeper({"a": [shared] * 10_000 + [[shared]]})
    assert not nested_deeper([[0]] * 1_000_000)


# -- finding 2 (low, fixed): the OPA REST engine decided inputs the in-process engines refuse --------------
# ecd2a7f made every IN-PROCESS engine refuse an input nested deeper than 64 levels (an EngineError: a
# deny). The REST engine (enforcer/policy/opa_rest.py) sent it to the OPA server, whose JSON reader allows
# 10,000 levels: a recorded allow with a 64..~900-level junk field was ALLOWED over REST and denied by the
# embedded engine (measured: 63 allow/allow, 64 and 200 error/allow, 900 error/error). The pipeline builds
# flat inputs (refs, claims and extras are validated text), so an event cannot reach it; `enforcer policy
# eval` and other direct callers could. Fix: the REST engine refuses it the same way, before the breaker
# (the input's fault is no server failure).
@pytest.fixture(scope="module")
def real_rest(bundle: PolicyBundle) -> Iterator[Any]:
    from enforcer.policy.opa_rest import OpaRestEngine

    with RealOpa([POLICIES]) as server:
        engine = OpaRestEngine(server.url, bundle.revision, timeout=5.0)
        try:
            yield engine
        finally:
            engine.close()


def test_the_rest_engine_refuses_what_the_in_process_engines_refuse(
    real_rest: Any, reference: EmbeddedEngine, allow_doc: dict[str, Any]
) -> None:
    for levels in (MAX_INPUT_DEPTH - 2, MAX_INPUT_DEPTH - 1, MAX_INPUT_DEPTH, 200, 900, 5000):
        doc = {**allow_doc, "junk": _nest(levels)}
        want = _answer(reference, doc)
        assert _answer(real_rest, doc) == want, levels
        assert (want == ("error", True)) == (levels >= MAX_INPUT_DEPTH)
    assert real_rest.breaker.consecutive_failures == 0
    with pytest.raises(EngineError, match="nested deeper"):
        real_rest.eval_path("gpu.launch.decision", {"junk": _nest(100)})


# -- finding 3 (low, fixed): the replay's decision memo raised past the pipeline ---------------------------
# MemoEngine keys each input by json.dumps before asking the engine. An input nested deeper than the
# encoder's recursion limit (~1,000), a cycle or a non-JSON value (a set) raised RecursionError /
# ValueError / TypeError out of evaluate() -- not the EngineError the pipeline turns into a fail-closed
# deny -- so `enforcer replay` stopped on it (measured: 2,000 and 20,000 levels, CRASH RecursionError,
# where the engine alone answers EngineError). Fix: an input that cannot be keyed goes to the engine
# unkept; its answer (an EngineError) stands.
def test_the_memo_answers_as_its_engine_on_inputs_it_cannot_key(
    reference: EmbeddedEngine, allow_doc: dict[str, Any]
) -> None:
    memo = MemoEngine(reference)
    loop: list[Any] = []
    loop.append(loop)
    for junk in (_nest(2000), _nest(50_000), loop, {1, 2}, float("nan")):
        doc = {**allow_doc, "junk": junk}
        assert _answer(memo, doc) == _answer(reference, doc)
        assert isinstance(_answer(memo, doc), tuple)  # an EngineError, not a decision
    assert memo.evaluate(allow_doc) == reference.evaluate(allow_doc)
    assert memo.evaluate(allow_doc) == reference.evaluate(allow_doc) and memo.hits == 1


# -- what held: wasm vs embedded on recorded inputs carrying nesting at the limit ----------------------
# Junk nested to 62..66 levels (lists, tuples, objects, mixed; scalar or empty-container leaves) under a
# new key of a random object of a recorded input (top level, request, items, ref, attestation, claims,
# account ...), half with a string of brackets beside it (the wasm engine walks only inputs whose text
# holds more than 64 brackets, counted in strings too): the same decision or the same error from both
# engines. Measured on 4,000 such inputs (seed 2401): 0 differences (375 deeper than the limit). Junk
# appended to an array the policy iterates (end_customers) differs -- Go's strict built-in type errors,
# documented in docs/design.md -- and is not counted here.
def _containers(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    out: list[tuple[tuple[Any, ...], Any]] = [(path, doc)] if isinstance(doc, dict) else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _containers(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _containers(v, (*path, i))
    return out


def _junk(rnd: random.Random, levels: int) -> Any:
    v: Any = rnd.choice([0, "x", None, [], {}, "[[[{{{", True])
    kind = rnd.choice(["list", "tuple", "dict", "mix"])
    for _ in range(levels):
        k = rnd.random() if kind == "mix" else {"list": 0.0, "tuple": 0.45, "dict": 0.9}[kind]
        v = [v] if k < 0.4 else (v,) if k < 0.5 else {rnd.choice(["a", "[", "{", "]"]): v}
    return v


def test_wasm_and_embedded_agree_on_recorded_inputs_nested_at_the_limit(
    bundle: PolicyBundle,
    compiled: CompiledPolicy,
    reference: EmbeddedEngine,
    rows: list[dict[str, Any]],
) -> None:
    eng = WasmEngine(bundle, compiled)
    rnd = random.Random(2401)
    differ, deep = [], 0
    logging.disable(logging.WARNING)  # every deep input logs the wasm engine's fallback
    try:
        for _ in range(400):
            doc = copy.deepcopy(rnd.choice(rows)["input"])
            path, obj = rnd.choice(_containers(doc))
            target = rnd.choice([62, 63, 64, 65, 66])
            obj[rnd.choice(["junk", "[[[[", "{x"])] = _junk(rnd, max(target - len(path) - 2, 0))
            if rnd.random() < 0.5:
                doc["pad"] = "[" * rnd.randint(0, 100) + "{" * rnd.randint(0, 30)
            deep += nested_deeper(doc)
            got, want = _answer(eng, doc), _answer(reference, doc)
            if got != want:
                differ.append((path, target, str(got)[:120], str(want)[:120]))
    finally:
        logging.disable(logging.NOTSET)
    assert not differ
    assert 60 < deep < 340  # both sides of the limit were tried


# -- finding 4 (medium, fixed): a service-managed fleet scaled by count alone was ignored -------------------
# Derived from the service models (botocore): Deadline ``UpdateFleet`` takes ``maxWorkerCount`` without a
# ``configuration``; AppStream ``UpdateFleet`` a ``ComputeCapacity`` without an ``InstanceType``; CodeBuild
# ``UpdateFleet`` a ``baseCapacity`` without a ``computeConfiguration``. Each scales a fleet whose instances
# run in the service's account (no EC2 state-change event reaches the guard), and the CloudTrail intake
# answers "no instance type in request": Ignored. tests/events/cloudtrail_deadline_createfleet.json
# creates an L40S (3A090.a) fleet decided at 20 workers; the same fleet's UpdateFleet to 1,000 workers is
# never decided, so count-driven rules (aggregate compute) see 20. SageMaker's analogue,
# UpdateEndpointWeightsAndCapacities, is decided by reference (coverage.rules.REFERENCE_OPERATIONS:
# the endpoint's types at the desired counts); these need the same (GetFleet / DescribeFleets look-ups).
# Fix: a count-only update is one deadline_fleet / appstream_fleet / codebuild_fleet (capacity_reservation)
# reference at the new count (intake.cloudtrail_updates), resolved by GetFleet / DescribeFleets /
# BatchGetFleets / DescribeCapacityReservations to the configuration as CreateFleet reads it
# (resolve.fleets; tests/test_fleet_scaling.py); an update naming its type is read by the table as before.
# Fixed with them, lower: ec2 ModifyCapacityReservation (InstanceCount; pinned below). Still ignored, lower:
# gamelift UpdateFleetCapacity / CreateFleetLocations (GameLift's only GPU types are g5g, T4g: class none)
# and sagemaker UpdateInferenceComponentRuntimeConfig (copies on an endpoint's instances).
_SCALE_ONLY = {
    "deadline": (
        "deadline.amazonaws.com",
        {"farmId": "farm-0123456789abcdef0123456789abcdef", "fleetId": "fleet-1", "maxWorkerCount": 1000},
    ),
    "appstream": (
        "appstream.amazonaws.com",
        {"name": "gpu-fleet", "computeCapacity": {"desiredInstances": 500}},
    ),
    "codebuild": (
        "codebuild.amazonaws.com",
        {"arn": "arn:aws:codebuild:us-east-1:111122223333:fleet/gpu:1", "baseCapacity": 100},
    ),
    # lower: a reservation runs nothing itself (its instances are RunInstances calls, decided), but
    # CreateCapacityReservation is decided with its count and this grows it by count alone
    "ec2": (
        "ec2.amazonaws.com",
        {"CapacityReservationId": "cr-0123456789abcdef0", "InstanceCount": 500},
    ),
}
_SCALE_CALL = {"ec2": "ModifyCapacityReservation"}


@pytest.mark.parametrize("service", sorted(_SCALE_ONLY))
def test_a_service_managed_fleet_scaled_by_count_alone_is_decided(service: str) -> None:
    from enforcer.intake import normalise
    from enforcer.model import Ignored

    rec = json.loads((ROOT / "tests" / "events" / "cloudtrail_record_runinstances.json").read_text())
    rec["eventSource"], rec["requestParameters"] = _SCALE_ONLY[service]
    rec["eventName"] = _SCALE_CALL.get(service, "UpdateFleet")
    rec.pop("responseElements", None)
    got = normalise(rec)
    assert not isinstance(got, Ignored), got
    (item,) = got.items  # one reference to the fleet (reservation) at the new count
    assert item.instance_type is None and item.count in (1000, 500, 100) and item.ref is not None


def test_the_same_deadline_fleet_is_decided_when_created() -> None:
    from enforcer.intake import normalise

    ev = json.loads((ROOT / "tests" / "events" / "cloudtrail_deadline_createfleet.json").read_text())
    got = normalise(ev)
    assert [(i.instance_type, i.count) for i in got.items] == [("g6e.xlarge", 20), ("g6e.2xlarge", 20)]


# -- finding 5 (low, fixed): a token nested ~1,000 levels deep crashed the attestation intake -------------
# parse_unverified reads a compact JWS's header and payload with strict_json.loads_strict and turns its
# ValueError/TypeError into TokenFormatError. A segment holding "[[[[...]]]]" nested past the decoder's
# recursion limit (1,200 levels: a 3.2 KB token, under MAX_TOKEN_BYTES) raised RecursionError instead,
# which the attestation intake handler does not catch: an unhandled Lambda error (a 502 at the API, no
# Rejected count), where any other malformed token is a 422 ATTESTATION_INVALID. The guard's own check
# held (pipeline.attestation_for turns any exception into "invalid": fail closed). Fix: loads_strict
# reports a document nested too deeply as the ValueError its contract names, for every caller (the
# policy signature file's reader too).
def _deep_token(where: str, levels: int = 1200) -> str:
    import base64

    from enforcer.attestation.token import TOKEN_TYPE

    def seg(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    deep = "[" * levels + "]" * levels
    header = deep if where == "header" else json.dumps({"alg": "ES256", "kid": "k1", "typ": TOKEN_TYPE})
    return f"{seg(header)}.{seg(deep if where == 'payload' else '{}')}.{seg('sig')}"


@pytest.mark.parametrize("where", ["header", "payload"])
def test_a_deeply_nested_token_is_a_malformed_token(where: str, make_world: Any) -> None:
    from enforcer.attestation.token import TokenFormatError, parse_unverified
    from enforcer.strict_json import loads_strict
    from lambdas import attestation_intake
    from tests.lambda_env import LambdaContext

    with pytest.raises(ValueError, match="nested too deeply"):
        loads_strict("[" * 5000 + "]" * 5000)
    with pytest.raises(TokenFormatError):
        parse_unverified(_deep_token(where))
    make_world()
    event = {
        "resource": "/attestations",
        "httpMethod": "POST",
        "body": json.dumps({"token": _deep_token(where)}),
        "isBase64Encoded": False,
    }
    import gc

    from lambdas import _common

    was_frozen = _common._heap_frozen
    try:
        resp = attestation_intake.handler(event, LambdaContext(function_name="gpu-attestation-intake"))
    finally:
        if not was_frozen:  # the handler freezes the heap on its first invocation: not for the session
            gc.unfreeze()
            _common._heap_frozen = False
    assert resp["statusCode"] == 422 and json.loads(resp["body"])["code"] == "ATTESTATION_INVALID"


@pytest.fixture
def make_world(engine: Any) -> Iterator[Any]:
    from tests.lambda_env import world_factory

    yield from world_factory(engine)


# -- finding 6 (low, fixed): a STACK hook's template nested ~1,000 levels deep was a guard error ---------
# cfn_stack.load_template reads the template CloudFormation hands a STACK or CHANGE_SET hook (fetched from
# its presigned payload URL; written by whoever submits the stack) with json.loads, catching ValueError
# and a repeated key; a JSON template nested past the decoder's recursion limit raised RecursionError.
# The hook handler failed closed on it ("guard error (RecursionError); failing closed", an
# InternalFailures count and a logged traceback) instead of the bad-input answer every other malformed
# template gets. Its YAML branch already caught RecursionError. Fix: the JSON branch does too.
def test_a_deeply_nested_stack_template_is_bad_input() -> None:
    from enforcer.hook_payload import normalise_hook
    from enforcer.intake.cfn_stack import load_template
    from enforcer.model import InputError

    events = ROOT / "tests" / "events"
    event = json.loads((events / "cfn_hook_doc_stack.json").read_text())
    payload = json.loads((events / "payloads" / "cfn_hook_doc_stack_payload.json").read_text())
    for levels in (3000, 100_000):
        deep = '{"Resources":' + "[" * levels + "]" * levels + "}"
        with pytest.raises(InputError, match="nested too deeply"):
            load_template(deep)
        payload["template"] = deep
        with pytest.raises(InputError, match="nested too deeply"):
            normalise_hook(event, "2026-12-01T00:00:00Z", lambda _url: json.dumps(payload).encode())


# -- finding 7 (medium, open, strict xfail): attribute-based selection outside EC2's own shapes -----------
# From the service models: EC2's InstanceRequirements are read as "accelerators possible unless excluded"
# (fields.requirements_ref: AWS's defaults allow any accelerator, so plain vCPU/memory ranges can pick a
# GPU type), and a CreateFleet or CreateLaunchTemplate with only VCpuCount/MemoryMiB is decided (an
# instance_requirements ref: resolved, else failing closed). The same selection in the calls the coverage
# table decides generically is Ignored ("no instance type in request"): coverage.extract only flags a
# requirements object that names an accelerator member. ECS CreateCapacityProvider (managed instances:
# EC2's InstanceRequirements), Bedrock AgentCore CreateCapacityProvider, and Lambda
# CreateCapacityProvider without AllowedInstanceTypes ("If not specified, all compatible instance types
# are allowed"; Lambda's CreateFunction now takes AcceleratorConfig: "Lambda might allocate more, depending
# on the accelerator instance types available") are never decided when they are made. Where the
# instances then run in the account, the state-change guard still sees them pending; the decision at the
# call, and its audit record, are missing. (Deadline's instanceCapabilities is another matter: without
# acceleratorCapabilities it selects none.)
_IR = {"vCpuCount": {"min": 4}, "memoryMiB": {"min": 16384}}
_ABIS = {
    "ecs": (
        "ecs.amazonaws.com",
        {
            "name": "cp",
            "managedInstancesProvider": {
                "infrastructureRoleArn": "arn:aws:iam::111122223333:role/r",
                "instanceLaunchTemplate": {
                    "ec2InstanceProfileArn": "arn:aws:iam::111122223333:instance-profile/p",
                    "networkConfiguration": {"subnets": ["subnet-1"]},
                    "instanceRequirements": _IR,
                },
            },
        },
    ),
    "bedrock-agentcore": (
        "bedrock-agentcore.amazonaws.com",
        {
            "name": "cp",
            "computeConfiguration": {
                "ec2Configuration": {
                    "launchTemplateSource": {"launchParameters": {"instanceRequirements": _IR}}
                }
            },
        },
    ),
    "lambda": (
        "lambda.amazonaws.com",
        {
            "capacityProviderName": "cp",
            "instanceRequirements": {"architectures": ["x86_64"]},
            "vpcConfig": {"subnetIds": ["subnet-1"]},
        },
    ),
}


def _record(source: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    rec = json.loads((ROOT / "tests" / "events" / "cloudtrail_record_runinstances.json").read_text())
    rec.update(eventSource=source, eventName=name, requestParameters=params)
    rec.pop("responseElements", None)
    return rec


def test_ec2_attribute_based_selection_without_accelerator_fields_is_decided() -> None:
    from enforcer.intake import normalise

    lt = {
        "LaunchTemplateName": "t",
        "LaunchTemplateData": {"InstanceRequirements": {"VCpuCount": {"Min": 4}}},
    }
    got = normalise(_record("ec2.amazonaws.com", "CreateLaunchTemplate", {"CreateLaunchTemplateRequest": lt}))
    assert [i.ref["kind"] for i in got.items] == ["instance_requirements"]
    assert got.items[0].ref["accelerators"] is True


@pytest.mark.parametrize("service", sorted(_ABIS))
def test_attribute_based_selection_is_decided_outside_ec2_too(service: str) -> None:
    """Fixed (coverage.extract._selection): an EC2-style requirements object that neither names its types
    nor excludes accelerators is an ``instance_requirements`` reference, as EC2's own shapes read it."""
    from enforcer.intake import normalise
    from enforcer.model import Ignored

    source, params = _ABIS[service]
    got = normalise(_record(source, "CreateCapacityProvider", params))
    assert not isinstance(got, Ignored), got
    assert [(i.instance_type, (i.ref or {}).get("kind")) for i in got.items] == [
        (None, "instance_requirements")
    ]
    assert got.items[0].ref == {
        "kind": "instance_requirements",
        "accelerators": True,
        "accelerators_requested": False,
    }


def _with_requirements(service: str, reqs: dict[str, Any]) -> dict[str, Any]:
    source, params = copy.deepcopy(_ABIS[service])
    if service == "ecs":
        params["managedInstancesProvider"]["instanceLaunchTemplate"]["instanceRequirements"] = reqs
    elif service == "lambda":
        params["instanceRequirements"] = reqs
    else:
        params["computeConfiguration"]["ec2Configuration"]["launchTemplateSource"]["launchParameters"][
            "instanceRequirements"
        ] = reqs
    return _record(source, "CreateCapacityProvider", params)


@pytest.mark.parametrize("service", sorted(_ABIS))
def test_a_selection_that_names_its_types_or_excludes_accelerators_is_read_as_such(service: str) -> None:
    from enforcer.intake import normalise
    from enforcer.model import Ignored

    allowed = "AllowedInstanceTypes" if service == "lambda" else "allowedInstanceTypes"
    got = normalise(_with_requirements(service, {allowed: ["p5.48xlarge"], **_IR}))
    assert [i.instance_type for i in got.items] == ["p5.48xlarge"]  # the named type, no reference beside it
    if service == "ecs":  # EC2's members: accelerators excluded outright, or asked for explicitly
        none = normalise(_with_requirements(service, {**_IR, "acceleratorCount": {"max": 0}}))
        assert isinstance(none, Ignored), none
        asked = normalise(_with_requirements(service, {**_IR, "acceleratorManufacturers": ["nvidia"]}))
        assert asked.items[0].ref["accelerators_requested"] is True


def test_deadline_capabilities_without_accelerators_still_select_none() -> None:
    """Deadline's ``instanceCapabilities`` select no accelerator unless ``acceleratorCapabilities`` asks."""
    from enforcer.intake import normalise
    from enforcer.model import Ignored

    ev = json.loads((ROOT / "tests" / "events" / "cloudtrail_deadline_createfleet.json").read_text())
    caps = ev["detail"]["requestParameters"]["configuration"]["serviceManagedEc2"]["instanceCapabilities"]
    caps.pop("acceleratorCapabilities", None)
    caps.pop("allowedInstanceTypes", None)
    got = normalise(ev)
    assert isinstance(got, Ignored), got


# -- what held: the replay's pre-filter after 39e79b5 (_head_skippable answers its common case first) -----
# Round 23's crafted log files (escaped names and keys, repeated keys, odd whitespace, non-object records,
# detector keys, near-launch names, ids of every type, a 70 KB record) with new seeds, plus records built
# to split the two readers: a name written once plain and once escaped (the last wins in both), an escaped
# launch name, an escaped detector key ("detail\u002dtype", "Rec\u006frds"), ids of 128 and 129 astral
# or accented characters, a NUL or U+2028 in a name or id, a 64-bit-overflowing id, errorCode objects,
# a 300-deep value. Every record the pre-filter skips unread is one normalise ignores, and every other
# record reads the same with and without it. Measured: 6,000 files (seeds 2400-2429), 5,542 records
# skipped, 0 skipped that normalise does not ignore. (Files orjson cannot read whole -- NaN, a lone
# surrogate, a trailing comma, 1,100 levels -- are read record by record with the pre-filter and as JSON
# lines without it: the pre-filter decides more of such a file, never less; left out of the comparison.)
_SPLITTERS = [
    '{"eventSource":"ec2.amazonaws.com","event\\u004eame":"RunInstances","eventName":"DescribeInstances"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","event\\u004eame":"RunInstances",'
    '"awsRegion":"us-east-1","recipientAccountId":"111122223333",'
    '"requestParameters":{"instanceType":"p5.48xlarge","minCount":1,"maxCount":1}}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"\\u0052unInstances","awsRegion":"us-east-1",'
    '"recipientAccountId":"111122223333","requestParameters":{"instanceType":"p5.48xlarge","minCount":1}}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","Rec\\u006frds":[]}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","detail\\u002dtype":"x","detail":{},'
    '"source":"aws.ec2"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"' + "\\u00e9" * 128 + '"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"'
    + "\\ud83d\\ude00" * 128
    + '"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"'
    + "\\ud83d\\ude00" * 129
    + '"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":"\\u2028"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"Describe\\u0000Instances"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventID":123456789012345678901234567890}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","errorCode":{"a":1},"readOnly":"TRUE"}',
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","x":' + "[" * 300 + "]" * 300 + "}",
    '{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","launch":{},"account_id":"1"}',
]


def test_the_pre_filter_skips_only_what_normalise_ignores_after_39e79b5() -> None:
    import orjson

    from enforcer.replay_filter import launch_keys
    from tests.test_redteam_round23 import _crafted_record, read_alike

    rnd = random.Random(2424)
    launches = sorted(launch_keys())
    skipped = compared = 0
    for _ in range(300):
        records = [_crafted_record(rnd, launches) for _ in range(rnd.randint(1, 8))]
        for _ in range(rnd.randint(0, 3)):
            records.insert(rnd.randrange(len(records) + 1), rnd.choice(_SPLITTERS))
        blob = ('{"Records":[' + ",".join(records) + "]}").encode()
        try:
            orjson.loads(blob)
        except orjson.JSONDecodeError:
            continue
        compared += 1
        skipped += read_alike(blob)
    assert compared > 250 and skipped > 250
