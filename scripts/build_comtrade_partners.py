"""Build flows/reference/comtrade_partners.csv: Comtrade numeric area codes -> ISO3 and name.

Input: a Comtrade/BACI code list as CSV (`country_code,country_name,country_iso2,country_iso3`),
e.g. CEPII BACI V202601's country_codes (the same codes Comtrade's partnerAreas.json
reference file uses: France 251, USA 842, India 699, "Other Asia, nes" 490 -> S19;
docs/sources.md §3). Codes the list lacks but the API returns are added below.
Usage: python scripts/build_comtrade_partners.py ../shared/fixtures/comtrade/country_codes_m49.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "flows" / "reference" / "comtrade_partners.csv"
VERSION = "BACI V202601 country codes (Comtrade numeric codes)"

# Comtrade aggregates and unallocated areas (partnerAreas.json); never supplier countries.
EXTRA = [
    ("0", "World", "W00"),
    ("837", "Bunkers", "X1 "),
    ("838", "Free Zones", "X2 "),
    ("839", "Special Categories", "X3 "),
    ("899", "Areas, nes", "X4 "),
]


def main(src: str) -> None:
    with open(src, newline="", encoding="utf-8") as f:
        rows = [(r["country_code"].strip(), r["country_name"].strip(), r["country_iso3"].strip())
                for r in csv.DictReader(f)]
    codes = {c for c, _, _ in rows}
    rows += [(c, n, i.strip()) for c, n, i in EXTRA if c not in codes]
    rows.sort(key=lambda r: int(r[0]))
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "name", "iso3", "version"])
        for code, name, iso3 in rows:
            w.writerow([code, name, iso3, VERSION])
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
