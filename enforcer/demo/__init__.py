"""``enforcer demo``: the whole product, end to end, in a moto-simulated AWS organisation.

Starts moto's server in-process, provisions the security account (tables, Object Lock audit
bucket, KMS signing key, SNS topic), registers resellers and accounts, has resellers submit
attestations, launches GPU instances through RunInstances, CreateFleet, Auto Scaling, a
CloudFormation hook and the launch broker, runs the real Lambda handlers on the resulting events,
then verifies the audit log and writes the HTML report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

EFFECT_STYLE = {
    "allow": "green",
    "deny": "bold red",
    "audit": "yellow",
    "stored": "green",
    "refused": "bold red",
}
INTRO = "\n".join(
    [
        "[bold]GPU launch enforcer: end-to-end demo[/]",
        "(moto server on 127.0.0.1, embedded OPA engine, no AWS account)",
        "",
        "Which path does what, honestly:",
        "  [bold]SCP[/] (generated from the chip catalogue) [green]prevents[/] direct calls for",
        "    controlled types, except the broker role",
        "  [bold]launch broker[/] and [bold]CloudFormation hook[/] [green]prevent[/]: they decide",
        "    before anything is launched",
        "  [bold]reactive guard[/] (CloudTrail via EventBridge, state changes, sweep) [yellow]remediates[/]:",
        "    seconds after a launch it stops the instances, tags them with the decision id",
        "    and notifies; it cannot un-run them",
        "",
    ]
)


def _render(rows: list[Any], console: Console) -> None:
    table = Table(title="What happened to each request", show_lines=True)
    for col in ("#", "path", "who", "request", "chip class", "decision", "reasons", "outcome"):
        table.add_column(col, no_wrap=col in ("#", "path", "chip class", "decision"))
    for n, r in enumerate(rows, 1):
        style = EFFECT_STYLE.get(r.effect, "")
        table.add_row(
            str(n),
            r.path,
            r.who,
            r.request,
            r.chip_class,
            f"[{style}]{r.effect}[/]" if style else r.effect,
            "\n".join(r.reasons) or "-",
            r.outcome,
        )
    console.print(table)


def run_demo(state: Path, console: Console) -> int:
    """Run the demo; write the report and logs under ``state``; return the exit code."""
    from enforcer.audit.aws import AwsAuditStore, verify_aws
    from enforcer.audit.report import render_html
    from enforcer.demo.export import export_local
    from enforcer.demo.scenario import Scenario
    from enforcer.demo.world import DemoWorld, moto_server
    from enforcer.scp import generate_scps, write_scps

    start = time.perf_counter()
    state.mkdir(parents=True, exist_ok=True)
    console.print(INTRO)
    scps = write_scps(generate_scps(), state / "scp")
    with moto_server() as url, open(state / "demo-lambda.log", "w") as log:
        console.print(f"moto server at {url}; Lambda logs and metrics go to {state / 'demo-lambda.log'}\n")
        world = DemoWorld(url, log)
        scenario = Scenario(world)
        scenario.run()
        redelivered = scenario.redeliver_first_deny()
        _render(scenario.rows, console)
        audit = world.runtime.enforcer.audit
        assert isinstance(audit, AwsAuditStore)  # the demo's runtime always has the AWS store
        audit.seal()
        cfg = world.config
        assert cfg.audit_table and cfg.audit_bucket
        report = verify_aws(
            world.client("dynamodb"),
            cfg.audit_table,
            world.client("s3"),
            cfg.audit_bucket,
            audit.signer.public_key_pem(),  # the KMS key's public half, as a third party would fetch it
        )
        records = world.audit_records()
        kms_pem = export_local(
            world.client("dynamodb"),
            world.client("s3"),
            cfg.audit_table,
            cfg.audit_bucket,
            audit.signer.public_key_pem(),
            state,
        )
        html = render_html(
            records,
            title="GPU launch decisions (demo)",
            source=f"dynamodb:{cfg.audit_table}",
            verification=report,
        )
    report_path = state / "demo-report.html"
    report_path.write_text(html)
    ok = report.ok
    console.print(f"\n[bold]Duplicate delivery:[/] {redelivered}")
    verdict = "[green]verified[/]" if ok else "[bold red]FAILED[/]"
    console.print(
        f"[bold]Audit log:[/] {len(records)} decision records in DynamoDB, sealed to S3 Object Lock "
        f"(COMPLIANCE) with a KMS-signed checkpoint: chain {verdict} ({report.summary()})"
    )
    noun = "policy" if len(scps) == 1 else "policies"
    console.print(
        f"[bold]SCP:[/] {len(scps)} service control {noun} written to {state / 'scp'} "
        "(explicit instance-type lists from the catalogue, each under 5,120 characters)"
    )
    console.print(f"[bold]HTML report:[/] {report_path.resolve()}")
    console.print(
        f"[bold]Verify it yourself:[/] enforcer --state {state} audit verify --public-key {kms_pem} "
        "(the log, exported from the simulated DynamoDB/S3 store, with the KMS key's public half)"
    )
    console.print(f"\nDone in {time.perf_counter() - start:.1f}s.")
    return 0 if ok else 1
