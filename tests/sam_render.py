"""The SAM template as CloudFormation receives it, for moto: the real ``samtranslator`` transform.

``sam deploy`` uploads the code, rewrites ``CodeUri`` to the S3 object and CloudFormation runs the SAM
transform; these helpers do the same with the library CloudFormation uses, so the tests deploy what AWS
would deploy (not a hand-made rendering of the functions).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

REGION = "us-east-1"


def load(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return data


def sam_transform(path: Path, params: dict[str, str], code_uri: str) -> dict[str, Any]:
    """The template as CloudFormation receives it after ``sam package`` and the SAM transform."""
    return sam_transform_dict(load(path), params, code_uri)


def sam_transform_dict(t: dict[str, Any], params: dict[str, str], code_uri: str) -> dict[str, Any]:
    """:func:`sam_transform` of an already loaded template (a copy is transformed)."""
    import copy

    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    t = copy.deepcopy(t)
    if "Globals" in t:
        t["Globals"]["Function"]["CodeUri"] = code_uri
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    out: dict[str, Any] = transform(t, params, NoManagedPolicies())
    return out


def moto_api(t: dict[str, Any]) -> dict[str, Any]:
    """moto's CloudFormation does not import a RestApi's OpenAPI ``Body``: spell its paths out as
    ``AWS::ApiGateway::Resource``/``Method`` (same integration, IAM auth) so the deployment has methods."""
    for api_id, api in [(k, v) for k, v in t["Resources"].items() if v["Type"] == "AWS::ApiGateway::RestApi"]:
        paths = api["Properties"]["Body"]["paths"]
        methods = []
        for n, (path, ops) in enumerate(sorted(paths.items())):
            res = f"{api_id}Path{n}"
            t["Resources"][res] = {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {
                    "RestApiId": {"Ref": api_id},
                    "ParentId": {"Fn::GetAtt": [api_id, "RootResourceId"]},
                    "PathPart": path.strip("/"),
                },
            }
            for verb, op in ops.items():
                integ = op["x-amazon-apigateway-integration"]
                methods.append(f"{res}{verb.upper()}")
                t["Resources"][methods[-1]] = {
                    "Type": "AWS::ApiGateway::Method",
                    "Properties": {
                        "RestApiId": {"Ref": api_id},
                        "ResourceId": {"Ref": res},
                        "HttpMethod": verb.upper(),
                        "AuthorizationType": "AWS_IAM" if op.get("security") else "NONE",
                        "Integration": {
                            "Type": integ["type"].upper(),
                            "IntegrationHttpMethod": integ["httpMethod"],
                            "Uri": integ["uri"],
                        },
                    },
                }
        for r in t["Resources"].values():
            if r["Type"] == "AWS::ApiGateway::Deployment" and r["Properties"]["RestApiId"] == {"Ref": api_id}:
                r["DependsOn"] = methods
    return t


def zip_artifact(root: Path) -> bytes:
    """``build/lambda`` as the deployment zip (sorted entries, fixed times, executable bits kept)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(str(p.relative_to(root)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (p.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, p.read_bytes())
    return buf.getvalue()
