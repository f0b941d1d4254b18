"""Cold start (issue 16): what a deny's runtime imports must not pull in the stacks it does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Loaded by the first seal, a reseller's attestation, a CloudFormation template or an ignored event.
NOT_AT_COLD_START = (
    "joserfc",
    "yaml",
    "enforcer.attestation",
    "enforcer.audit.verify",
    "enforcer.ledger.release",
)
#: Loaded by the first event that is not a CloudTrail record, the first record no EC2 shape reads, the
#: first walk of a request through the coverage table (or a build of the table), or the first managed
#: (SageMaker ...) resource.
NOT_FOR_A_CLOUDTRAIL_EC2_LAUNCH = (
    "enforcer.intake.broker",
    "enforcer.intake.cfn_hook",
    "enforcer.intake.ec2_events",
    "enforcer.intake.sagemaker_events",
    "enforcer.intake.parse",
    "enforcer.intake.cloudtrail_sagemaker",
    "enforcer.intake.cloudtrail_services",
    "enforcer.intake.cloudtrail_updates",
    "enforcer.coverage.extract",
    "enforcer.coverage.walker",
    "enforcer.coverage.rules",
    "enforcer.managed.fleets",
    "enforcer.managed.sagemaker",
)


def _fresh(code: str) -> object:
    env = {k: v for k, v in os.environ.items() if k != "_HANDLER"}  # no engine prefetch thread
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_the_guard_and_its_deny_path_modules_import_none_of_the_deferred_stacks() -> None:
    code = (
        "import json, sys\n"
        "import lambdas.guard, enforcer.licences, enforcer.audit.aws, enforcer.audit.signing\n"
        "import enforcer.accounts_aws, enforcer.lookup_cache, enforcer.evidence.aws\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = _fresh(code)
    assert isinstance(loaded, list)
    early = [m for m in loaded if m.startswith(NOT_AT_COLD_START + NOT_FOR_A_CLOUDTRAIL_EC2_LAUNCH)]
    assert not early, f"imported at cold start: {early}"


def test_a_cloudtrail_ec2_launch_reads_with_the_cloudtrail_intake_alone() -> None:
    code = (
        "import json, sys\n"
        "import lambdas.guard\n"
        "from enforcer.intake import normalise\n"
        "for f in ('cloudtrail_runinstances.json', 'cloudtrail_record_runinstances.json'):\n"
        "    req = normalise(json.load(open('tests/events/' + f)))\n"
        "    assert req.items and req.items[0].instance_type, req\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = _fresh(code)
    assert isinstance(loaded, list)
    early = [m for m in loaded if m.startswith(NOT_FOR_A_CLOUDTRAIL_EC2_LAUNCH)]
    assert not early, f"imported by a CloudTrail RunInstances: {early}"


def test_lazy_intake_modules_give_the_eager_registry() -> None:
    """Whatever loads first, every reader sees every shape and the detectors in one order."""
    from enforcer.intake.registry import (
        CLOUDTRAIL_SHAPES,
        DETECTOR_MODULES,
        DETECTOR_ORDER,
        DETECTORS,
        LAZY_SHAPE_MODULES,
    )

    assert [name for name, _, _ in DETECTORS] == list(DETECTOR_ORDER)
    expected = sorted(f"{s}/{n}" for s, n in CLOUDTRAIL_SHAPES)
    first = ("enforcer.intake.sagemaker_events", "enforcer.intake.cfn_hook", "enforcer.intake.cloudtrail")
    for module in first:  # a detector module imported before the others: the order is the same
        code = (
            f"import json, {module}\n"
            "from enforcer.intake.registry import DETECTORS\n"
            "print(json.dumps([n for n, _, _ in DETECTORS]))\n"
        )
        assert _fresh(code) == list(DETECTOR_ORDER), module
    code = (
        "import json, sys\n"
        "from enforcer.intake.registry import CLOUDTRAIL_SHAPES as S, LAZY_SHAPE_MODULES as L\n"
        "hit = S.get(('ec2.amazonaws.com', 'RunInstances')) is not None\n"
        "none = not any(m in sys.modules for m in L)\n"
        "lazy = S.get(('sagemaker.amazonaws.com', 'CreateTrainingJob')) is not None\n"
        "print(json.dumps([hit, none, lazy, sorted(f'{s}/{n}' for s, n in S)]))\n"
    )
    assert _fresh(code) == [True, True, True, expected]
    code = (
        "import json\n"
        "from enforcer.intake.registry import CLOUDTRAIL_SHAPES as S\n"
        "print(json.dumps([('batch.amazonaws.com', 'CreateComputeEnvironment') in S, len(S), len(dict(S))]))\n"
    )
    assert _fresh(code) == [True, len(expected), len(expected)]
    assert set(DETECTOR_MODULES) | set(LAZY_SHAPE_MODULES) <= set(NOT_FOR_A_CLOUDTRAIL_EC2_LAUNCH)


def test_the_deferred_names_are_still_there() -> None:
    from enforcer.attestation.constants import ID_RE as attestation_id_re
    from enforcer.audit import aws
    from enforcer.ids import ID_RE
    from enforcer.intake import DEFAULT_MAX_BYTES, parse_event_bytes
    from enforcer.intake.parse import DEFAULT_MAX_BYTES as max_bytes
    from enforcer.managed import registry

    assert attestation_id_re is ID_RE
    assert callable(aws.verify_aws) and callable(aws.create_audit_resources)
    assert max_bytes == DEFAULT_MAX_BYTES and parse_event_bytes(b'{"a": 1}') == {"a": 1}
    assert registry.FAMILIES is registry.families() and "sagemaker:training-job" in registry.FAMILIES
