"""Provision a (moto) security account for the demo, the tests and the bench: not used in production.

Production resources come from ``infra/template.yaml``; this creates the same tables, bucket, key, topic
and secret in whatever endpoint the client factory points at, and returns the environment the handlers
read.
"""

from __future__ import annotations

import secrets

from enforcer.wiring.aws import ClientFactory


def provision(clients: ClientFactory, prefix: str = "gle-") -> dict[str, str]:
    """Create the security account's resources (tables, audit bucket, signing key, topic) for local use.

    Returns the ``ENFORCER_*`` environment that points the handlers at them (the bench, the tests and
    moto demos use it; production uses ``infra/template.yaml``).

    Parameters
    ----------
    clients
        Client factory of the (moto) security account.
    prefix
        Name prefix of every table and of the bucket.
    """
    from enforcer.accounts_aws import create_accounts_table
    from enforcer.act_state import create_counter_table
    from enforcer.attestation import create_tables
    from enforcer.audit.aws import create_audit_resources

    ddb = clients.client("dynamodb")
    names = {"accounts": f"{prefix}accounts", "audit": f"{prefix}audit", "counters": f"{prefix}counters"}
    bucket = f"{prefix}audit-bucket"
    create_accounts_table(ddb, names["accounts"])
    create_tables(ddb, prefix)
    from enforcer.licences import create_licence_table

    create_licence_table(ddb, prefix)
    create_audit_resources(ddb, clients.client("s3"), names["audit"], bucket, region=clients.region)
    create_counter_table(ddb, names["counters"])
    key = clients.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    topic = clients.client("sns").create_topic(Name=f"{prefix}denies")["TopicArn"]
    salt = clients.client("secretsmanager").create_secret(
        Name=f"{prefix}audit-salt", SecretString=secrets.token_urlsafe(32)
    )["ARN"]
    return {
        "AWS_REGION": clients.region,
        "ENFORCER_ACCOUNTS_TABLE": names["accounts"],
        "ENFORCER_REGISTRY_PREFIX": prefix,
        "ENFORCER_AUDIT_TABLE": names["audit"],
        "ENFORCER_AUDIT_BUCKET": bucket,
        "ENFORCER_AUDIT_KEY_ID": str(key["KeyId"]),
        "ENFORCER_AUDIT_SALT_SECRET": str(salt),
        "ENFORCER_TOPIC_ARN": str(topic),
        "ENFORCER_COUNTER_TABLE": names["counters"],
        "ENFORCER_HOME_ACCOUNT": clients.home_account,
    }
