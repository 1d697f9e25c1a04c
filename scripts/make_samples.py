"""Build the bundled sample releases in samples/inbox/ (deterministic: same output every run).

These are CONSTRUCTED files, not real data: they follow the official Japan Customs 品別国別表
CSV layout (docs/sources.md §1.2) with its quirks, and their figures are invented around the
published orders of magnitude (e.g. rare earths 2018-2020: China ~58 %, Viet Nam ~14 %,
France ~11 %, Malaysia ~10 %, docs/sources.md §8) so that `make run` exercises every code path offline.
Japanese national 3-digit suffixes other than those in docs/sources.md §6 are illustrative.

Files written (as e-Stat splits a release by HS chapter block, each block is its own file):
- 2019, fixed (published 2020-11-27): all 12 months; older spelling `Apl`; empty Unit1; LF.
- 2020, 9-digit provisional as of July (published 2020-08-31): months 1..7, later months 0.
- 2020, revised (published 2021-03-31): all 12 months, some Jan..Jul figures revised; UTF-8 BOM,
  CRLF line ends, Unit1 blank as spaces.
Each file also carries codes outside the catalogue (filtered on read) and S-TOTAL summary rows.

Usage: python scripts/make_samples.py [OUT_DIR]   (default samples/inbox)
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# hs9, unit2, yen per unit2 (for value), monthly base quantity, {country code: weight}
# Country codes: Japan Customs list (docs/sources.md §1.5).
IMPORTS = {
    "25-38": [
        ("280530000", "KG", 3.2, 110_000, {105: 70, 110: 15, 213: 3, 304: 2, 703: 1}),
        ("284610000", "KG", 1.1, 260_000, {105: 55, 210: 20, 113: 15, 110: 5, 235: 5}),
        ("284690100", "KG", 2.4, 420_000, {105: 55, 110: 15, 210: 10, 113: 11, 235: 5, 123: 2, 702: 1}),
        ("284690900", "KG", 1.8, 140_000, {105: 50, 110: 14, 113: 10, 210: 12, 304: 4}),
        ("261100000", "KG", 1.5, 40_000, {110: 50, 105: 20, 302: 30}),
        ("284180000", "KG", 4.0, 90_000, {105: 80, 110: 20}),
        ("261310000", "KG", 2.6, 300_000, {409: 55, 304: 25, 407: 20}),
        ("261000000", "MT", 30_000.0, 30, {551: 60, 153: 25, 123: 15}),  # chromium ore in metric tons
        ("260200000", "KG", 0.03, 9_000_000, {551: 55, 601: 35, 531: 10}),
        ("260400000", "KG", 0.012, 30_000_000, {618: 50, 117: 40, 118: 10}),
        ("260500000", "KG", 3.0, 10_000, {533: 70, 601: 30}),
        ("282200000", "KG", 4.5, 150_000, {222: 40, 208: 30, 105: 30}),
        ("282530000", "KG", 2.2, 70_000, {105: 45, 551: 35, 224: 20}),
        ("283691000", "KG", 1.6, 1_500_000, {409: 60, 413: 25, 105: 15}),
        ("282520000", "KG", 2.1, 900_000, {105: 55, 409: 25, 304: 20}),
        ("261710000", "KG", 0.8, 20_000, {105: 60, 408: 40}),
        ("282580000", "KG", 0.9, 300_000, {105: 75, 111: 15, 110: 10}),
        ("250410000", "KG", 0.15, 2_500_000, {105: 80, 410: 12, 545: 8}),
        ("250490000", "KG", 0.2, 300_000, {105: 85, 123: 15}),
        ("380110000", "KG", 0.6, 800_000, {105: 70, 304: 15, 213: 15}),
        ("280461000", "KG", 2.0, 1_000_000, {105: 40, 213: 30, 304: 30}),
        ("280469000", "KG", 0.25, 12_000_000, {105: 45, 202: 25, 410: 30}),
        ("261400000", "KG", 0.05, 40_000_000, {601: 55, 551: 30, 546: 15}),
        ("261590000", "KG", 0.9, 20_000, {410: 80, 302: 20}),
        # outside the catalogue (filtered on read): hydrogen, sodium hydroxide, gold compounds
        ("280410000", "KG", 0.1, 5_000, {105: 50, 304: 50}),
        ("281511000", "KG", 0.05, 200_000, {105: 50, 103: 50}),
        ("284330000", "KG", 9.0, 100, {304: 100}),
    ],
    "71-81": [
        ("711011000", "GR", 3.3, 2_500_000, {551: 60, 205: 15, 224: 15, 304: 10}),  # platinum in grams
        ("711021000", "GR", 6.5, 1_200_000, {224: 45, 551: 35, 304: 20}),
        ("720241000", "KG", 0.13, 35_000_000, {551: 45, 153: 30, 123: 25}),
        ("720211000", "KG", 0.12, 6_000_000, {551: 40, 113: 35, 123: 25}),
        ("720260000", "KG", 0.3, 1_000_000, {618: 60, 103: 40}),
        ("720270000", "KG", 3.5, 300_000, {105: 40, 409: 35, 103: 25}),
        ("720280000", "KG", 3.9, 10_000, {105: 80, 110: 20}),
        ("720292000", "KG", 4.2, 100_000, {105: 45, 224: 30, 551: 25}),
        ("720293000", "KG", 5.0, 350_000, {410: 90, 302: 10}),
        ("720221000", "KG", 0.2, 4_000_000, {105: 50, 224: 25, 410: 25}),
        ("750210000", "KG", 1.6, 4_000_000, {224: 40, 601: 25, 302: 20, 202: 15}),
        ("810520000", "KG", 6.0, 150_000, {222: 35, 533: 25, 202: 20, 105: 20}),
        ("810110000", "KG", 5.5, 30_000, {105: 85, 213: 15}),
        ("810194000", "KG", 6.5, 5_000, {105: 70, 304: 30}),
        ("810294000", "KG", 5.0, 20_000, {105: 60, 304: 40}),
        ("810320000", "KG", 45.0, 3_000, {304: 40, 213: 35, 105: 25}),
        ("810411000", "KG", 0.45, 2_000_000, {105: 90, 143: 10}),
        ("810820000", "KG", 1.6, 50_000, {153: 50, 224: 30, 105: 20}),
        ("811010000", "KG", 1.0, 150_000, {105: 70, 110: 15, 111: 15}),
        ("811292100", "KG", 55.0, 3_000, {103: 45, 105: 30, 302: 25}),
        ("811292200", "KG", 5.0, 2_000, {105: 100}),
        ("811292910", "KG", 120.0, 1_000, {105: 80, 304: 20}),
        ("811292990", "KG", 40.0, 1_500, {105: 70, 213: 30}),
        ("811100000", "KG", 0.35, 600_000, {105: 80, 551: 20}),
        ("811221000", "KG", 1.3, 40_000, {208: 20, 105: 50, 224: 30}),
        # outside the catalogue: gold, unwrought aluminium
        ("710812000", "GR", 5.0, 1_000_000, {304: 50, 215: 50}),
        ("760110000", "KG", 0.25, 80_000_000, {224: 30, 147: 40, 601: 30}),
    ],
    "84-85": [
        ("850511000", "KG", 6.5, 830_000, {117: 40, 105: 37, 110: 13, 111: 3, 113: 3, 304: 2, 213: 2}),
        # outside the catalogue: electric motors
        ("850110000", "NO", 0.02, 5_000_000, {105: 70, 110: 30}),
    ],
}

EXPORTS = {
    "25-38": [("284690100", "KG", 5.0, 60_000, {304: 40, 105: 30, 103: 30})],
    "71-81": [("810520000", "KG", 7.0, 20_000, {105: 60, 103: 40})],
    "84-85": [("850511000", "KG", 9.0, 250_000, {105: 35, 304: 25, 213: 20, 106: 20})],
}

# China's cut in mid-2020 (docs/sources.md: China's rare-earth exports fell ~70 % y/y in July 2020):
# the samples scale Chinese rare-earth supply down from May 2020.
CHINA_2020_FACTOR = {5: 0.8, 6: 0.55, 7: 0.35, 8: 0.4, 9: 0.6, 10: 0.7, 11: 0.8, 12: 0.85}


def monthly(rng: random.Random, base: float, year: int, month: int, country: int, weight: float, hs: str) -> int:
    q = base * weight / 100 * rng.uniform(0.6, 1.4)
    if year == 2020 and country == 105 and hs[:4] in ("2805", "2846"):
        q *= CHINA_2020_FACTOR.get(month, 1.0)
    if rng.random() < 0.08:  # some months without trade from a small supplier
        q = 0 if weight < 10 else q
    return int(q)


def build_rows(flow: int, year: int, block: list, seed: int) -> list[tuple]:
    """(flow, year, hs, country, unit2, [(q2, value) x 12]) rows for one chapter block."""
    rng = random.Random(seed)
    rows = []
    for hs, unit2, price, base, weights in block:
        for country, w in sorted(weights.items()):
            months = []
            for m in range(1, 13):
                q = monthly(rng, base, year, m, country, w, hs)
                value = int(q * price * rng.uniform(0.9, 1.1))  # thousand yen, truncated
                if q > 0 and rng.random() < 0.02:
                    value = max(value, 1)
                months.append((q, value))
            rows.append((flow, year, hs, country, unit2, months))
    return rows


def render(rows: list[tuple], *, upto: int, apl: bool, unit1_spaces: bool, revise: float = 0.0,
           seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    month_names = [("Apl" if (apl and m == "Apr") else m) for m in MONTHS]
    header = ["Exp or Imp", "Year", "HS", "Country", "Unit1", "Unit2",
              "Quantity1-Year", "Quantity2-Year", "Value-Year"]
    for m in month_names:
        header += [f"Quantity1-{m}", f"Quantity2-{m}", f"Value-{m}"]
    lines = [",".join(header)]
    unit1 = "   " if unit1_spaces else ""
    subtotal: dict[str, list[int]] = {}
    for flow, year, hs, country, unit2, months in rows:
        cells = []
        for i, (q, v) in enumerate(months):
            if i >= upto:
                q, v = 0, 0
            elif revise and rng.random() < revise:
                q, v = int(q * rng.uniform(0.95, 1.05)), int(v * rng.uniform(0.95, 1.05))
            cells.append((q, v))
        qy, vy = sum(q for q, _ in cells), sum(v for _, v in cells)
        body = [str(flow), str(year), f"'{hs}'", str(country), unit1, unit2, "0", str(qy), str(vy)]
        for q, v in cells:
            body += ["0", str(q), str(v)]
        lines.append(",".join(body))
        tot = subtotal.setdefault(hs, [0] * 27)
        tot[1] += qy
        tot[2] += vy
    # S-TOTAL rows, as the customs FAQ says downloads may carry (docs/sources.md §1.2)
    flow, year = rows[0][0], rows[0][1]
    for hs, tot in list(subtotal.items())[:3]:
        lines.append(",".join([str(flow), str(year), f"'{hs}'", "S-TOTAL", unit1, "KG", "0", str(tot[1]), str(tot[2])]
                              + ["0"] * 36))
    return lines


def write(path: Path, lines: list[str], *, bom: bool, crlf: bool) -> None:
    text = ("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("ascii"))


def main(out: Path) -> None:
    folder = out / "japan_customs"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    seed = 0
    for flow_name, flow, table in (("imp", 2, IMPORTS), ("exp", 1, EXPORTS)):
        for block, spec in table.items():
            seed += 1
            r2019 = build_rows(flow, 2019, spec, seed)
            r2020 = build_rows(flow, 2020, spec, seed + 100)
            tag = block.replace("-", "")
            write(folder / f"2019_{flow_name}_ch{tag}_v20201127.csv",
                  render(r2019, upto=12, apl=True, unit1_spaces=False), bom=False, crlf=False)
            write(folder / f"2020_{flow_name}_ch{tag}_v20200831.csv",
                  render(r2020, upto=7, apl=False, unit1_spaces=False), bom=False, crlf=False)
            write(folder / f"2020_{flow_name}_ch{tag}_v20210331.csv",
                  render(r2020, upto=12, apl=False, unit1_spaces=True, revise=0.3, seed=seed), bom=True, crlf=True)
    print(f"wrote {len(list(folder.glob('*.csv')))} files to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "samples" / "inbox")
