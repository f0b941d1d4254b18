"""The embedded engine's Go runtime settings: deployed as measured, checked before the library loads,
and a heap that stays bounded with proportional collection off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from enforcer.policy import go_env
from enforcer.policy.embedded import EmbeddedEngine, EngineLoadError

ROOT = Path(__file__).resolve().parents[1]


def test_the_template_deploys_the_settings_the_bench_measures() -> None:
    template: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))))
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert {k: env.get(k) for k in go_env.DEPLOYED} == go_env.DEPLOYED
    assert go_env.problems(env) == []


@pytest.mark.parametrize(
    ("environ", "word"),
    [
        ({"GOMEMLIMIT": "128 MiB"}, "GOMEMLIMIT"),
        ({"GOMEMLIMIT": "1.5GiB"}, "GOMEMLIMIT"),
        ({"GOMEMLIMIT": "128MB"}, "GOMEMLIMIT"),
        ({"GOGC": "fast"}, "GOGC"),
        ({"GOGC": "off"}, "without bound"),
        ({"GOGC": "off", "GOMEMLIMIT": "off"}, "without bound"),
    ],
)
def test_malformed_or_unbounded_settings_are_named(environ: dict[str, str], word: str) -> None:
    found = go_env.problems(environ)
    assert len(found) == 1 and word in found[0]


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"GOGC": "400"},
        {"GOGC": "off", "GOMEMLIMIT": "96MiB"},
        {"GOMEMLIMIT": "2147483648"},
        {"GOGC": "-1", "GOMEMLIMIT": "1GiB"},
    ],
)
def test_well_formed_settings_pass(environ: dict[str, str]) -> None:
    assert go_env.problems(environ) == []


def test_the_engine_refuses_to_load_under_a_setting_go_would_abort_on(
    monkeypatch: pytest.MonkeyPatch, bundle: Any
) -> None:
    monkeypatch.setenv("GOMEMLIMIT", "128 MiB")
    with pytest.raises(EngineLoadError, match="GOMEMLIMIT"):
        EmbeddedEngine(bundle)


# The peak RSS of this process's own memory: VmHWM (ru_maxrss survives exec on Linux, so a child of a
# large pytest process would report the parent's size).
_PROBE = """
import json, re
{load}
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({{"ok": True, "maxrss_mb": hwm // 1024}}))
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with the Go settings ``env`` only (none inherited)."""
    base = {k: v for k, v in os.environ.items() if k not in ("GOGC", "GOMEMLIMIT")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def _probe(load: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python(_PROBE.format(load=load), **env)


def test_go_itself_aborts_on_a_malformed_limit_so_the_check_is_needed() -> None:
    bare = _probe("from opa_bindings import OpaEngine; OpaEngine()", GOMEMLIMIT="128 MiB")
    assert bare.returncode != 0 and "malformed GOMEMLIMIT" in bare.stderr
    ours = _probe(
        "from enforcer.policy import load_bundle\n"
        "from enforcer.policy.embedded import EmbeddedEngine\n"
        "EmbeddedEngine(load_bundle('policies'))",
        GOMEMLIMIT="128 MiB",
    )
    assert ours.returncode != 0
    assert "EngineLoadError" in ours.stderr and "fatal error" not in ours.stderr


def test_the_heap_stays_bounded_with_collection_off_under_the_deployed_limit() -> None:
    """Far more garbage than the limit: the process decides on and stays near limit + interpreter."""
    load = (
        "from enforcer.policy import load_bundle\n"
        "from enforcer.policy.embedded import EmbeddedEngine\n"
        "e = EmbeddedEngine(load_bundle('policies'))\n"
        "doc = {'request': {'source': 'cloudtrail', 'action': 'ec2:RunInstances', 'account_id': '111122223333',\n"
        "  'region': 'us-east-1', 'items': [{'instance_type': 'p5.48xlarge', 'count': 1, 'chip_class': '3A090.a',\n"
        "  'tpp': 126649.6, 'unresolved': False}], 'total_tpp': 126649.6},\n"
        "  'attestation': {'status': 'not_required'}, 'now': '2026-12-01T00:00:00Z',\n"
        "  'account': {'account_id': '111122223333', 'country': 'US', 'hq_country': 'US',\n"
        "  'parent_hq_country': 'US', 'kyc': 'verified', 'reseller': None},\n"
        "  'evidence': {'caller': {'ip': '203.0.113.7', 'country': 'CN', 'source': 't', 'time': 't'}}}\n"
        "for i in range(6000):\n"
        "    doc['request']['account_id'] = str(111122220000 + i)\n"
        "    assert e.evaluate(doc)['effect'] == 'audit'\n"
    )
    limit_mib = int(go_env.DEPLOYED["GOMEMLIMIT"].removesuffix("MiB"))
    p = _probe(load, **go_env.DEPLOYED)
    assert p.returncode == 0, p.stderr[-2000:]
    rss = json.loads(p.stdout.strip().splitlines()[-1])["maxrss_mb"]
    # 6,000 evaluations allocate several hundred MB; without the limit the heap would hold all of it
    assert rss < limit_mib + 150, rss
