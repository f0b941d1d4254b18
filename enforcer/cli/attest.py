"""``enforcer attest keygen|sign|inspect|submit|list``: reseller attestations on the command line.

``attest_group`` is attached to the root group (``reseller_group`` is in :mod:`enforcer.cli.reseller`);
both take :class:`enforcer.state.CliState` as ``obj``. ``build_attest_group`` and ``build_reseller_group``
let callers (and tests) inject the account directory and registry backends.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from enforcer.attestation import config
from enforcer.attestation.claims import EndCustomer, build_claims
from enforcer.attestation.constants import (
    ACCOUNT_RE,
    ALGORITHMS,
    DEFAULT_AUDIENCE,
    MAX_TOKEN_BYTES,
)
from enforcer.attestation.keys import generate_private_key_pem, load_signing_key
from enforcer.attestation.local_registry import LocalRegistry
from enforcer.attestation.registry import AttestationRegistry
from enforcer.attestation.submit import submit_token
from enforcer.attestation.token import TokenFormatError, parse_unverified, sign_token
from enforcer.cli.common import (
    CliState,
    emit_records,
    fail,
    format_options,
    parse_now,
    plain_table,
    reads_state,
)
from enforcer.model import InputError
from enforcer.policy.datafiles import is_iso_country
from enforcer.ports import AccountDirectory

RegistryFactory = Callable[[CliState], AttestationRegistry]
DirectoryFactory = Callable[[CliState], AccountDirectory]

MAX_INPUT_FILE = 64 * 1024
ATTESTATION_TABLE = plain_table(
    "Stored attestations", ("account_id", "issuer", "kid", "jti", "exp_iso", "submitted_at")
)


def audience_from_env() -> str:
    """The configured audience (env ``ENFORCER_ATTEST_AUDIENCE``, default ``gpu-launch-enforcer``)."""
    return config.audience()


def max_validity_from_env() -> int:
    """The configured validity cap in days (env ``ENFORCER_ATTEST_MAX_VALIDITY_DAYS``, default 90)."""
    try:
        return config.max_validity_days()
    except InputError as exc:
        fail(str(exc))


def default_registry(state: CliState) -> AttestationRegistry:
    """The local file registry under ``STATE/registry``, or the stack's DynamoDB one (--backend aws)."""
    if state.is_aws:
        registry: AttestationRegistry = state.aws().registry()
        return registry
    return LocalRegistry(state.registry_dir)


def default_directory(state: CliState) -> AccountDirectory:
    """The local account directory ``STATE/accounts.json``, or the stack's table (--backend aws)."""
    from enforcer.account_import import directory_for

    directory: AccountDirectory = directory_for(state)
    return directory


def iso_time(ts: float | None) -> str | None:
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def read_small(path: str, limit: int, too_big: str | None = None) -> bytes:
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    if len(data) > limit:
        fail(too_big or f"{path} is larger than {limit} bytes")
    return data


def _read_token(path: str) -> str:
    too_big = f"ATTESTATION_INVALID: token larger than {MAX_TOKEN_BYTES} bytes"
    data = read_small(path, MAX_TOKEN_BYTES + 1024, too_big).strip()  # slack for surrounding whitespace
    if len(data) > MAX_TOKEN_BYTES:
        fail(too_big)
    return data.decode("ascii", "replace")


