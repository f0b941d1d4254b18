"""``enforcer reseller add|list|revoke-key|trust-ca|revoke-cert|add-crl``: resellers and their keys."""

from __future__ import annotations

import click

from enforcer.attestation.keys import load_public_key_pem
from enforcer.attestation.registry import ResellerKey
from enforcer.cli.attest import (
    MAX_INPUT_FILE,
    RegistryFactory,
    country_code,
    default_registry,
    read_small,
)
from enforcer.cli.common import (
    CliState,
    Rows,
    emit_records,
    fail,
    format_options,
    parse_now,
    plain_table,
    reads_state,
)
from enforcer.model import InputError


def build_reseller_group(registry_factory: RegistryFactory = default_registry) -> click.Group:
    """Build the ``reseller`` group with the given registry backend."""

    @click.group("reseller")
    def reseller() -> None:
        """Resellers and their attestation keys."""

    @reseller.command("add")
    @click.argument("reseller_id")
    @click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False, exists=True))
    @click.option("--kid", required=True)
    @click.option("--name", default=None)
    @click.option("--country", default=None, help="Where the reseller is registered (ISO 3166-1 alpha-2).")
    @click.option("--hq-country", "hq_country", default=None, help="The reseller's HQ country.")
    @click.option("--parent-hq-country", "parent_hq", default=None, help="Its ultimate parent's HQ country.")
    @click.option("--status", type=click.Choice(["active", "suspended"]), default=None)
    @click.option("--not-after", "not_after", default=None, help="RFC 3339 time after which the key is void.")
    @click.pass_obj
    def add(
        state: CliState,
        reseller_id: str,
        public_key: str,
        kid: str,
        name: str | None,
        country: str | None,
        hq_country: str | None,
        parent_hq: str | None,
        status: str | None,
        not_after: str | None,
    ) -> None:
        """Register a reseller (or update it) and add a verification key."""
        try:
            alg, pem = load_public_key_pem(read_small(public_key, MAX_INPUT_FILE))
            limit = parse_now(not_after) if not_after is not None else None
            key = ResellerKey(kid, alg, pem, not_after=limit, created_at=parse_now(None))
            registry = registry_factory(state)
            registry.put_reseller(
                reseller_id,
                name,
                country_code(country, "--country"),
                hq_country=country_code(hq_country, "--hq-country"),
                parent_hq_country=country_code(parent_hq, "--parent-hq-country"),
                status=status,
            )
            registry.add_key(reseller_id, key)
        except InputError as exc:
            fail(str(exc))
        click.echo(f"reseller {reseller_id}: key {kid} ({alg}) added")

    @reseller.command("list")
    @format_options(default="json")
    @reads_state
    @click.pass_obj
    def list_(state: CliState, fmt: str) -> None:
        """List resellers and their keys (without key material)."""
        try:
            items = registry_factory(state).list_resellers()
        except InputError as exc:
            fail(str(exc))
        emit_records([r.to_dict(include_pem=False) for r in items], fmt, _reseller_table)

    @reseller.command("revoke-key")
    @click.argument("reseller_id")
    @click.argument("kid")
    @click.option("--now", default=None, help="RFC 3339 revocation time (default: now).")
    @click.pass_obj
    def revoke_key(state: CliState, reseller_id: str, kid: str, now: str | None) -> None:
        """Revoke a reseller key: every attestation it signed stops counting at the next decision."""
        try:
            registry_factory(state).revoke_key(reseller_id, kid, parse_now(now))
        except InputError as exc:
            fail(str(exc))
        click.echo(f"reseller {reseller_id}: key {kid} revoked")

    @reseller.command("trust-ca")
    @click.option("--cert", "cert", required=True, type=click.Path(dir_okay=False, exists=True))
    @click.pass_obj
    def trust_ca(state: CliState, cert: str) -> None:
        """Trust an operator CA certificate for x5c-certified reseller keys."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        data = read_small(cert, MAX_INPUT_FILE)
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            fail(f"{cert} is not a PEM certificate: {exc}")
        registry = registry_factory(state)
        for c in certs:
            registry.add_trust_anchor(c.public_bytes(Encoding.PEM).decode("ascii"))
        click.echo(f"trusted {len(certs)} CA certificate(s)")

    @reseller.command("revoke-cert")
    @click.argument("serial")
    @click.option("--issuer", default=None, help="Issuer DN (RFC 4514) of the certificate; recommended.")
    @click.pass_obj
    def revoke_cert(state: CliState, serial: str, issuer: str | None) -> None:
        """Revoke a certificate by issuer and serial number (decimal, or hex with 0x).

        Without --issuer the serial is revoked for every issuer (over-broad, never too narrow).
        """
        try:
            value = int(serial, 16) if serial.lower().startswith("0x") else int(serial)
        except ValueError:
            fail(f"serial must be an integer (decimal or 0x-hex), got {serial[:40]!r}")
        if value < 0:
            fail("serial must not be negative")
        if issuer is None:
            registry_factory(state).revoke_serial(value)
            click.echo(f"certificate serial {value:#x} revoked (any issuer)")
            return
        from cryptography import x509

        try:
            dn = x509.Name.from_rfc4514_string(issuer).rfc4514_string()
        except ValueError as exc:
            fail(f"--issuer is not an RFC 4514 distinguished name: {exc}")
        registry_factory(state).revoke_certificate(dn, value)
        click.echo(f"certificate {value:#x} of {dn} revoked")

    @reseller.command("add-crl")
    @click.option("--crl", "crl", required=True, type=click.Path(dir_okay=False, exists=True))
    @click.pass_obj
    def add_crl(state: CliState, crl: str) -> None:
        """Load a CRL (PEM or DER) published by the operator CA or an intermediate."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        data = read_small(crl, MAX_INPUT_FILE)
        try:
            parsed = (
                x509.load_pem_x509_crl(data)
                if data.lstrip().startswith(b"-----")
                else x509.load_der_x509_crl(data)
            )
            registry_factory(state).add_crl(parsed.public_bytes(Encoding.PEM).decode("ascii"))
        except (ValueError, InputError) as exc:
            fail(f"{crl} is not a certificate revocation list: {exc}")
        click.echo(f"CRL of {parsed.issuer.rfc4514_string()} stored ({len(list(parsed))} revoked)")

    return reseller


def _reseller_table(rows: Rows) -> None:
    keys = [
        {**r, "keys": [f"{k.get('kid')} {k.get('algorithm')} {k.get('status')}" for k in r.get("keys") or []]}
        for r in rows
    ]
    cols = ("reseller_id", "name", "country", "hq_country", "parent_hq_country", "status", "keys")
    plain_table("Resellers", cols)(keys)


reseller_group = build_reseller_group()
