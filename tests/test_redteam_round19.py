"""Red team, round 19: attacks from the outside on this round's changes (since commit 9c317c5).

One test per finding, named for it. Inputs are built without the authors' helpers: the real CLI
through click's runner, the real policy, botocore's own models. The old-vs-new policy differential
(focus area 1) is its own module: tests/test_policy_differential.py.
"""

from __future__ import annotations

from pathlib import Path

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
