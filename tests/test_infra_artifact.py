"""Both templates, through the real SAM transform, deployed into moto's CloudFormation from the built artifact.

* ``samtranslator`` (the library ``sam build``/CloudFormation run) turns infra/template.yaml into plain
  CloudFormation, with ``CodeUri`` pointing at the zipped ``build/lambda`` uploaded to (moto's) S3 -- what
  ``sam deploy`` does;
* both stacks go into ONE account (the security account also runs member-account.yaml), which fails if
  the two templates create a role with the same name;
* each deployed function's code is read back from the S3 object its stack names, unzipped, and its
  handler is run in a separate CPython 3.12 with ``-I -S`` (nothing but the artifact and the standard
  library), with the function's deployed environment and ``AWS_ENDPOINT_URL`` at the moto server: the
  artifact, not the source tree, decides and writes the audit log into the deployed tables.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from enforcer.demo.world import MOTO_AMI, moto_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import smoke_artifact

from tests.sam_render import moto_api, sam_transform, sam_transform_dict, zip_artifact
from tests.test_infra import MEMBER, NOT_MODELLED, TEMPLATE, load

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "build" / "lambda"
EVENTS = ROOT / "tests" / "events"
REGION, ACCOUNT, STACK = "us-east-1", "123456789012", "gpu-enforcer"
BUCKET, KEY = "deploy-artifacts", "gpu-enforcer/lambda.zip"
ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}

#: Run one handler from an unzipped artifact; prints its return value as JSON (stdlib + artifact only).
HARNESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib
module, attr = sys.argv[2].rsplit(".", 1)
handler = getattr(importlib.import_module(module), attr)
mod = importlib.import_module("enforcer")
assert mod.__file__.startswith(sys.argv[1]), mod.__file__
class Context:
    function_name = sys.argv[4]
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + sys.argv[4]
    aws_request_id = "11111111-2222-4333-8444-555555555555"
event = json.load(open(sys.argv[3]))
print("RESULT " + json.dumps(handler(event, Context())))
"""


@pytest.fixture(scope="module")
def interpreter() -> tuple[str, Path]:
    """CPython 3.12 and the artifact; without 3.12, this Python and the copy `make smoke` built for it."""
    assert (ARTIFACT / "lambdas").is_dir(), "build/lambda is missing: run `make package` (make test does)"
    python = smoke_artifact.find_python(None)
    if python:
        return python, ARTIFACT
    copy = smoke_artifact.fallback_copy(ARTIFACT)
    assert (copy / "lambdas").is_dir(), "no CPython 3.12 and no fallback copy: run `make smoke`"
    return sys.executable, copy


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    with moto_server() as url:
        yield url
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def deploy(cf: Any, name: str, body: dict[str, Any], params: dict[str, str]) -> dict[str, str]:
    cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(body),
        Capabilities=["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
    )
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    summaries = cf.list_stack_resources(StackName=name)["StackResourceSummaries"]
    created = {s["LogicalResourceId"]: s.get("PhysicalResourceId", "") for s in summaries}
    return created


