"""Red team, round 19: attacks from the outside on this round's changes (since commit 9c317c5).

One test per finding, named for it. Inputs are built without the authors' helpers: the real CLI
through click's runner, the real policy, botocore's own models. The old-vs-new policy differential
(focus area 1) is its own module: tests/test_policy_differential.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enforcer.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


# -- CLI: a mistyped --state read as an empty state by `replay` ------------------------------------
def test_replay_with_a_missing_state_folder_exits_2_instead_of_deciding_against_an_empty_directory(
    tmp_path: Path,
) -> None:
    """`replay` decides "with the current policy and STATE": the account directory, licences and
    attestation registry come from the state folder. A mistyped ``--state`` made it decide every
    launch against an empty directory (every account unknown) and exit 0. With ``--baseline`` both
    sides are then equally wrong, so a policy change that lets a D:5 account through shows as "no
    change" -- the preview hides exactly the decision the author needs to see. Every other reader of
    the state folder exits 2 (docs/cli.md); so must replay, before reading anything."""
    state = tmp_path / "mistyped"
    out = tmp_path / "o.jsonl"
    for extra in ([], ["--out", str(out)], ["--out", str(out), "--jobs", "2"]):
        res = CliRunner().invoke(cli, ["--state", str(state), "replay", str(EXAMPLES / "cloudtrail"), *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert "no state folder" in res.stderr
        assert not state.exists() and not out.exists()
    # with the folder there, the same replay runs (and decides against its accounts)
    state.mkdir()
    ok = CliRunner().invoke(
        cli, ["--state", str(state), "replay", str(EXAMPLES / "cloudtrail"), "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    assert out.exists()


# -- cold start: the full-model fallback of the trimmed EC2 model ---------------------------------
def test_full_model_client_built_first_is_not_the_trimmed_one(monkeypatch: Any) -> None:
    """``ClientFactory.full_session`` asked ``_trimmed`` before the base session existed: when the first
    client a container builds is a full-model one (a paginator of an operation outside the trimmed
    EC2 model, e.g. from a plugin or a future caller), it got the TRIMMED session, was cached under
    the "full" key, and every operation outside the 15 failed for the container's life (KeyError /
    AttributeError) -- the cross-model fallback the trimmed model relies on silently gone."""
    from enforcer.aws_models import trimmed_operations
    from enforcer.aws_wiring import ClientFactory

    ops = trimmed_operations("ec2")
    if ops is None:  # the trimmed model is only used with the botocore it was cut from
        pytest.fail(
            "trimmed EC2 model not in use with this botocore; regenerate (python -m enforcer.aws_models)"
        )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    factory = ClientFactory("us-east-1", home_account="123456789012")
    ec2 = factory.client("ec2")
    assert "describe_spot_price_history" not in ops
    paginator = ec2.get_paginator("describe_spot_price_history")  # no AWS call: building only
    assert paginator is not None
    full = factory.real_client("ec2", full=True)
    assert "DescribeSpotPriceHistory" in full.meta.service_model.operation_names
    assert callable(ec2.describe_spot_price_history)
