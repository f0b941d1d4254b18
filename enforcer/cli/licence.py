"""``enforcer licence add|list|revoke``: the licence register (see :mod:`enforcer.licences`).

Local by default (``STATE/registry/licences.json``); with ``--registry-prefix`` (env
``ENFORCER_REGISTRY_PREFIX``, the handlers' setting) the DynamoDB table ``<prefix>licences``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from enforcer.cli.common import (
    CliState,
    emit_records,
    fail,
    format_options,
    parse_now,
    plain_table,
    require_state,
)
from enforcer.licences import Licence, LicenceStore, LocalLicenceStore, parse_time
from enforcer.model import InputError

LICENCE_TABLE = plain_table(
    "Licences",
    ("licence_id", "account_id", "countries", "classes", "max_tpp", "valid_from", "expires", "status"),
)
StoreFactory = Callable[[CliState, str | None], LicenceStore]


def default_store(state: CliState, prefix: str | None) -> LicenceStore:
    """The local licence file, or the DynamoDB table when a registry prefix is given."""
    if prefix:
        import boto3

        from enforcer.licences import DynamoDBLicenceStore, licences_table

        return DynamoDBLicenceStore(boto3.client("dynamodb"), licences_table(prefix))
    return LocalLicenceStore(state.registry_dir / "licences.json")


def _split(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(p.strip().upper() if "." not in p else p.strip() for p in value.split(",") if p.strip())


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_licence_group(store_factory: StoreFactory = default_store) -> click.Group:
    """Build the ``licence`` group with the given store backend."""

    @click.group("licence")
    @click.option(
        "--registry-prefix",
        envvar="ENFORCER_REGISTRY_PREFIX",
        default=None,
        help="Use the DynamoDB table <prefix>licences instead of the local state.",
    )
    @click.pass_context
    def licence(ctx: click.Context, registry_prefix: str | None) -> None:
        """Export licences: scope (account, countries, classes, TPP) and validity, honoured by the policy."""
        state = ctx.obj if isinstance(ctx.obj, CliState) else CliState()
        ctx.obj = (state, registry_prefix)

    @licence.command("add")
    @click.argument("licence_id")
    @click.option("--account", required=True, help="12-digit AWS account the licence covers.")
    @click.option("--end-customer", "end_customer", default=None, help="Licensed end user (for the record).")
    @click.option("--countries", required=True, help="Countries, ISO 3166-1 alpha-2, comma-separated.")
    @click.option("--classes", default=None, help="Chip classes covered (3A090.a,3A090.b; default both).")
    @click.option("--max-tpp", "max_tpp", type=float, default=None, help="Largest total TPP of one request.")
    @click.option("--valid-from", "valid_from", default=None, help="DATE or RFC 3339 (default: now).")
    @click.option("--expires", required=True, help="DATE (midnight UTC) or RFC 3339; not covered from then.")
    @click.option("--evidence", default=None, help="Where the licence document is (URL or reference).")
    @click.pass_obj
    def add(
        obj: tuple[CliState, str | None],
        licence_id: str,
        account: str,
        end_customer: str | None,
        countries: str,
        classes: str | None,
        max_tpp: float | None,
        valid_from: str | None,
        expires: str,
        evidence: str | None,
    ) -> None:
        """Record licence LICENCE_ID."""
        try:
            item = Licence(
                licence_id=licence_id,
                account_id=account,
                countries=_split(countries),
                classes=tuple(c.strip() for c in (classes or "").split(",") if c.strip()),
                max_tpp=max_tpp,
                valid_from=parse_time(valid_from, "--valid-from") if valid_from else _iso(parse_now(None)),
                expires=parse_time(expires, "--expires"),
                end_customer=end_customer,
                evidence=evidence,
            )
            store_factory(*obj).add(item)
        except InputError as exc:
            fail(str(exc))
        click.echo(json.dumps(item.to_dict(), indent=2))

    @licence.command("list")
    @format_options(default="jsonl")
    @click.option("--account", default=None)
    @click.pass_obj
    def list_(obj: tuple[CliState, str | None], account: str | None, fmt: str) -> None:
        """List licences (default JSON lines), revoked ones included."""
        if not obj[1]:
            require_state(obj[0])
        try:
            items: list[Any] = store_factory(*obj).entries(account)
        except InputError as exc:
            fail(str(exc))
        emit_records([x.to_dict() for x in items], fmt, LICENCE_TABLE)

    @licence.command("revoke")
    @click.argument("licence_id")
    @click.option("--now", default=None, help="RFC 3339 revocation time (default: now).")
    @click.pass_obj
    def revoke(obj: tuple[CliState, str | None], licence_id: str, now: str | None) -> None:
        """Revoke LICENCE_ID: from now on it covers nothing (the record is kept)."""
        try:
            item = store_factory(*obj).revoke(licence_id, _iso(parse_now(now)))
        except InputError as exc:
            fail(str(exc))
        click.echo(json.dumps(item.to_dict(), indent=2))

    return licence


licence_group = build_licence_group()