def run_handler(
    python: str, code_dir: Path, fn: dict[str, Any], event: dict[str, Any], tmp: Path, url: str
) -> Any:
    ev = tmp / f"{fn['FunctionName']}.json"
    ev.write_text(json.dumps(event))
    env = {
        "PATH": os.environ.get("PATH", ""),
        **{k: str(v) for k, v in fn["Environment"]["Variables"].items()},
        **ENV,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": url,
        "AWS_LAMBDA_FUNCTION_NAME": fn["FunctionName"],
        "LAMBDA_TASK_ROOT": str(code_dir),
    }
    env["ENFORCER_POLICY"] = str(code_dir / "policies")  # the template's /var/task/policies, here
    proc = subprocess.run(
        [python, "-I", "-S", "-B", "-c", HARNESS, str(code_dir), fn["Handler"], str(ev), fn["FunctionName"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_both_stacks_deploy_from_the_artifact_and_every_handler_runs_from_it(
    moto_url: str, interpreter: tuple[str, Path], tmp_path: Path
) -> None:
    python, artifact = interpreter
    c = {s: boto3.client(s, region_name=REGION, endpoint_url=moto_url) for s in ("s3", "cloudformation")}
    c["s3"].create_bucket(Bucket=BUCKET)
    c["s3"].put_object(Bucket=BUCKET, Key=KEY, Body=zip_artifact(artifact))
    params = {"OrganizationId": "o-abcdefghij", "AlarmEmail": "secops@example.com"}
    body = sam_transform(TEMPLATE, params, f"s3://{BUCKET}/{KEY}")
    # the transform's API: one deployment named by a hash of the methods (a changed API is redeployed),
    # a stage with access logs and throttling, the caller's IAM auth, API Gateway invoking by permission
    (dep,) = [k for k, v in body["Resources"].items() if v["Type"] == "AWS::ApiGateway::Deployment"]
    (stage,) = [v for v in body["Resources"].values() if v["Type"] == "AWS::ApiGateway::Stage"]
    assert dep.startswith("EnforcerApiDeployment") and len(dep) > len("EnforcerApiDeployment")
    assert "AccessLogSetting" in stage["Properties"]
    assert stage["Properties"]["MethodSettings"][0]["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRate"}
    spec = json.dumps(body["Resources"]["EnforcerApi"]["Properties"]["Body"])
    assert "arn:aws:iam::*:user/*" not in spec and '"aws:PrincipalOrgID": "o-abcdefghij"' in spec
    body = moto_api(body)
    ids = deploy(c["cloudformation"], STACK, body, params)
    not_modelled = NOT_MODELLED | {
        "AWS::CloudWatch::Alarm",
        "AWS::ApiGateway::Stage",
    }  # moto 5.2.1 skips these
    declared = {k for k, v in body["Resources"].items() if v["Type"] not in not_modelled}
    assert declared - {k for k, v in body["Resources"].items() if "Condition" in v} <= set(ids)
    # the security account is a member too: same account, both stacks, no role name clash
    member_params = {"SecurityAccountId": ACCOUNT, "EnforcerStackName": STACK}
    member_ids = deploy(c["cloudformation"], f"{STACK}-member", load(MEMBER), member_params)
    assert {"GuardRole", "BrokerRole", "ForwardLaunchEvents", "ForwardDLQ"} <= set(member_ids)
    # a second region of the StackSet: no global (IAM) resources again, events forwarded to the home bus
    cf_eu = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=moto_url)
    eu_ids = deploy(cf_eu, f"{STACK}-member", load(MEMBER), {**member_params, "SecurityRegion": REGION})
    assert "GuardRole" not in eu_ids and "BrokerRole" not in eu_ids
    eb_eu = boto3.client("events", region_name="eu-west-1", endpoint_url=moto_url)
    (fwd,) = eb_eu.list_targets_by_rule(Rule=eu_ids["ForwardLaunchEvents"])["Targets"]
    assert fwd["Arn"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default" and "DeadLetterConfig" in fwd

    lam = boto3.client("lambda", region_name=REGION, endpoint_url=moto_url)
    sm = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_url)
    salt = sm.create_secret(Name=f"{STACK}-salt", SecretString="s" * 48)["ARN"]  # not modelled by moto CFN
    # moto's CloudFormation creates every AWS::KMS::Key as SYMMETRIC_DEFAULT (the template asks for
    # ECC_NIST_P256/SIGN_VERIFY, checked in test_infra): the signing key is made through the KMS API
    kms = boto3.client("kms", region_name=REGION, endpoint_url=moto_url)
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in c["cloudformation"].describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]
    }
    assert outputs["Mode"] == "dryrun" and outputs["AccountsTableName"] == f"{STACK}-accounts"

    code_dir = tmp_path / "code"
    s3_code = body["Resources"]["GuardFunction"]["Properties"]["Code"]
    blob = c["s3"].get_object(Bucket=s3_code["S3Bucket"], Key=s3_code["S3Key"])["Body"].read()
    zipfile.ZipFile(io.BytesIO(blob)).extractall(code_dir)

    broker = json.loads((EVENTS / "broker_launch.json").read_text())
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    # a caller in the security account (every identity field names it: the broker checks they agree)
    identity = json.loads(json.dumps(broker["requestContext"]["identity"]).replace("111122223333", ACCOUNT))
    broker["requestContext"]["identity"] = identity
    broker["body"] = json.dumps({**json.loads(broker["body"]), "imageId": MOTO_AMI, "subnetId": subnet})
    submit = {**broker, "resource": "/attestations", "path": "/attestations", "body": '{"token": "a.b.c"}'}
    calls = {
        "guard": json.loads((EVENTS / "cloudtrail_runinstances.json").read_text()),
        "cfn-hook": json.loads((EVENTS / "cfn_hook_ec2_instance.json").read_text()),
        "broker": broker,
        "attestation-intake": submit,
    }
    results = {}
    for short, event in calls.items():
        fn = lam.get_function(FunctionName=f"{STACK}-{short}")["Configuration"]
        assert fn["Runtime"] == "python3.12" and fn["Environment"]["Variables"]["ENFORCER_MODE"] == "dryrun"
        fn["Environment"]["Variables"].update(ENFORCER_AUDIT_SALT_SECRET=salt, ENFORCER_AUDIT_KEY_ID=key)
        results[short] = run_handler(python, code_dir, fn, event, tmp_path, moto_url)

    # dryrun on day one: an unknown account is denied in the log, and nothing is stopped or refused
    (guard,) = results["guard"]["results"]
    assert guard["effect"] == "deny" and guard["remediation"]["status"] == "would_deny"
    assert results["cfn-hook"]["hookStatus"] == "SUCCESS" and "would deny" in results["cfn-hook"]["message"]
    launched = json.loads(results["broker"]["body"])  # dryrun: would deny, launches as GpuLaunchBroker
    assert results["broker"]["statusCode"] == 200 and launched["effect"] == "deny", launched
    (reservation,) = ec2.describe_instances(InstanceIds=launched["instance_ids"])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservation["Instances"][0]["Tags"]}
    assert tags["gpu-enforcer:decision-id"] == launched["decision_id"]
    assert results["attestation-intake"]["statusCode"] == 422
    # the artifact wrote its decisions into the deployed audit table and sealed them in the bucket
    ddb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)
    items = ddb.scan(TableName=outputs["AuditTableName"])["Items"]
    assert len([i for i in items if i["pk"]["S"].startswith("REC#")]) >= 3, [i["pk"]["S"] for i in items]

    # day one from the CLI against the deployed stack (names from its outputs; moto's key swapped as above)
    from click.testing import CliRunner

    from enforcer.cli import cli

    cli_env = {**ENV, "AWS_ENDPOINT_URL": moto_url, "ENFORCER_AUDIT_KEY_ID": key}

    def run(*args: str, stdin: str | None = None) -> Any:
        r = CliRunner().invoke(cli, ["--backend", "aws", "--stack", STACK, *args], env=cli_env, input=stdin)
        return r

    verified = run("audit", "verify")
    assert verified.exit_code == 0, verified.output
    csv_text = (
        "account_id,country,kyc,name,reseller\n111122223333,DE,verified,research,harbour-sg\n123456789012,,none,no origin,\n"
    )
    imported = run("account", "import", "--csv", "-", stdin=csv_text)
    assert imported.exit_code == 1 and "skipped line 3" in imported.output
    shown = run("account", "show", "111122223333")
    assert json.loads(shown.output)["country"] == "DE"
    # a reseller and an attestation in the stack's registry (the tables the functions read)
    key = tmp_path / "reseller.pem"
    pub = tmp_path / "reseller.pub.pem"
    keygen = CliRunner().invoke(cli, ["attest", "keygen", "--out", str(key)])
    pub.write_text(keygen.output)
    assert (
        run(
            "reseller", "add", "harbour-sg", "--public-key", str(pub), "--kid", "k1", "--country", "SG"
        ).exit_code
        == 0
    )
    assert [r["reseller_id"] for r in json.loads(run("reseller", "list").output)] == ["harbour-sg"]
    token = (
        CliRunner()
        .invoke(
            cli,
            [
                "attest",
                "sign",
                "--key",
                str(key),
                "--kid",
                "k1",
                "--issuer",
                "harbour-sg",
                "--account",
                "111122223333",
                "--end-customer-country",
                "DE",
                "--end-customer-hq-country",
                "DE",
                "--end-customer-parent-hq-country",
                "DE",
            ],
        )
        .output.strip()
    )
    (tmp_path / "token.jws").write_text(token)
    submitted = run("attest", "submit", str(tmp_path / "token.jws"))
    assert submitted.exit_code == 0, submitted.output
    listed = json.loads(run("attest", "list", "--account", "111122223333").output)
    assert [a["issuer"] for a in listed] == ["harbour-sg"]
    assert ddb.scan(TableName=f"{STACK}-attestations")["Count"] == 1
    queried = run("audit", "query", "--format", "jsonl", "--effect", "deny")
    assert queried.exit_code == 0 and len(queried.output.splitlines()) >= 3
    exported = run("audit", "export")
    assert exported.exit_code == 0 and len(exported.output.splitlines()) == len(queried.output.splitlines())
    report = run("audit", "report", "--html", str(tmp_path / "dryrun.html"))
    assert report.exit_code == 0 and "ACCOUNT_UNKNOWN" in (tmp_path / "dryrun.html").read_text()
    # a reviewer's own anchor (kept outside the store) is honoured, a wrong one fails
    first = json.loads(queried.output.splitlines()[0])
    good = run("audit", "verify", "--anchor", f"{first['seq']}:{first['hash']}")
    assert good.exit_code == 0, good.output
    assert run("audit", "verify", "--anchor", f"{first['seq']}:{'0' * 64}").exit_code == 1
    # an edit of the production log is caught and named from the CLI (and reading it is refused)
    rec1 = ddb.get_item(TableName=outputs["AuditTableName"], Key={"pk": {"S": "REC#1"}})["Item"]
    rec1["line"]["S"] = rec1["line"]["S"].replace('"dryrun"', '"enforce"', 1)
    ddb.put_item(TableName=outputs["AuditTableName"], Item=rec1)
    tampered = run("audit", "verify")
    assert tampered.exit_code == 1 and "seq 1" in tampered.output, tampered.output
    assert run("audit", "query").exit_code == 1


