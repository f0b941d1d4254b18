"""Event builders for the demo: the payloads AWS would deliver for launches really made in moto.

CloudTrail events are shaped as EventBridge "AWS API Call via CloudTrail" deliveries; hook and
broker requests as CloudFormation Lambda Hook and API Gateway proxy events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

REGION = "us-east-1"


def cloudtrail(
    name: str,
    account: str,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    source: str = "ec2.amazonaws.com",
    principal: str = "Dev/alice",
) -> dict[str, Any]:
    """An EventBridge CloudTrail event around ``request`` and ``response`` made by ``account``."""
    arn = f"arn:aws:sts::{account}:assumed-role/{principal}"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws." + source.split(".")[0],
        "account": account,
        "time": "2026-11-26T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": arn,
                "accountId": account,
                "principalId": "AROAEXAMPLE:" + principal.split("/")[-1],
            },
            "eventTime": "2026-11-26T10:00:00Z",
            "eventSource": source,
            "eventName": name,
            "awsRegion": REGION,
            "sourceIPAddress": "203.0.113.7",
            "userAgent": "Boto3/1.43.11",
            "requestParameters": request,
            "responseElements": response,
            "requestID": str(uuid.uuid4()),
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        },
    }


def run_instances(resp: dict[str, Any], account: str, **request: Any) -> dict[str, Any]:
    """RunInstances event for a moto ``run_instances`` response; ``request``: more request fields."""
    n = len(resp["Instances"])
    params: dict[str, Any] = {
        "instancesSet": {
            "items": [{"imageId": resp["Instances"][0]["ImageId"], "minCount": n, "maxCount": n}]
        },
        **request,
    }
    items = [
        {
            "instanceId": i["InstanceId"],
            "instanceType": i["InstanceType"],
            "instanceState": {"code": 0, "name": "pending"},
        }
        for i in resp["Instances"]
    ]
    response = {"reservationId": resp["ReservationId"], "ownerId": account, "instancesSet": {"items": items}}
    return cloudtrail("RunInstances", account, params, response)


def attestation_tag(attestation_id: str | None) -> dict[str, Any]:
    """Request fields that tag the launch with an attestation id (``gpu-attestation``), or nothing."""
    if not attestation_id:
        return {}
    tags = [{"key": "gpu-attestation", "value": attestation_id}]
    return {"tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": tags}]}}


def create_fleet(
    resp: dict[str, Any], account: str, template_id: str, instance_type: str, count: int
) -> dict[str, Any]:
    """CreateFleet (instant) event, in CloudTrail's PascalCase ``CreateFleetRequest`` spelling."""
    request = {
        "CreateFleetRequest": {
            "Type": "instant",
            "TargetCapacitySpecification": {
                "DefaultTargetCapacityType": "on-demand",
                "TotalTargetCapacity": count,
            },
            "LaunchTemplateConfigs": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template_id, "Version": "$Latest"},
                "Overrides": {"InstanceType": instance_type, "tag": 1},
                "tag": 1,
            },
        }
    }
    ids = [i for inst in resp.get("Instances", []) for i in inst.get("InstanceIds", [])]
    response = {
        "CreateFleetResponse": {
            "fleetId": resp["FleetId"],
            "fleetInstanceSet": {
                "item": {
                    "instanceType": instance_type,
                    "lifecycle": "on-demand",
                    "instanceIds": {"item": ids},
                }
            },
        }
    }
    return cloudtrail("CreateFleet", account, request, response)


def create_asg(account: str, name: str, template_id: str, desired: int) -> dict[str, Any]:
    """CreateAutoScalingGroup event (JSON service: lowerCamelCase, no response)."""
    request = {
        "autoScalingGroupName": name,
        "minSize": 0,
        "maxSize": desired,
        "desiredCapacity": desired,
        "launchTemplate": {"launchTemplateId": template_id, "version": "$Latest"},
    }
    return cloudtrail("CreateAutoScalingGroup", account, request, None, source="autoscaling.amazonaws.com")


def hook_request(account: str, instance_type: str, logical_id: str = "Trainer") -> dict[str, Any]:
    """A CloudFormation Lambda Hook request for an ``AWS::EC2::Instance`` (CREATE_PRE_PROVISION)."""
    return {
        "clientRequestToken": str(uuid.uuid4()),
        "awsAccountId": account,
        "stackId": f"arn:aws:cloudformation:{REGION}:{account}:stack/gpu-training/{uuid.uuid4()}",
        "changeSetId": "",
        "hookTypeName": "Private::Gpu::LaunchGuard",
        "hookTypeVersion": "00000001",
        "hookModel": {"LambdaFunction": f"arn:aws:lambda:{REGION}:123456789012:function:gpu-cfn-hook"},
        "actionInvocationPoint": "CREATE_PRE_PROVISION",
        "requestData": {
            "targetName": "AWS::EC2::Instance",
            "targetType": "AWS::EC2::Instance",
            "targetLogicalId": logical_id,
            "targetModel": {
                "resourceProperties": {"InstanceType": instance_type, "ImageId": "ami-0abc"},
                "previousResourceProperties": {},
            },
        },
        "requestContext": {"invocation": 1, "callbackContext": None},
    }


def api_request(account: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """An API Gateway REST proxy ``POST`` from a caller in ``account`` (IAM auth)."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "requestContext": {
            "accountId": "123456789012",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "identity": {
                "accountId": account,
                "caller": "AROAEXAMPLE:alice",
                "userArn": f"arn:aws:sts::{account}:assumed-role/Dev/alice",
            },
        },
    }
