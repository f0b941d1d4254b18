"""The demo's AWS organisation, in moto: a security account running the handlers and member accounts.

moto runs as a real HTTP server (``ThreadedMotoServer`` on 127.0.0.1) and every call goes through
boto3 with ``endpoint_url``, member accounts through STS AssumeRole, exactly as the Lambdas would.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from enforcer.model import AccountOrigin

HOME = "123456789012"
REGION = "us-east-1"
PREFIX = "demo-"
MOTO_AMI = "ami-03cf127a"  # one of moto's bundled us-east-1 images


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "gpu-enforcer-demo"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{HOME}:function:gpu-enforcer-demo"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start moto's server in this process; yield its URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto is a dev/demo dependency
        raise RuntimeError("the demo needs moto[server]: run `make demo` (it installs it)") from exc
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


class DemoWorld:
    """Provisioned security account plus the handlers' runtime, pointed at the moto server."""

    def __init__(self, endpoint_url: str, log: io.TextIOBase) -> None:
        from enforcer.config import Config
        from enforcer.demo.provision import provision
        from enforcer.wiring.aws import ClientFactory, build_runtime, set_runtime

        for var, value in (
            ("AWS_ACCESS_KEY_ID", "demo"),
            ("AWS_SECRET_ACCESS_KEY", "demo"),
            ("AWS_DEFAULT_REGION", REGION),
        ):
            os.environ.setdefault(var, value)
        self.log = log
        self.clients = ClientFactory(REGION, home_account=HOME, endpoint_url=endpoint_url)
        self.env = provision(self.clients, PREFIX)
        self.config = Config.from_env(self.env)
        self.runtime = build_runtime(self.config, clients=self.clients)
        set_runtime(self.runtime)
        self.ctx = LambdaContext()

    # -- AWS access ------------------------------------------------------------------------------
    def client(self, service: str, account: str | None = None) -> Any:
        """A boto3 client in ``account`` (the security account when None)."""
        return self.clients.client(service, account, REGION)

    def call(self, handler: Any, event: dict[str, Any]) -> Any:
        """Invoke a Lambda handler, sending its structured logs and metrics to the demo log file."""
        self._route_logs()
        with contextlib.redirect_stdout(self.log):
            return handler(event, self.ctx)

    def _route_logs(self) -> None:
        """Powertools loggers hold the stdout of import time: point their handlers at the log file."""
        import logging
        import sys

        for logger in list(logging.Logger.manager.loggerDict.values()):
            for h in getattr(logger, "handlers", []):
                if isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.__stdout__):
                    h.setStream(self.log)

    # -- directory and registry --------------------------------------------------------------------
    def add_account(self, origin: AccountOrigin) -> None:
        """Put an account in the DynamoDB account directory."""
        from enforcer.accounts_aws import DynamoDBAccountDirectory

        assert self.config.accounts_table is not None
        DynamoDBAccountDirectory(self.client("dynamodb"), self.config.accounts_table).put(origin)

    @property
    def registry(self) -> Any:
        """The DynamoDB reseller/attestation registry."""
        from enforcer.attestation import DynamoDBRegistry

        return DynamoDBRegistry(self.client("dynamodb"), PREFIX)

    # -- EC2 -----------------------------------------------------------------------------------------
    def states(self, ids: list[str], account: str) -> list[str]:
        """Current state names of instances in ``account``."""
        if not ids:
            return []
        res = self.client("ec2", account).describe_instances(InstanceIds=ids)["Reservations"]
        by_id = {i["InstanceId"]: i["State"]["Name"] for r in res for i in r["Instances"]}
        return [by_id.get(i, "?") for i in ids]

    def tags(self, iid: str, account: str) -> dict[str, str]:
        """Tags of one instance."""
        res = self.client("ec2", account).describe_instances(InstanceIds=[iid])["Reservations"]
        return {t["Key"]: t["Value"] for t in res[0]["Instances"][0].get("Tags", [])}

    def audit_count(self) -> int:
        """Records in the audit chain (the DynamoDB head's sequence number)."""
        assert self.config.audit_table is not None
        item = self.client("dynamodb").get_item(TableName=self.config.audit_table, Key={"pk": {"S": "HEAD"}})
        return int(item["Item"]["seq"]["N"]) if "Item" in item else 0

    def audit_records(self) -> list[Any]:
        """Every record of the AWS audit chain, in order, as ``LoggedRecord`` for the HTML report."""
        import json

        from enforcer.audit.query import LoggedRecord

        assert self.config.audit_table is not None
        ddb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in ddb.get_paginator("scan").paginate(TableName=self.config.audit_table):
            items += [i for i in page["Items"] if i["pk"]["S"].startswith("REC#")]
        items.sort(key=lambda i: int(i["pk"]["S"][4:]))
        loc = f"dynamodb:{self.config.audit_table}"
        return [LoggedRecord(loc, int(i["pk"]["S"][4:]), json.loads(i["line"]["S"])) for i in items]