def test_a_changed_api_gets_a_new_deployment_and_terminate_is_granted_only_when_chosen() -> None:
    """The SAM transform names the deployment after the API it deploys; IAM follows RemediationAction."""
    import copy

    base = load(TEMPLATE)

    def deployment(t: dict[str, Any]) -> str:
        out = sam_transform_dict(t, {}, "s3://b/k.zip")
        (dep,) = [k for k, v in out["Resources"].items() if v["Type"] == "AWS::ApiGateway::Deployment"]
        return dep

    changed = copy.deepcopy(base)
    changed["Resources"]["BrokerFunction"]["Properties"]["Events"]["Launch"]["Properties"]["Path"] = (
        "/launch2"
    )
    assert deployment(base) != deployment(changed)
    assert deployment(base) == deployment(copy.deepcopy(base))
    statements = json.dumps(base["Resources"]["GuardRole"]["Properties"]["Policies"])
    assert '{"Fn::If": ["CanTerminate", {"Sid": "TerminateHere"' in statements
    assert statements.count("ec2:TerminateInstances") == 1  # nowhere else
    assert base["Conditions"]["CanTerminate"] == {"Fn::Equals": [{"Ref": "RemediationAction"}, "terminate"]}
    assert base["Parameters"]["Mode"]["Default"] == "dryrun"
