"""Build flows/reference/japan_customs_countries.csv from the official Japan Customs country list.

Input: the official list as CSV (`Code,Geographical Zone,Country`), as published at
customs.go.jp/toukei/sankou/code/country_e.htm (docs/sources.md §1.5).
Output: the same rows plus `iso3` (ISO 3166-1 alpha-3, resolved with pycountry and the
overrides below; blank where no ISO code exists) and `special_area` (codes 701-703).

Usage: python scripts/build_country_table.py ../shared/fixtures/japan_customs/country_codes.csv
pycountry is needed only here (pip install pycountry), not at run time.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pycountry

OUT = Path(__file__).resolve().parents[1] / "flows" / "reference" / "japan_customs_countries.csv"

# Names in the customs list that pycountry does not resolve, or resolves wrongly.
# "" = no ISO 3166-1 code (territory lumped, historic grouping, or special area).
OVERRIDES: dict[str, str] = {
    "103": "KOR",  # Republic of Korea (fuzzy search picks the DPRK)
    "116": "BRN",
    "154": "KGZ",
    "158": "PSE",
    "216": "",  # Azores: part of Portugal, no ISO code of its own
    "219": "GIB",
    "224": "RUS",
    "234": "TUR",
    "248": "XKX",  # Kosovo: user-assigned code used by the EU and the IMF
    "249": "FRO",
    "250": "VAT",
    "301": "GRL",
    "303": "SPM",
    "314": "BMU",
    "315": "BHS",
    "317": "TCA",
    "324": "PRI",
    "325": "VIR",
    "326": "ANT",  # Netherlands Antilles: withdrawn ISO code, kept for old data
    "327": "",  # French West Indies: Guadeloupe + Martinique lumped
    "328": "CYM",
    "330": "LCA",
    "334": "MSR",
    "335": "KNA",
    "336": "VCT",
    "337": "AIA",
    "338": "BLM",
    "414": "FLK",
    "415": "",
    "502": "",  # Ceuta and Melilla: part of Spain
    "508": "ESH",
    "511": "GMB",
    "516": "CIV",
    "522": "CPV",
    "523": "",  # Canary Islands: part of Spain
    "529": "CAF",
    "532": "COG",
    "533": "COD",
    "537": "SHN",
    "548": "REU",
    "557": "IOT",
    "605": "",
    "607": "COK",
    "608": "TKL",
    "616": "PCN",
    "618": "NCL",
    "620": "GUM",
    "622": "",
    "625": "MHL",
    "626": "FSM",
    "627": "MNP",
    "701": "",
    "702": "",
    "703": "",
}

SPECIAL_AREAS = {"701", "702", "703"}  # docs/sources.md §1.5: For Order, Unknown, bonded areas


def resolve(code: str, name: str) -> str:
    if code in OVERRIDES:
        return OVERRIDES[code]
    return pycountry.countries.lookup(name).alpha_3


def main(src: str) -> None:
    with open(src, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "zone", "name", "iso3", "special_area"])
        for r in rows:
            code = r["Code"].strip()
            w.writerow([code, r["Geographical Zone"].strip(), r["Country"].strip(),
                        resolve(code, r["Country"].strip()), str(code in SPECIAL_AREAS).lower()])
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
