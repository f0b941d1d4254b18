"""Configuration of the AWS handlers, read from environment variables once per cold start.

Every variable is validated up front and every problem is reported in one :class:`ConfigError`
naming the variable, so a bad deployment fails its first invocation with a readable message
instead of half-working. Plain code on purpose: it keeps the cold start small.

=====================================  ===========================================================
variable                               meaning (default)
=====================================  ===========================================================
``ENFORCER_MODE``                      ``enforce`` or ``dryrun`` (``enforce``)
``ENFORCER_FAIL_POLICY``               ``closed`` or ``open`` for uncontrolled requests (``closed``)
``ENFORCER_ACTION``                    ``stop`` or ``terminate`` on a reactive deny (``stop``)
``ENFORCER_ENGINE``                    ``embedded``, ``wasm`` or ``opa`` (``embedded``)
``ENFORCER_POLICY_WASM``               the compiled policy (``make package``: ``policy-wasm/``) for ``wasm``
``ENFORCER_OPA_URL``                   OPA server URL for engine ``opa`` (``http://127.0.0.1:8181``)
``ENFORCER_OPA_TIMEOUT``               seconds (``0.25``)
``ENFORCER_POLICY``                    policy directory (``policies/`` beside the package)
``ENFORCER_ACCOUNTS_SOURCE``           ``dynamodb`` or ``organizations`` (account tags) (``dynamodb``)
``ENFORCER_ACCOUNTS_TABLE``            DynamoDB account directory table (required for ``dynamodb``)
``ENFORCER_REGISTRY_PREFIX``           prefix of the reseller/attestation registry tables
``ENFORCER_AUDIT_TABLE``               DynamoDB audit index table
``ENFORCER_AUDIT_BUCKET``              S3 Object Lock bucket holding the audit records
``ENFORCER_AUDIT_KEY_ID``              KMS key (ECC_NIST_P256, SIGN_VERIFY) signing checkpoints
``ENFORCER_AUDIT_SALT_SECRET``         Secrets Manager secret (ARN or name) holding the masking salt
``ENFORCER_ATTEST_AUDIENCE``           expected attestation ``aud`` (``gpu-launch-enforcer``)
``ENFORCER_ATTEST_MAX_VALIDITY_DAYS``  longest attestation validity accepted, 1..3650 (``90``)
``ENFORCER_TOPIC_ARN``                 SNS topic for deny notifications
``ENFORCER_COUNTER_TABLE``             DynamoDB table of the hourly blast-radius counter
``ENFORCER_MAX_ACTIONS_PER_INVOCATION`` instances acted on per invocation before alert-only (``10``)
``ENFORCER_MAX_ACTIONS_PER_HOUR``      instances acted on per hour, all invocations (``50``)
``ENFORCER_MEMBER_ROLE``               role the guard assumes in member accounts (``GpuEnforcerGuard``)
``ENFORCER_MEMBER_EXTERNAL_ID``        external id for that role (none)
``ENFORCER_BROKER_ROLE``               role the broker launches with (``GpuLaunchBroker``)
``ENFORCER_HOME_ACCOUNT``              the security account id (else taken from the invocation)
``ENFORCER_SWEEP_ACCOUNTS``            comma list of accounts the sweep covers (the home account)
``ENFORCER_SWEEP_REGIONS``             comma list of regions the sweep covers (the function's)
``ENFORCER_HOOK_PAYLOAD_HOSTS``        extra ``host[:port]`` for hook STACK/CHANGE_SET payloads
``AWS_REGION``                         region of the function (``us-east-1``)
=====================================  ===========================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from enforcer.ids import ACCOUNT_RE

T = TypeVar("T")

_TABLE_RE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]{0,200}")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_TOPIC_RE = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")
_KEY_RE = re.compile(
    r"(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+|alias/[A-Za-z0-9/_-]+|[0-9a-f-]{36})"
)
_SECRET_RE = re.compile(
    r"(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}"
)
_ROLE_RE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
_EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9+=,.@:/_-]{2,1224}")
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_URL_RE = re.compile(r"https?://[^\s]{1,2000}")
_HOST_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,252}(:\d{1,5})?")
MAX_CAP = 100_000


class ConfigError(ValueError):
    """One or more environment variables are missing or invalid; the message lists them all."""


@dataclass(frozen=True, slots=True)
class Config:
    """Validated handler configuration (see the module docstring for the variables)."""

    mode: str = "enforce"
    fail_policy: str = "closed"
    action: str = "stop"
    engine: str = "embedded"
    opa_url: str = "http://127.0.0.1:8181"
    opa_timeout: float = 0.25
    #: Seconds the guard caches an account's directory entry and licences (``enforcer.lookup_cache``).
    lookup_ttl: float = 30.0
    policy_dir: str | None = None
    accounts_source: str = "dynamodb"
    accounts_table: str | None = None
    registry_prefix: str | None = None
    audit_table: str | None = None
    audit_bucket: str | None = None
    audit_key_id: str | None = None
    audit_salt_secret: str | None = None
    attest_audience: str = "gpu-launch-enforcer"  # = attestation.constants.DEFAULT_AUDIENCE (kept light)
    attest_max_validity_days: int = 90
    topic_arn: str | None = None
    counter_table: str | None = None
    max_actions_per_invocation: int = 10
    max_actions_per_hour: int = 50
    member_role: str = "GpuEnforcerGuard"
    member_external_id: str | None = None
    broker_role: str = "GpuLaunchBroker"
    home_account: str | None = None
    sweep_accounts: tuple[str, ...] = ()
    sweep_regions: tuple[str, ...] = ()
    hook_payload_hosts: tuple[str, ...] = ()
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read and validate the configuration.

        Parameters
        ----------
        environ
            The environment (``os.environ`` when None).

        Raises
        ------
        ConfigError
            Naming every missing or invalid variable.
        """
        env = os.environ if environ is None else environ
        r = _Reader(env)
        cfg = cls(
            mode=r.choice("ENFORCER_MODE", ("enforce", "dryrun"), "enforce"),
            fail_policy=r.choice("ENFORCER_FAIL_POLICY", ("closed", "open"), "closed"),
            action=r.choice("ENFORCER_ACTION", ("stop", "terminate"), "stop"),
            engine=r.choice("ENFORCER_ENGINE", ("embedded", "wasm", "opa"), "embedded"),
            opa_url=r.match("ENFORCER_OPA_URL", _URL_RE, "an http(s) URL") or "http://127.0.0.1:8181",
            opa_timeout=r.number("ENFORCER_OPA_TIMEOUT", float, 0.25, 0.01, 30.0),
            lookup_ttl=r.number("ENFORCER_LOOKUP_TTL", float, 30.0, 0.0, 300.0),
            policy_dir=r.text("ENFORCER_POLICY"),
            accounts_source=r.choice("ENFORCER_ACCOUNTS_SOURCE", ("dynamodb", "organizations"), "dynamodb"),
            accounts_table=r.match("ENFORCER_ACCOUNTS_TABLE", _TABLE_RE, "a DynamoDB table name"),
            registry_prefix=r.match("ENFORCER_REGISTRY_PREFIX", _PREFIX_RE, "a table name prefix"),
            audit_table=r.match("ENFORCER_AUDIT_TABLE", _TABLE_RE, "a DynamoDB table name"),
            audit_bucket=r.match("ENFORCER_AUDIT_BUCKET", _BUCKET_RE, "an S3 bucket name"),
            audit_key_id=r.match("ENFORCER_AUDIT_KEY_ID", _KEY_RE, "a KMS key id, ARN or alias"),
            attest_audience=r.text("ENFORCER_ATTEST_AUDIENCE") or "gpu-launch-enforcer",
            attest_max_validity_days=r.number("ENFORCER_ATTEST_MAX_VALIDITY_DAYS", int, 90, 1, 3650),
            audit_salt_secret=r.match(
                "ENFORCER_AUDIT_SALT_SECRET", _SECRET_RE, "a Secrets Manager secret ARN or name"
            ),
            topic_arn=r.match("ENFORCER_TOPIC_ARN", _TOPIC_RE, "an SNS topic ARN"),
            counter_table=r.match("ENFORCER_COUNTER_TABLE", _TABLE_RE, "a DynamoDB table name"),
            max_actions_per_invocation=r.number("ENFORCER_MAX_ACTIONS_PER_INVOCATION", int, 10, 0, MAX_CAP),
            max_actions_per_hour=r.number("ENFORCER_MAX_ACTIONS_PER_HOUR", int, 50, 0, MAX_CAP),
            member_role=r.match("ENFORCER_MEMBER_ROLE", _ROLE_RE, "an IAM role name") or "GpuEnforcerGuard",
            member_external_id=r.match("ENFORCER_MEMBER_EXTERNAL_ID", _EXTERNAL_ID_RE, "an external id"),
            broker_role=r.match("ENFORCER_BROKER_ROLE", _ROLE_RE, "an IAM role name") or "GpuLaunchBroker",
            home_account=r.match("ENFORCER_HOME_ACCOUNT", ACCOUNT_RE, "a 12-digit account id"),
            sweep_accounts=r.items("ENFORCER_SWEEP_ACCOUNTS", ACCOUNT_RE, "12-digit account ids"),
            sweep_regions=r.items("ENFORCER_SWEEP_REGIONS", _REGION_RE, "region names"),
            hook_payload_hosts=r.items("ENFORCER_HOOK_PAYLOAD_HOSTS", _HOST_RE, "host[:port] names"),
            region=r.match("AWS_REGION", _REGION_RE, "a region name")
            or r.match("AWS_DEFAULT_REGION", _REGION_RE, "a region name")
            or "us-east-1",
        )
        audit = {
            "ENFORCER_AUDIT_TABLE": cfg.audit_table,
            "ENFORCER_AUDIT_BUCKET": cfg.audit_bucket,
            "ENFORCER_AUDIT_KEY_ID": cfg.audit_key_id,
            "ENFORCER_AUDIT_SALT_SECRET": cfg.audit_salt_secret,
        }
        if any(audit.values()) and not all(audit.values()):
            missing = ", ".join(k for k, v in audit.items() if not v)
            r.problems.append(f"the AWS audit store needs all four audit variables; missing {missing}")
        if cfg.engine == "opa" and not r.present("ENFORCER_OPA_URL"):
            r.problems.append("ENFORCER_OPA_URL is required when ENFORCER_ENGINE=opa")
        if r.problems:
            raise ConfigError("invalid configuration: " + "; ".join(r.problems))
        return cfg

    def require(self, *names: str) -> None:
        """Raise ConfigError when any of the named fields is unset (a handler's own needs).

        Parameters
        ----------
        *names
            Field names such as ``"accounts_table"``.
        """
        missing = [f"ENFORCER_{n.upper()}" for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError("missing configuration: " + ", ".join(missing))


class _Reader:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def present(self, name: str) -> bool:
        return bool(str(self.env.get(name, "")).strip())

    def text(self, name: str) -> str | None:
        value = str(self.env.get(name, "")).strip()
        return value or None

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)} (got {value[:40]!r})")
            return default
        return value

    def match(self, name: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.text(name)
        if value is not None and pattern.fullmatch(value) is None:
            self.problems.append(f"{name} must be {what} (got {value[:80]!r})")
            return None
        return value

    def items(self, name: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        value = self.text(name)
        if value is None:
            return ()
        parts = tuple(p.strip() for p in value.split(",") if p.strip())
        bad = [p for p in parts if pattern.fullmatch(p) is None]
        if bad or len(parts) > 1000:
            self.problems.append(f"{name} must be a comma list of {what} (bad: {', '.join(bad)[:80]})")
            return ()
        return parts

    def number(self, name: str, kind: Callable[[str], T], default: T, low: Any, high: Any) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            self.problems.append(f"{name} must be a number (got {raw[:40]!r})")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be between {low} and {high} (got {raw[:40]})")
            return default
        return value