def country_code(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    cc = value.strip().upper()
    if not is_iso_country(cc):
        fail(f"{option} must be an ISO 3166-1 alpha-2 country code, got {value[:16]!r}")
    return cc


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _x5c_from_pem(path: str) -> list[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        certs = x509.load_pem_x509_certificates(read_small(path, MAX_INPUT_FILE))
    except ValueError as exc:
        fail(f"{path} is not a PEM certificate chain: {exc}")
    return [base64.b64encode(c.public_bytes(Encoding.DER)).decode("ascii") for c in certs]


def build_attest_group(
    directory_factory: DirectoryFactory = default_directory,
    registry_factory: RegistryFactory = default_registry,
) -> click.Group:
    """Build the ``attest`` group with the given account-directory and registry backends."""

    @click.group("attest")
    def attest() -> None:
        """Reseller attestations: keys, signing, inspection, submission."""

    @attest.command("keygen")
    @click.option(
        "--out", "out", required=True, type=click.Path(dir_okay=False), help="Private key file to write."
    )
    @click.option("--alg", "alg", type=click.Choice(ALGORITHMS), default="ES256", show_default=True)
    def keygen(out: str, alg: str) -> None:
        """Write a new private key (mode 0600) to OUT and print its public key PEM."""
        pem = generate_private_key_pem(alg)
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fail(f"{out} already exists; refusing to overwrite a key")
        except OSError as exc:
            fail(f"cannot create {out}: {exc.strerror or exc}")
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        click.echo(load_signing_key(pem).public_pem, nl=False)

    @attest.command("sign")
    @click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True))
    @click.option("--kid", required=True, help="Key id registered for the reseller.")
    @click.option("--issuer", required=True, help="Reseller id (iss).")
    @click.option("--account", required=True, help="12-digit AWS account id covered (sub).")
    @click.option("--end-customer-country", "cc", required=True)
    @click.option("--end-customer-hq-country", "hq", default=None)
    @click.option("--end-customer-parent-hq-country", "parent_hq", default=None)
    @click.option("--end-customer-kyc-level", "kyc", default=None)
    @click.option("--end-use", default=None, help="Intended end use (no personal data).")
    @click.option("--supersedes", default=None, help="jti of an older attestation this one replaces.")
    @click.option("--valid-days", type=int, default=30, show_default=True)
    @click.option("--now", default=None, help="RFC 3339 signing time (default: now).")
    @click.option(
        "--audience", default=None, help=f"aud claim (default: ${config.ENV_AUDIENCE} or {DEFAULT_AUDIENCE})."
    )
    @click.option("--cert-chain", default=None, type=click.Path(dir_okay=False, exists=True),
                  help="PEM chain (leaf first) of a CA-certified key, sent as x5c.")  # fmt: skip
    def sign(
        key_path: str,
        kid: str,
        issuer: str,
        account: str,
        cc: str,
        hq: str | None,
        parent_hq: str | None,
        kyc: str | None,
        end_use: str | None,
        supersedes: str | None,
        valid_days: int,
        now: str | None,
        audience: str | None,
        cert_chain: str | None,
    ) -> None:
        """Sign an attestation and print the token (alg from the key type)."""
        if not ACCOUNT_RE.match(account):
            fail(f"--account must be a 12-digit AWS account id, got {account[:32]!r}")
        cap = max_validity_from_env()
        if not 1 <= valid_days <= cap:
            fail(f"--valid-days must be between 1 and {cap} (the configured maximum)")
        try:
            key = load_signing_key(read_small(key_path, MAX_INPUT_FILE))
            end_customer = EndCustomer(
                country=country_code(cc, "--end-customer-country") or "",
                hq_country=country_code(hq, "--end-customer-hq-country"),
                parent_hq_country=country_code(parent_hq, "--end-customer-parent-hq-country"),
                kyc_level=kyc,
            )
            claims = build_claims(
                issuer=issuer,
                account=account,
                end_customer=end_customer,
                now=parse_now(now),
                valid_days=valid_days,
                max_valid_days=cap,
                audience=audience or audience_from_env(),
                end_use=end_use,
                supersedes=supersedes,
            )
            token = sign_token(key, kid, claims, _x5c_from_pem(cert_chain) if cert_chain else None)
        except InputError as exc:
            fail(str(exc))
        click.echo(token)

    @attest.command("inspect")
    @click.argument("file")
    def inspect(file: str) -> None:
        """Print header and claims of a token WITHOUT verifying anything (labelled UNVERIFIED)."""
        token = _read_token(file)
        problems: list[str] = []
        try:
            parsed = parse_unverified(token)
            header: Any = parsed.header
            claims: Any = parsed.payload
        except TokenFormatError as exc:
            problems.append(str(exc))
            header, claims = _lenient_decode(token)
            if header is None and claims is None:
                fail(f"ATTESTATION_INVALID: {exc}")
        click.echo("UNVERIFIED: signature, issuer, revocation and expiry are NOT checked", err=True)
        out: dict[str, Any] = {"UNVERIFIED": True, "header": header, "claims": claims, "problems": problems}
        if isinstance(claims, dict):
            out["times"] = {
                k: iso_time(claims[k])
                for k in ("iat", "nbf", "exp")
                if isinstance(claims.get(k), int | float)
            }
        emit_json(out)

    @attest.command("submit")
    @click.argument("file")
    @click.option("--now", default=None, help="RFC 3339 verification time (default: now).")
    @click.option("--account", default=None, help="Account the token is presented for (default: its sub).")
    @click.pass_obj
    def submit(state: CliState, file: str, now: str | None, account: str | None) -> None:
        """Verify an attestation and store it (exit 2 with the reason code when invalid)."""
        when = parse_now(now)
        token = _read_token(file)
        try:
            att, stored = submit_token(
                token,
                directory_factory(state),
                registry_factory(state),
                when,
                account=account,
                audience=audience_from_env(),
                max_validity_days=max_validity_from_env(),
            )
        except InputError as exc:
            fail(f"{exc.code}: {exc}" if exc.code.startswith(("ATTESTATION_", "ACCOUNT_")) else str(exc))
        if not stored:
            click.echo(f"already stored: {att.jti}", err=True)
        click.echo(att.jti)

    @attest.command("list")
    @format_options(default="json")
    @reads_state
    @click.option("--account", default=None)
    @click.pass_obj
    def list_(state: CliState, account: str | None, fmt: str) -> None:
        """List stored attestations (without tokens)."""
        if account is not None and not ACCOUNT_RE.match(account):
            fail(f"--account must be a 12-digit AWS account id, got {account[:32]!r}")
        try:
            items = registry_factory(state).list_attestations(account)
        except InputError as exc:
            fail(str(exc))
        rows = []
        for a in items:
            d = a.to_dict(include_token=False)
            d["exp_iso"] = iso_time(a.exp)
            rows.append(d)
        emit_records(rows, fmt, ATTESTATION_TABLE)

    return attest


def _lenient_decode(token: str) -> tuple[Any, Any]:
    """Best-effort decode for ``inspect`` of a malformed token (never raises)."""
    parts = token.split(".")
    out: list[Any] = []
    for seg in parts[:2]:
        try:
            out.append(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))
        except (ValueError, TypeError):
            out.append(None)
    while len(out) < 2:
        out.append(None)
    return out[0], out[1]


attest_group = build_attest_group()

__all__ = [
    "attest_group",
    "audience_from_env",
    "build_attest_group",
    "default_directory",
    "default_registry",
    "max_validity_from_env",
]
