"""A small AWS world for handler tests: tables, bucket, KMS key, SNS topic, accounts, event builders.

Used inside ``moto.mock_aws()`` (in-process) and against a ``ThreadedMotoServer`` (``endpoint_url``).
CloudTrail events are built from what was really launched in moto (account ids, instance ids, types),
starting from the fixtures in ``tests/events``.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from moto import mock_aws

from enforcer.accounts_aws import DynamoDBAccountDirectory
from enforcer.config import Config
from enforcer.demo.events import api_request, hook_request, run_instances
from enforcer.demo.provision import provision
from enforcer.demo.world import MOTO_AMI
from enforcer.demo.world import LambdaContext as LambdaContext  # re-exported for the handler tests
from enforcer.model import AccountOrigin
from enforcer.wiring.aws import ClientFactory, Runtime, build_runtime, set_runtime

EVENTS = Path(__file__).resolve().parent / "events"
HOME = "123456789012"  # moto's default account: the security account
MEMBER = "111111111111"  # a member account, reached by assuming the guard role
REGION = "us-east-1"
PREFIX = "gle-"
ACCOUNTS_TABLE = "gle-accounts"
AUDIT_TABLE = "gle-audit"
COUNTER_TABLE = "gle-counters"


def load_event(name: str) -> dict[str, Any]:
    """A fixture from ``tests/events`` (a fresh copy)."""
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


class World:
    """Resources of the security account plus the runtime the handlers use.

    Parameters
    ----------
    engine
        The policy engine (the session's embedded engine).
    endpoint_url
        moto server URL, or None inside ``mock_aws``.
    env
        Extra ``ENFORCER_*`` variables (mode, caps ...).
    """

    def __init__(self, engine: Any, endpoint_url: str | None = None, **env: str) -> None:
        self.clients = ClientFactory(REGION, home_account=HOME, endpoint_url=endpoint_url)
        self.endpoint_url = endpoint_url
        environ = {**provision(self.clients, PREFIX), **env}
        sns, sqs = self.client("sns"), self.client("sqs")
        self.topic_arn = environ["ENFORCER_TOPIC_ARN"]
        self.queue_url = sqs.create_queue(QueueName="deny-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.config = Config.from_env(environ)
        self.rt: Runtime = build_runtime(self.config, clients=self.clients, engine=engine)
        self.directory = DynamoDBAccountDirectory(self.client("dynamodb"), ACCOUNTS_TABLE)
        set_runtime(self.rt)

    def client(self, service: str, account: str | None = None) -> Any:
        """A client in ``account`` (home when None); member accounts through the assumed role."""
        return self.clients.client(service, account, REGION)

    def add_account(
        self, account_id: str, country: str, kyc: str = "verified", reseller: str | None = None
    ) -> None:
        """Put an account in the DynamoDB directory."""
        self.directory.put(
            AccountOrigin(
                account_id, country, country, country, kyc=kyc, reseller=reseller, name=f"acct-{country}"
            )
        )

    def ami(self, account: str | None = None) -> str:
        """An AMI id visible in ``account`` (one of moto's bundled images; listing them all takes seconds)."""
        ec2 = self.client("ec2", account)
        images = ec2.describe_images(ImageIds=[MOTO_AMI])["Images"]  # raises if moto drops it
        return str(images[0]["ImageId"])

    def launch(
        self, instance_type: str = "p5.48xlarge", count: int = 1, account: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        """RunInstances in moto; returns the response."""
        ec2 = self.client("ec2", account)
        args: dict[str, Any] = {"MinCount": count, "MaxCount": count, **kw}
        if "LaunchTemplate" not in kw:
            args.setdefault("ImageId", self.ami(account))
            args["InstanceType"] = instance_type
        resp: dict[str, Any] = ec2.run_instances(**args)
        return resp

    def instance(self, iid: str, account: str | None = None) -> dict[str, Any]:
        """DescribeInstances for one id."""
        res = self.client("ec2", account).describe_instances(InstanceIds=[iid])["Reservations"]
        inst: dict[str, Any] = res[0]["Instances"][0]
        return inst

    def state(self, iid: str, account: str | None = None) -> str:
        """Current state name of an instance."""
        return str(self.instance(iid, account)["State"]["Name"])

    def tags(self, iid: str, account: str | None = None) -> dict[str, str]:
        """Tags of an instance as a dict."""
        return {t["Key"]: t["Value"] for t in self.instance(iid, account).get("Tags", [])}

    def notifications(self) -> list[dict[str, Any]]:
        """SNS notifications received so far (drains the subscribed queue)."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            msgs = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                envelope = json.loads(m["Body"])
                out.append(json.loads(envelope["Message"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def audit_count(self) -> int:
        """Records in the audit chain."""
        item = self.client("dynamodb").get_item(TableName=AUDIT_TABLE, Key={"pk": {"S": "HEAD"}}).get("Item")
        return int(item["seq"]["N"]) if item else 0


# -- CloudTrail events built from real moto launches ------------------------------------------------
def cloudtrail(
    name: str,
    account: str,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    *,
    source: str = "ec2.amazonaws.com",
    event_id: str | None = None,
) -> dict[str, Any]:
    """An EventBridge "AWS API Call via CloudTrail" event around a request and response."""
    ev = load_event("cloudtrail_runinstances.json")
    detail = ev["detail"]
    ident = detail["userIdentity"]
    ident["accountId"] = account
    ident["arn"] = f"arn:aws:sts::{account}:assumed-role/Dev/alice"
    ident["sessionContext"]["sessionIssuer"].update(accountId=account, arn=f"arn:aws:iam::{account}:role/Dev")
    ev.update(id=event_id or str(uuid.uuid4()), account=account, source="aws." + source.split(".")[0])
    detail.update(
        eventSource=source,
        eventName=name,
        requestParameters=copy.deepcopy(request),
        responseElements=copy.deepcopy(response),
        recipientAccountId=account,
        eventID=str(uuid.uuid4()),
    )
    return ev


def run_instances_event(resp: dict[str, Any], account: str, **request: Any) -> dict[str, Any]:
    """RunInstances event for a moto ``run_instances`` response (request fields in CloudTrail spelling)."""
    return run_instances(resp, account, **request)


def state_change_event(iid: str, account: str, state: str = "pending") -> dict[str, Any]:
    """EC2 Instance State-change Notification for ``iid``."""
    ev = load_event("state_change_pending.json")
    ev.update(
        id=str(uuid.uuid4()), account=account, resources=[f"arn:aws:ec2:{REGION}:{account}:instance/{iid}"]
    )
    ev["detail"] = {"instance-id": iid, "state": state}
    return ev


def hook_event(account: str, instance_type: str = "p5.48xlarge") -> dict[str, Any]:
    """A Lambda Hook request for an ``AWS::EC2::Instance`` in ``account``."""
    return hook_request(account, instance_type)


def broker_event(account: str, body: dict[str, Any]) -> dict[str, Any]:
    """API Gateway ``POST /launch`` from a caller in ``account``."""
    return api_request(account, "/launch", body)


# -- the make_world fixture body (each test module wraps it in a 3-line fixture) -----------------------
def world_factory(engine: Any) -> Iterator[Callable[..., World]]:
    """Build worlds inside one ``mock_aws``: HOME is a US, KYC-verified account, MEMBER is a CN one."""
    with mock_aws():

        def _make(**env: str) -> World:
            w = World(engine, **env)
            w.add_account(HOME, "US")
            w.add_account(MEMBER, "CN")
            return w

        yield _make
    set_runtime(None)
