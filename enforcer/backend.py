"""Where the CLI reads and writes: the local state directory, or the deployed AWS stack.

``enforcer --backend aws [--stack NAME] …`` manages what the Lambda functions read -- the DynamoDB
account directory, the reseller/attestation registry -- and reads the production audit log (DynamoDB
index + S3 Object Lock copies + the KMS checkpoint key). Resource names come from the stack's outputs
(``infra/template.yaml``), each overridable by the same environment variable the functions use
(``ENFORCER_ACCOUNTS_TABLE``, ``ENFORCER_REGISTRY_PREFIX``, ``ENFORCER_AUDIT_TABLE``,
``ENFORCER_AUDIT_BUCKET``, ``ENFORCER_AUDIT_KEY_ID``). Credentials and region are boto3's usual
(``AWS_PROFILE``, ``AWS_REGION``; ``AWS_ENDPOINT_URL`` reaches a test endpoint).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from enforcer.model import InputError

BACKENDS = ("local", "aws")
DEFAULT_STACK = "gpu-enforcer"

#: setting -> (environment variable, stack output)
SETTINGS = {
    "accounts_table": ("ENFORCER_ACCOUNTS_TABLE", "AccountsTableName"),
    "registry_prefix": ("ENFORCER_REGISTRY_PREFIX", "RegistryPrefix"),
    "audit_table": ("ENFORCER_AUDIT_TABLE", "AuditTableName"),
    "audit_bucket": ("ENFORCER_AUDIT_BUCKET", "AuditBucketName"),
    "audit_key_id": ("ENFORCER_AUDIT_KEY_ID", "AuditSigningKeyArn"),
}


class BackendError(InputError):
    """The AWS backend cannot be used (no stack, missing output, no credentials); CLI exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "BACKEND_UNAVAILABLE")


@dataclass
class AwsBackend:
    """The deployed stack's resources and boto3 clients for them (created lazily, once).

    Parameters
    ----------
    stack
        CloudFormation stack name of infra/template.yaml.
    session
        A boto3 session (default: a new one from the environment).
    """

    stack: str = DEFAULT_STACK
    session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)
    _outputs: dict[str, str] | None = None

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` (one per backend)."""
        if service not in self._clients:
            if self.session is None:
                import boto3

                self.session = boto3.session.Session()
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    def outputs(self) -> dict[str, str]:
        """The stack's outputs (read once)."""
        if self._outputs is None:
            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"]
            except Exception as exc:
                raise BackendError(
                    f"cannot read stack {self.stack!r} ({type(exc).__name__}: {str(exc)[:200]}); "
                    "pass --stack NAME, or set the ENFORCER_* resource variables"
                ) from None
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        return self._outputs

    def setting(self, name: str) -> str:
        """A resource name: its environment variable, else the stack output."""
        env, output = SETTINGS[name]
        value = os.environ.get(env)
        if value:
            return value
        value = self.outputs().get(output)
        if not value:
            raise BackendError(f"stack {self.stack!r} has no output {output} (set {env})")
        return value

    def directory(self) -> Any:
        """The DynamoDB account directory the functions read."""
        from enforcer.accounts_aws import DynamoDBAccountDirectory

        return DynamoDBAccountDirectory(self.client("dynamodb"), self.setting("accounts_table"))

    def registry(self) -> Any:
        """The DynamoDB reseller and attestation registry."""
        from enforcer.attestation.dynamodb_registry import DynamoDBRegistry

        return DynamoDBRegistry(self.client("dynamodb"), self.setting("registry_prefix"))

    def audit_source(self) -> Any:
        """The production audit log, read-only."""
        from enforcer.audit.aws_reader import AwsAuditSource

        return AwsAuditSource(
            self.client("dynamodb"),
            self.client("s3"),
            self.client("kms"),
            self.setting("audit_table"),
            self.setting("audit_bucket"),
            self.setting("audit_key_id"),
        )
