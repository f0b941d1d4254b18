"""Assemble the pipeline for the Lambda handlers from :class:`enforcer.config.Config`.

- :class:`ClientFactory`: boto3 clients per (account, region), created on first use and cached per
  container; for an account other than the security (home) account it assumes the member role
  through STS and refreshes the credentials before they expire.
- :func:`build_enforcer`: DynamoDB (or Organizations) account directory, attestation registry on
  DynamoDB, AWS audit store, policy engine, and a resolver that looks references up in the account
  the launch happened in.
- :class:`Runtime` and :func:`runtime`: everything a handler needs, built once per cold start from
  the environment, replaceable by tests through :func:`set_runtime`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from enforcer.act_state import AccountCaps, ActLedger, DynamoLedger, MemoryLedger, legal_codes
from enforcer.actions import Budget, Remediator
from enforcer.aws_lazy import LazyAttestations, LazyClient, LazySigner
from enforcer.aws_models import trimmed_endpoints
from enforcer.chips import ChipCatalog, emf_unknown_accelerator
from enforcer.config import Config
from enforcer.guard import Guard
from enforcer.managed.guard import ManagedGuard
from enforcer.pipeline import Enforcer, FailPolicy, LicenceSource, NoAttestations
from enforcer.policy.factory import default_policy_dir
from enforcer.ports import AccountDirectory, AttestationProvider, AuditSink, PolicyEngine
from enforcer.resolve import AwsResolver, RoutedResolver

#: Refresh assumed-role credentials this many seconds before they expire.
CREDENTIAL_MARGIN = 300
ROLE_SESSION_NAME = "gpu-launch-enforcer"


def botocore_config() -> Any:
    """Short timeouts and bounded standard retries: a handler must answer well within its timeout."""
    from botocore.config import Config as BotoConfig

    return BotoConfig(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})


class ClientFactory:
    """boto3 clients per service, account and region, assuming a role in accounts other than home.

    Parameters
    ----------
    region
        Default region (the function's).
    home_account
        The security account; None asks STS ``GetCallerIdentity`` on first need.
    member_role
        Role name assumed in other accounts by default (``GpuEnforcerGuard``).
    external_id
        External id passed to ``AssumeRole``, when the member role requires one.
    session
        A ``boto3.session.Session`` (default: a new one, created lazily).
    endpoint_url
        Endpoint override for every client (tests against a moto server).
    clock
        Epoch-seconds clock for credential expiry.
    """

    def __init__(
        self,
        region: str,
        *,
        home_account: str | None = None,
        member_role: str = "GpuEnforcerGuard",
        external_id: str | None = None,
        session: Any = None,
        endpoint_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.region = region
        self._home = home_account
        self.member_role = member_role
        self.external_id = external_id
        self._session = session
        self.endpoint_url = endpoint_url
        self.clock = clock
        self._clients: dict[tuple[str, str, str, str], tuple[float, Any]] = {}
        self._creds: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.RLock()
        self._config: Any = None
        self._trimmed = False
        self._full_session: Any = None

    @property
    def session(self) -> Any:
        """The base boto3 session (the function's own credentials), on trimmed models where they exist."""
        if self._session is None:
            import boto3

            from enforcer.aws_models import use_trimmed_models

            session = boto3.session.Session(region_name=self.region)
            self._trimmed = use_trimmed_models(session)
            self._session = session
        return self._session

    @property
    def full_session(self) -> Any:
        """A session on botocore's full models, for operations outside a trimmed model (built when needed)."""
        session = self.session  # built first: only then is it known whether trimmed models are in use
        if not self._trimmed:
            return session
        if self._full_session is None:
            import boto3
            import botocore.session

            base = self.session._session
            core = botocore.session.Session(profile=base.profile)
            # the same credentials as the base session: its chain, and the very credentials object it
            # resolved (explicit keys given to it, or refreshable ones, which then refresh for both)
            core.register_component("credential_provider", base.get_component("credential_provider"))
            creds = base.get_credentials()
            if creds is not None:
                setattr(core, "_credentials", creds)  # noqa: B010 - botocore keeps them there, no setter
            self._full_session = boto3.session.Session(botocore_session=core, region_name=self.region)
        return self._full_session

    def _new_client(
        self, service: str, region: str, creds: Mapping[str, Any] | None = None, *, full: bool = False
    ) -> Any:
        # One session for every account and region: its loader caches each service model once, and an
        # assumed role's credentials go to the client, not to a new session (which would load it again).
        if self._config is None:
            self._config = botocore_config()
        keys: dict[str, Any] = {}
        if creds is not None:
            keys = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        session = self.session
        if full or (self._trimmed and not trimmed_endpoints(service)):  # outside the trimmed endpoint data
            session = self.full_session
        return session.client(
            service, region_name=region, endpoint_url=self.endpoint_url, config=self._config, **keys
        )

    @property
    def home_account(self) -> str:
        """The account the function runs in."""
        if self._home is None:
            ident = self.real_client("sts").get_caller_identity()
            self._home = str(ident["Account"])
        return self._home

    def client(
        self, service: str, account_id: str | None = None, region: str | None = None, role: str | None = None
    ) -> Any:
        """A client of ``service`` acting in ``account_id`` (home when None) and ``region``.

        The client is a :class:`~enforcer.aws_lazy.LazyClient`: nothing is loaded, assumed or built
        until an operation is called on it (a cold start builds only the clients its event uses).

        Parameters
        ----------
        service
            boto3 service name (``ec2``, ``autoscaling``, ``dynamodb`` ...).
        account_id
            Target account; a role is assumed when it differs from the home account.
        region
            Target region (the default region when None or ``unknown``).
        role
            Role name to assume there (default ``member_role``); with an explicit role it is
            assumed even in the home account (the broker launches as ``GpuLaunchBroker``).
        """
        region = region if region and region != "unknown" else self.region
        home = role is None and (account_id is None or (self._home is not None and account_id == self._home))
        from enforcer.aws_models import trimmed_operations

        return LazyClient(
            lambda: self.real_client(service, account_id, region, role),
            service,
            pin=home,
            full=lambda: self.real_client(service, account_id, region, role, full=True),
            operations=trimmed_operations(service),
        )

    def real_client(
        self,
        service: str,
        account_id: str | None = None,
        region: str | None = None,
        role: str | None = None,
        *,
        full: bool = False,
    ) -> Any:
        """The boto3 client behind :meth:`client`, built (and a role assumed) now; cached per container.

        With ``full`` the client is built on botocore's full model even where a trimmed one exists.
        """
        region = region if region and region != "unknown" else self.region
        with self._lock:
            creds: Mapping[str, Any] | None
            if role is None and (account_id is None or account_id == self.home_account):
                key = (service, "home", region, "full" if full else "")
                expires, creds = float("inf"), None
            else:
                target = account_id or self.home_account
                role_name = role or self.member_role
                key = (service, target, region, role_name + ("/full" if full else ""))
                expires, creds = self._assumed(target, role_name)
            hit = self._clients.get(key)
            if hit is None or hit[0] != expires:
                hit = self._clients[key] = (expires, self._new_client(service, region, creds, full=full))
            return hit[1]

    def role_arn(self, account_id: str, role: str) -> str:
        """ARN of ``role`` in ``account_id`` (in the partition of the default region)."""
        partition = (
            "aws-cn" if self.region.startswith("cn-") else "aws-us-gov" if "gov" in self.region else "aws"
        )
        return f"arn:{partition}:iam::{account_id}:role/{role}"

    def _assumed(self, account_id: str, role: str) -> tuple[float, Any]:
        cached = self._creds.get((account_id, role))
        if cached is not None and cached[0] - CREDENTIAL_MARGIN > self.clock():
            return cached
        kwargs: dict[str, Any] = {
            "RoleArn": self.role_arn(account_id, role),
            "RoleSessionName": ROLE_SESSION_NAME,
            "DurationSeconds": 3600,
        }
        if self.external_id:
            kwargs["ExternalId"] = self.external_id
        creds = self.real_client("sts").assume_role(**kwargs)["Credentials"]
        exp = creds["Expiration"]
        expires = exp.timestamp() if hasattr(exp, "timestamp") else self.clock() + 3600
        self._creds[(account_id, role)] = (expires, creds)
        return expires, creds


def account_directory(cfg: Config, clients: ClientFactory) -> AccountDirectory:
    """The account directory named by the configuration (DynamoDB table or Organizations tags)."""
    from enforcer.accounts_aws import DynamoDBAccountDirectory, OrganizationsAccountDirectory

    if cfg.accounts_source == "organizations":
        return OrganizationsAccountDirectory(clients.client("organizations"))
    cfg.require("accounts_table")
    assert cfg.accounts_table is not None
    return DynamoDBAccountDirectory(clients.client("dynamodb"), cfg.accounts_table)


def attestation_provider(cfg: Config, clients: ClientFactory) -> AttestationProvider:
    """The attestation provider over the DynamoDB registry; without one, reseller accounts are ``missing``."""
    if cfg.registry_prefix is None:
        return NoAttestations()
    prefix = cfg.registry_prefix

    def make() -> AttestationProvider:
        from enforcer.attestation import DynamoDBRegistry, RegistryAttestationProvider

        return RegistryAttestationProvider(
            DynamoDBRegistry(clients.client("dynamodb"), prefix),
            audience=cfg.attest_audience,
            max_validity_days=cfg.attest_max_validity_days,
        )

    # the JWS/x509 stack is imported for the first reseller account, not at cold start
    return LazyAttestations(make)


def licence_source(cfg: Config, clients: ClientFactory) -> LicenceSource | None:
    """The licence register in DynamoDB (``<registry prefix>licences``); none without a registry."""
    if cfg.registry_prefix is None:
        return None
    from enforcer.licences import DynamoDBLicenceStore, licences_table

    return DynamoDBLicenceStore(clients.client("dynamodb"), licences_table(cfg.registry_prefix))


def audit_sink(cfg: Config, clients: ClientFactory) -> AuditSink | None:
    """The AWS audit store (DynamoDB chain, S3 Object Lock copies, KMS-signed checkpoints) if configured."""
    if cfg.audit_table is None:
        return None
    cfg.require("audit_bucket", "audit_key_id", "audit_salt_secret")
    assert cfg.audit_bucket is not None and cfg.audit_key_id is not None and cfg.audit_salt_secret is not None
    key_id = cfg.audit_key_id
    from enforcer.audit.aws import AwsAuditStore
    from enforcer.audit.signing import KmsSigner

    return AwsAuditStore(
        clients.client("dynamodb"),
        cfg.audit_table,
        clients.client("s3"),
        cfg.audit_bucket,
        LazySigner(lambda: KmsSigner(clients.client("kms"), key_id), KmsSigner.alg),
        salt=masking_salt(clients.client("secretsmanager"), cfg.audit_salt_secret),
    )


def masking_salt(secrets: Any, secret_id: str) -> bytes:
    """The audit masking salt, shared by every container so masked values stay comparable.

    Raises
    ------
    enforcer.config.ConfigError
        When the secret is unreadable or shorter than 16 bytes.
    """
    from enforcer.config import ConfigError

    try:
        value = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    except Exception as exc:
        raise ConfigError(
            f"ENFORCER_AUDIT_SALT_SECRET: cannot read {secret_id}: {type(exc).__name__}"
        ) from exc
    salt = str(value).encode("utf-8")
    if len(salt) < 16:
        raise ConfigError("ENFORCER_AUDIT_SALT_SECRET: the salt must be at least 16 bytes")
    return salt


def make_resolver(clients: ClientFactory, catalog: ChipCatalog) -> RoutedResolver:
    """A resolver that looks references up in the launch's own account and region."""
    known = tuple(catalog.known_types())  # built once; each per-request resolver shares it

    def factory(account_id: str, region: str) -> AwsResolver:
        return AwsResolver(
            clients.client("ec2", account_id, region),
            clients.client("autoscaling", account_id, region),
            known_types=known,
            sagemaker=clients.client("sagemaker", account_id, region),
            deadline=clients.client("deadline", account_id, region),
            appstream=clients.client("appstream", account_id, region),
            codebuild=clients.client("codebuild", account_id, region),
        )

    return RoutedResolver(factory)


def build_enforcer(cfg: Config, clients: ClientFactory, *, engine: PolicyEngine | None = None) -> Enforcer:
    """Build the pipeline with its AWS backends.

    Parameters
    ----------
    cfg
        Validated configuration.
    clients
        Client factory (home account credentials, member-account roles).
    engine
        A ready engine (tests, benchmarks); by default made from ``cfg.engine`` and ``cfg.policy_dir``.
    """
    if engine is None:
        from enforcer.policy.factory import make_engine

        engine = make_engine(cfg.engine, cfg.policy_dir, cfg.opa_url, cfg.opa_timeout)
    catalog = ChipCatalog(clients.client("ec2"), alert=emf_unknown_accelerator())
    fail_policy: FailPolicy = "open" if cfg.fail_policy == "open" else "closed"
    return Enforcer(
        catalog=catalog,
        accounts=account_directory(cfg, clients),
        engine=engine,
        attestations=attestation_provider(cfg, clients),
        licences=licence_source(cfg, clients),
        audit=audit_sink(cfg, clients),
        resolver=make_resolver(clients, catalog),
        mode="dryrun" if cfg.mode == "dryrun" else "enforce",
        fail_policy=fail_policy,
    )


@dataclass
class Runtime:
    """Everything a handler needs, built once per container."""

    config: Config
    clients: ClientFactory
    enforcer: Enforcer
    remediator: Remediator
    guard: Guard

    def budget(self) -> Budget:
        """A fresh blast-radius budget for one invocation: per-invocation cap, per-account hourly caps."""
        caps = None
        if self.config.counter_table:
            caps = AccountCaps(
                self.clients.client("dynamodb"), self.config.counter_table, self.config.max_actions_per_hour
            )
        return Budget(self.config.max_actions_per_invocation, caps=caps)


def build_runtime(
    cfg: Config | None = None,
    *,
    clients: ClientFactory | None = None,
    engine: PolicyEngine | None = None,
    logger: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Runtime:
    """Build a :class:`Runtime` (from the environment unless ``cfg`` is given).

    Raises
    ------
    enforcer.config.ConfigError
        When the configuration is invalid or incomplete.
    """
    cfg = cfg or Config.from_env(environ)
    clients = clients or ClientFactory(
        cfg.region,
        home_account=cfg.home_account,
        member_role=cfg.member_role,
        external_id=cfg.member_external_id,
    )
    enforcer = build_enforcer(cfg, clients, engine=engine)
    from enforcer.evidence.aws import attach_evidence  # issue 14: evidence, screening, ledger (env)

    attach_evidence(enforcer, clients, environ)
    from enforcer.lookup_cache import cached_view  # the guard's directory + licences: TTL

    guard_view = cached_view(enforcer, cfg.lookup_ttl)
    sns = clients.client("sns") if cfg.topic_arn else None
    remediator = Remediator(cfg.action, sns=sns, topic_arn=cfg.topic_arn, logger=logger)
    ledger: ActLedger = (
        DynamoLedger(clients.client("dynamodb"), cfg.counter_table) if cfg.counter_table else MemoryLedger()
    )
    guard = ManagedGuard(  # the guard plus managed compute (SageMaker, GPU fleets)
        guard_view,
        remediator,
        clients,
        sweep_accounts=cfg.sweep_accounts,
        sweep_regions=cfg.sweep_regions,
        ledger=ledger,
        legal=legal_codes(cfg.policy_dir or default_policy_dir()),
    )
    return Runtime(cfg, clients, enforcer, remediator, guard)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The container's runtime, built on first use (not at import: no client exists before a call)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime()
        return _runtime


def set_runtime(rt: Runtime | None) -> None:
    """Install ``rt`` as the container's runtime (tests), or drop it with None."""
    global _runtime
    with _runtime_lock:
        _runtime = rt
