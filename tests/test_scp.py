"""SCP generation: explicit controlled type lists, the 5,120-character limit, splitting, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from enforcer.chips import ChipCatalog
from enforcer.cli import cli
from enforcer.model import CONTROLLED_CLASSES
from enforcer.scp import SCP_MAX_CHARS, controlled_types, covered_types, generate_scps

ROOT = Path(__file__).resolve().parents[1]


def minified_len(doc: dict) -> int:
    return len(json.dumps(doc, separators=(",", ":")))


def test_every_controlled_type_is_denied_and_no_uncontrolled_one() -> None:
    cat = ChipCatalog()
    docs = generate_scps()
    controlled = {t for t in cat.known_types() if cat.classify(t).chip_class in CONTROLLED_CLASSES}
    assert controlled and set(controlled_types(cat)) == controlled
    assert covered_types(docs) == controlled
    assert covered_types(docs, "ec2:Attribute/InstanceType") == controlled
    assert covered_types(docs, "autoscaling:InstanceTypes") == controlled
    assert covered_types(docs, "sagemaker:InstanceTypes") == {"ml." + t for t in controlled}
    assert {"p5.48xlarge", "p4d.24xlarge", "trn2.48xlarge"} <= controlled
    assert not {"t3.micro", "g4dn.xlarge", "m7i.large"} & covered_types(docs)
    text = json.dumps(docs)
    assert '"p*"' not in text and "*xlarge" not in text  # explicit lists, no family wildcards


def test_documents_fit_the_limit_and_exempt_only_the_broker() -> None:
    docs = generate_scps(broker_role="Broker")
    assert all(minified_len(d) <= SCP_MAX_CHARS for d in docs)
    statements = [s for d in docs for s in d["Statement"]]
    assert all(s["Effect"] == "Deny" for s in statements)
    launch = [s for s in statements if s["Sid"] != "ProtectEnforcerRoles"]
    assert all(
        s["Condition"]["ArnNotLike"] == {"aws:PrincipalArn": "arn:aws:iam::*:role/Broker"} for s in launch
    )
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {
        "ec2:RunInstances",
        "ec2:ModifyInstanceAttribute",
        "autoscaling:CreateAutoScalingGroup",
        "sagemaker:CreateTrainingJob",
        "ec2:PurchaseCapacityBlock",
    } <= actions


def test_large_catalogues_split_into_several_documents() -> None:
    many = [f"p{n}.{m}xlarge" for n in range(60) for m in range(1, 8)]
    docs = generate_scps(many)
    assert len(docs) > 1
    assert all(minified_len(d) <= SCP_MAX_CHARS for d in docs)
    assert covered_types(docs) == set(many)
    assert covered_types(docs, "sagemaker:InstanceTypes") == {"ml." + t for t in many}
    for d in docs:
        sids = [s["Sid"] for s in d["Statement"]]
        assert len(sids) == len(set(sids))


def test_cli_writes_the_committed_policies(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["scp", "generate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in (ROOT / "infra" / "scp").glob("*.json"))
    assert written == committed  # infra/scp is regenerated with `enforcer scp generate --out infra/scp`
    for name in written:
        assert (tmp_path / name).read_text() == (ROOT / "infra" / "scp" / name).read_text()
    stdout = runner.invoke(cli, ["scp", "generate"])
    assert [json.loads(line) for line in stdout.stdout.splitlines()] == generate_scps()


def test_the_enforcer_roles_can_be_changed_only_by_their_stackset_deployers() -> None:
    """The broker's exemption is matched by role name in every account: a member administrator who could
    create or re-trust a role of that name would launch past every deny (a training plan cannot be undone)."""
    docs = generate_scps(broker_role="Broker", guard_role="Guard", partition="aws-us-gov")
    (protect,) = [s for d in docs for s in d["Statement"] if s["Sid"] == "ProtectEnforcerRoles"]
    names = ["Broker", "Guard", "stacksets-exec-*", "AWSCloudFormationStackSetExecutionRole"]
    assert protect["Resource"] == [f"arn:aws-us-gov:iam::*:role/{p}{n}" for n in names for p in ("", "*/")]
    assert {
        "iam:CreateRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePolicy",
    } <= set(protect["Action"])
    assert protect["Condition"] == {
        "ArnNotLike": {
            "aws:PrincipalArn": [
                "arn:aws-us-gov:iam::*:role/stacksets-exec-*",
                "arn:aws-us-gov:iam::*:role/AWSCloudFormationStackSetExecutionRole",
            ]
        }
    }
