"""Generated policy data: the ISO 3166-1 code list and the country each AWS region is located in.

Both documents are derived from maintained sources, never typed in by hand:

* countries: the ``iso3166`` package (ISO 3166-1 alpha-2, officially assigned codes plus ``XK``);
* regions: every region in botocore's ``endpoints.json`` (all partitions), located by
  :data:`REGION_COUNTRIES`. A region botocore knows but this table does not is an error, so an
  SDK upgrade that brings a new region fails ``enforcer policy check`` until it is located.

``scripts/build_policy_data.py`` writes them; ``enforcer policy check`` compares.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

#: Where each AWS region is (ISO 3166-1 alpha-2), from AWS's published region names
#: (botocore ``endpoints.json`` ``description``: "Asia Pacific (Hong Kong)" -> HK ...).
REGION_COUNTRIES: dict[str, str] = {
    "af-south-1": "ZA",
    "ap-east-1": "HK",
    "ap-east-2": "TW",
    "ap-northeast-1": "JP",
    "ap-northeast-2": "KR",
    "ap-northeast-3": "JP",
    "ap-south-1": "IN",
    "ap-south-2": "IN",
    "ap-southeast-1": "SG",
    "ap-southeast-2": "AU",
    "ap-southeast-3": "ID",
    "ap-southeast-4": "AU",
    "ap-southeast-5": "MY",
    "ap-southeast-6": "NZ",
    "ap-southeast-7": "TH",
    "ca-central-1": "CA",
    "ca-west-1": "CA",
    "eu-central-1": "DE",
    "eu-central-2": "CH",
    "eu-north-1": "SE",
    "eu-south-1": "IT",
    "eu-south-2": "ES",
    "eu-west-1": "IE",
    "eu-west-2": "GB",
    "eu-west-3": "FR",
    "il-central-1": "IL",
    "me-central-1": "AE",
    "me-south-1": "BH",
    "mx-central-1": "MX",
    "sa-east-1": "BR",
    "us-east-1": "US",
    "us-east-2": "US",
    "us-west-1": "US",
    "us-west-2": "US",
    "cn-north-1": "CN",
    "cn-northwest-1": "CN",
    "us-gov-east-1": "US",
    "us-gov-west-1": "US",
    "us-iso-east-1": "US",
    "us-iso-west-1": "US",
    "us-isob-east-1": "US",
    "us-isob-west-1": "US",
    "eu-isoe-west-1": "GB",
    "us-isof-east-1": "US",
    "us-isof-south-1": "US",
    "eusc-de-east-1": "DE",
}


def iso_countries() -> frozenset[str]:
    """The ISO 3166-1 alpha-2 codes of the ``iso3166`` package."""
    return _iso_countries()


@lru_cache(maxsize=1)
def _iso_countries() -> frozenset[str]:
    import iso3166

    return frozenset(iso3166.countries_by_alpha2)


def iso_names() -> dict[str, str]:
    """``{alpha-2 code: English short name}`` from the ``iso3166`` package, sorted by code."""
    import iso3166

    return {c: iso3166.countries_by_alpha2[c].name for c in sorted(_iso_countries())}


def is_iso_country(value: object) -> bool:
    """True when ``value`` is an upper-case ISO 3166-1 alpha-2 code that is really assigned (not ``XX``)."""
    return isinstance(value, str) and value in _iso_countries()


def botocore_regions() -> dict[str, dict[str, str]]:
    """``{region: {"partition": ..., "description": ...}}`` from botocore's ``endpoints.json``."""
    import botocore

    path = Path(botocore.__file__).parent / "data" / "endpoints.json"
    doc = json.loads(path.read_text())
    out: dict[str, dict[str, str]] = {}
    for part in doc["partitions"]:
        for region, meta in part["regions"].items():
            out[region] = {"partition": part["partition"], "description": meta.get("description", "")}
    return out


def countries_document() -> dict[str, Any]:
    """The content of ``policies/gpu/countries/data.json``."""
    from importlib.metadata import version

    return {
        "_source": f"ISO 3166-1 alpha-2 codes from the iso3166 package (PyPI) {version('iso3166')}; "
        "regenerate with scripts/build_policy_data.py",
        "iso3166_alpha2": iso_names(),
    }


def regions_document() -> dict[str, Any]:
    """The content of ``policies/gpu/regions/data.json``.

    Raises
    ------
    KeyError
        When botocore knows a region :data:`REGION_COUNTRIES` does not locate.
    """
    regions = {}
    for name, meta in sorted(botocore_regions().items()):
        if name not in REGION_COUNTRIES:
            raise KeyError(f"AWS region {name} ({meta['description']}) is not located in REGION_COUNTRIES")
        regions[name] = {
            "country": REGION_COUNTRIES[name],
            "partition": meta["partition"],
            "description": meta["description"],
        }
    return {
        "_source": "Regions from botocore endpoints.json (every partition), located by "
        "enforcer.policy.datafiles.REGION_COUNTRIES; regenerate with scripts/build_policy_data.py",
        "regions": regions,
    }
