"""Fill the account directory in bulk: from AWS Organizations (ids, names, tags) or from a CSV file.

Day one, the directory the functions read is empty and every controlled launch is ``ACCOUNT_UNKNOWN``.
``enforcer [--backend aws] account import --from-organizations`` reads every account of the
organisation with its name and origin tags (``origin:country``, ``origin:hq-country``,
``origin:parent-hq-country``, ``kyc:status``, ``reseller:id``); ``--csv FILE`` reads rows with the
columns ``account_id,country,hq_country,parent_hq_country,kyc,reseller,name,parent``.

An account with no valid origin country is NOT imported (it stays ``ACCOUNT_UNKNOWN``, fail closed)
and is reported as skipped; every row is validated as ``account add`` validates it, and
every country must be an assigned ISO 3166-1 alpha-2 code.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from enforcer.accounts import origin_from_dict
from enforcer.accounts_aws import (
    TAG_COUNTRY,
    TAG_HQ,
    TAG_KYC,
    TAG_PARENT_HQ,
    TAG_RESELLER,
    DynamoDBAccountDirectory,
    origin_from_fields,
)
from enforcer.model import AccountOrigin, InputError
from enforcer.policy.datafiles import is_iso_country
from enforcer.state import CliState

CSV_COLUMNS = (
    "account_id",
    "country",
    "hq_country",
    "parent_hq_country",
    "kyc",
    "reseller",
    "name",
    "parent",
)
MAX_CSV_BYTES = 16 * 1024 * 1024
MAX_ROWS = 200_000
MAX_TEXT = 256
#: Organizations tag -> directory field
TAG_FIELDS = {
    TAG_COUNTRY: "country",
    TAG_HQ: "hq_country",
    TAG_PARENT_HQ: "parent_hq_country",
    TAG_KYC: "kyc",
    TAG_RESELLER: "reseller",
}


@dataclass
class ImportResult:
    """What an import did: accounts written and rows skipped with the reason."""

    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": len(self.imported),
            "skipped": [{"row": r, "reason": why} for r, why in self.skipped],
        }


def _shown(value: Any, limit: int = 20) -> str:
    """A value for a message: bounded, and control or non-ASCII characters escaped (no terminal tricks)."""
    return ascii(str(value or "")[:limit])[1:-1]


def directory_for(state: CliState) -> Any:
    """The account directory the CLI manages: the state file, or the stack's table (``--backend aws``)."""
    if state.is_aws:
        return state.aws().directory()
    from enforcer.accounts import LocalAccountDirectory

    return LocalAccountDirectory(state.accounts_file)


def list_accounts(directory: Any) -> list[AccountOrigin]:
    """Every account of a local or DynamoDB directory, by account id."""
    if isinstance(directory, DynamoDBAccountDirectory):
        out = []
        kwargs: dict[str, Any] = {"TableName": directory.table, "ConsistentRead": True}
        while True:
            resp = directory.client.scan(**kwargs)
            for item in resp.get("Items", []):
                fields = {k: v.get("S") for k, v in item.items() if isinstance(v, dict)}
                acct = fields.get("account_id")
                if isinstance(acct, str):
                    out.append(origin_from_fields(acct, fields))
            if not resp.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return sorted(out, key=lambda o: o.account_id)
    accounts: list[AccountOrigin] = directory.list()
    return accounts


def _origin(row: dict[str, Any]) -> AccountOrigin:
    """Validate one row like ``account add``: HQ defaults to the country, parent HQ to the HQ."""
    for text_field in ("name", "parent"):
        if len(str(row.get(text_field) or "")) > MAX_TEXT:
            raise InputError(f"{text_field} longer than {MAX_TEXT} characters", "BAD_INPUT")
    country = row.get("country") or None
    if not country:
        raise InputError("no origin country (the account stays ACCOUNT_UNKNOWN)", "NO_COUNTRY")
    hq = row.get("hq_country") or country
    origin = origin_from_dict(
        {
            **row,
            "country": country,
            "hq_country": hq,
            "parent_hq_country": row.get("parent_hq_country") or hq,
            "kyc": (row.get("kyc") or "none").strip().lower(),
        }
    )
    for name in ("country", "hq_country", "parent_hq_country"):
        value = getattr(origin, name)
        if value is None or not is_iso_country(value):
            shown = str(row.get(name) or value)[:16]
            raise InputError(f"{name} {shown!r} is not an ISO 3166-1 alpha-2 code", "BAD_COUNTRY")
    return origin


def import_rows(directory: Any, rows: Iterable[tuple[str, dict[str, Any]]]) -> ImportResult:
    """Validate and write each ``(label, row)``; invalid rows are skipped with their reason."""
    result = ImportResult()
    for label, row in rows:
        try:
            origin = _origin(row)
        except InputError as exc:
            result.skipped.append((label, str(exc)[:200]))
            continue
        directory.put(origin)
        result.imported.append(origin.account_id)
    return result


def csv_rows(data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a CSV file with a header naming some of ``CSV_COLUMNS`` (``account_id`` required)."""
    if len(data) > MAX_CSV_BYTES:
        raise InputError(f"CSV larger than {MAX_CSV_BYTES} bytes", "BAD_INPUT")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("CSV is not UTF-8", "BAD_INPUT") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "account_id" not in header:
        raise InputError(f"CSV header must name account_id (columns: {', '.join(CSV_COLUMNS)})", "BAD_INPUT")
    unknown = sorted(set(header) - set(CSV_COLUMNS))
    if unknown:
        raise InputError(f"unknown CSV columns: {', '.join(unknown)[:200]}", "BAD_INPUT")
    n = 1
    try:
        for n, raw in enumerate(reader, start=2):
            if n > MAX_ROWS + 1:
                raise InputError(f"more than {MAX_ROWS} rows", "BAD_INPUT")
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
            yield f"line {n} ({_shown(row.get('account_id'))})", row
    except csv.Error as exc:
        raise InputError(f"CSV line {n + 1}: {exc}", "BAD_INPUT") from None


def organizations_rows(org: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every ACTIVE account of the organisation with its name and origin tags."""
    for page in org.get_paginator("list_accounts").paginate():
        for acct in page.get("Accounts", []):
            if acct.get("Status", "ACTIVE") != "ACTIVE":
                continue
            tags: dict[str, str] = {}
            for tpage in org.get_paginator("list_tags_for_resource").paginate(ResourceId=acct["Id"]):
                tags.update({t["Key"]: t["Value"] for t in tpage.get("Tags", [])})
            row: dict[str, Any] = {"account_id": acct["Id"], "name": acct.get("Name") or None}
            row.update({f: tags[t] for t, f in TAG_FIELDS.items() if t in tags})
            yield f"{_shown(acct['Id'])} ({_shown(acct.get('Name'), 40)})", row
