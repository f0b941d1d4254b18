"""Wiring: the one place where the pipeline's ports get their backends.

- ``enforcer.wiring.aws``: the Lambda runtime (boto3 clients per account and region, created on first
  use; DynamoDB/S3/KMS/SNS backends; the guard, hook and broker runtime).
- ``enforcer.wiring.local``: the CLI's enforcer over a local state folder.

The demo/test provisioner (moto resources for a local run) is in ``enforcer.demo.provision``.
Nothing is imported here, so a handler pays only for the side it uses.
"""
