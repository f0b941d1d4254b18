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


def test_the_guard_and_its_deny_path_modules_import_none_of_the_deferred_stacks() -> None:
    code = (
        "import json, sys\n"
        "import lambdas.guard, enforcer.licences, enforcer.audit.aws, enforcer.audit.signing\n"
        "import enforcer.accounts_aws, enforcer.lookup_cache, enforcer.evidence.aws\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
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
    loaded = json.loads(out.stdout.splitlines()[-1])
    early = [m for m in loaded if m.startswith(NOT_AT_COLD_START)]
    assert not early, f"imported at cold start: {early}"


def test_the_deferred_names_are_still_there() -> None:
    from enforcer.attestation.constants import ID_RE as attestation_id_re
    from enforcer.audit import aws
    from enforcer.ids import ID_RE

    assert attestation_id_re is ID_RE
    assert callable(aws.verify_aws) and callable(aws.create_audit_resources)
