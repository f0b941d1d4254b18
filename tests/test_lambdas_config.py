"""Handler configuration from environment variables: defaults, validation, one clear error."""

from __future__ import annotations

import pytest

from enforcer.config import Config, ConfigError


def test_defaults() -> None:
    cfg = Config.from_env({})
    assert (cfg.mode, cfg.fail_policy, cfg.action, cfg.engine) == ("enforce", "closed", "stop", "embedded")
    assert (cfg.max_actions_per_invocation, cfg.max_actions_per_hour) == (10, 50)
    assert cfg.region == "us-east-1" and cfg.sweep_accounts == ()


def test_full_configuration() -> None:
    cfg = Config.from_env(
        {
            "ENFORCER_MODE": "DRYRUN",
            "ENFORCER_ACTION": "terminate",
            "ENFORCER_ACCOUNTS_TABLE": "gle-accounts",
            "ENFORCER_AUDIT_TABLE": "gle-audit",
            "ENFORCER_AUDIT_BUCKET": "gle-audit-bucket",
            "ENFORCER_AUDIT_KEY_ID": "alias/gle-audit",
            "ENFORCER_AUDIT_SALT_SECRET": "gle-audit-salt",
            "ENFORCER_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:gpu-denies",
            "ENFORCER_MAX_ACTIONS_PER_HOUR": "5",
            "ENFORCER_SWEEP_ACCOUNTS": "111111111111, 222222222222",
            "ENFORCER_SWEEP_REGIONS": "us-east-1,eu-west-1",
            "AWS_REGION": "eu-west-1",
        }
    )
    assert cfg.mode == "dryrun" and cfg.action == "terminate" and cfg.max_actions_per_hour == 5
    assert cfg.sweep_accounts == ("111111111111", "222222222222")
    assert cfg.sweep_regions == ("us-east-1", "eu-west-1") and cfg.region == "eu-west-1"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_env(
            {
                "ENFORCER_MODE": "yolo",
                "ENFORCER_ACTION": "reboot",
                "ENFORCER_MAX_ACTIONS_PER_HOUR": "-1",
                "ENFORCER_MAX_ACTIONS_PER_INVOCATION": "many",
                "ENFORCER_TOPIC_ARN": "not-an-arn",
                "ENFORCER_SWEEP_ACCOUNTS": "123,456789012345",
                "ENFORCER_AUDIT_TABLE": "gle-audit",
                "ENFORCER_ENGINE": "opa",
            }
        )
    message = str(err.value)
    for name in (
        "ENFORCER_MODE",
        "ENFORCER_ACTION",
        "ENFORCER_MAX_ACTIONS_PER_HOUR",
        "ENFORCER_MAX_ACTIONS_PER_INVOCATION",
        "ENFORCER_TOPIC_ARN",
        "ENFORCER_SWEEP_ACCOUNTS",
        "ENFORCER_AUDIT_BUCKET",
        "ENFORCER_OPA_URL",
    ):
        assert name in message


def test_require_names_the_missing_variables() -> None:
    with pytest.raises(ConfigError, match="ENFORCER_ACCOUNTS_TABLE"):
        Config.from_env({}).require("accounts_table")


def test_masking_salt_is_read_from_secrets_manager_and_checked() -> None:
    import boto3
    from moto import mock_aws

    from enforcer.wiring.aws import masking_salt

    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        arn = sm.create_secret(Name="salt", SecretString="s" * 32)["ARN"]
        assert masking_salt(sm, arn) == b"s" * 32
        sm.create_secret(Name="short", SecretString="abc")
        with pytest.raises(ConfigError, match="at least 16 bytes"):
            masking_salt(sm, "short")
        with pytest.raises(ConfigError, match="cannot read"):
            masking_salt(sm, "missing")


def test_attestation_settings_are_validated_with_the_rest() -> None:
    from enforcer.attestation.constants import DEFAULT_AUDIENCE, DEFAULT_MAX_VALIDITY_DAYS

    cfg = Config.from_env({})
    assert (cfg.attest_audience, cfg.attest_max_validity_days) == (
        DEFAULT_AUDIENCE,
        DEFAULT_MAX_VALIDITY_DAYS,
    )
    assert Config.from_env({"ENFORCER_ATTEST_AUDIENCE": "acme"}).attest_audience == "acme"
    with pytest.raises(ConfigError, match="ENFORCER_ATTEST_MAX_VALIDITY_DAYS"):
        Config.from_env({"ENFORCER_ATTEST_MAX_VALIDITY_DAYS": "forever"})
