"""Full-scale synthetic Japan Customs releases in the official 品別国別表 layout, for benchmarks.

    python benchmarks/generate.py OUT_DIR [--years 1988-2025] [--codes 9000] [--partners 12] [--seed 7]

writes `OUT_DIR/japan_customs/<YYYY>_<imp|exp>_ch<AABB>_v<YYYYMMDD>.csv`: for every year and both
flows, one file per HS chapter block as e-Stat splits a release (about 22 blocks, docs/sources.md
§1.3), named with the publication date the inbox understands (`_vYYYYMMDD`, flows/sources
`inbox_files`). A year is its fixed release, published in November of the next year
(docs/sources.md §1.4), carrying all twelve months.

What is generated (the figures are invented; the shape is the official one, docs/sources.md §1.2):
- the 45 columns `Exp or Imp, Year, HS, Country, Unit1, Unit2, Quantity1-Year, Quantity2-Year,
  Value-Year, Quantity1-Jan, Quantity2-Jan, Value-Jan, ...`; April spelt `Apl` before 2020 (older
  files);
- ~9,000 9-digit codes per flow across all chapters (the size of Japan's statistical
  nomenclature), the catalogue's HS6 headings among them with 1-3 national suffixes each (about
  1.5 % of codes, as in the real tables), ~12 partners per code drawn from Japan's real customs
  country codes with trade-like weights: about 110,000 rows and 20 MB per flow and year;
- HS quoted with single quotes (`'280530000'`), Country as an integer, Unit2 `KG` (some `MT`,
  `NO` with Unit1 blank as spaces), quantities under one unit dropped (0 with value > 0),
  months without trade 0, `*-Year` equal to the sum of the months;
- lognormal values (heavy-tailed, as trade values are), quantities tied to values by a per-code
  unit price;
- one `S-TOTAL` summary row per file (recognised and skipped by the parser), a UTF-8 BOM on the
  files of even years.
Deterministic: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

# e-Stat's chapter blocks of a 品別国別表 release (docs/sources.md §1.3: "about 22 files, one per HS
# chapter block"); rare earths sit in 28-38, magnets in 85, metals in 26 and 72-83.
CHAPTER_BLOCKS = [(1, 5), (6, 14), (15, 15), (16, 24), (25, 27), (28, 38), (39, 40), (41, 43), (44, 46),
                  (47, 49), (50, 63), (64, 67), (68, 70), (71, 71), (72, 73), (74, 81), (82, 83), (84, 84),
                  (85, 85), (86, 89), (90, 92), (93, 97)]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
# Japan Customs country codes (docs/sources.md §1.5) with rough shares of Japan's trade.
PARTNERS = {105: 22, 304: 12, 103: 6, 106: 5, 110: 4, 111: 4, 113: 3, 118: 3, 112: 2, 117: 2, 123: 2,
            213: 3, 210: 2, 205: 2, 220: 2, 302: 2, 305: 1, 601: 5, 606: 1, 551: 1, 108: 2, 224: 1, 703: 1}


def codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct 9-digit codes: the catalogue's headings (1-3 suffixes each) and random others."""
    from flows.catalogue import Catalogue

    cat = Catalogue.load()
    ours = []
    for hs6 in cat.hs6_codes:
        ours += [f"{hs6}{s:03d}" for s in rng.choice(np.arange(0, 1000, 10), size=rng.integers(1, 4), replace=False)]
    ours += [c for c in cat.entries["code"].to_list() if len(c) == 9]
    chapters = np.array([c for c in range(1, 98) if c != 77])  # chapter 77 is reserved in the HS
    other = {f"{ch:02d}{h:02d}{s:02d}{n3:03d}" for ch, h, s, n3 in zip(
        rng.choice(chapters, size=2 * n), rng.integers(1, 99, size=2 * n), rng.integers(0, 99, size=2 * n),
        rng.integers(0, 999, size=2 * n))}
    other -= set(ours)
    keep_hs6 = set(cat.hs6_codes)
    other_list = sorted(c for c in other if c[:6] not in keep_hs6)
    picked = rng.choice(np.array(other_list), size=n - len(set(ours)), replace=False)
    return np.array(sorted(set(ours) | set(picked.tolist())))


def year_frame(rng: np.random.Generator, year: int, flow: str, hs9: np.ndarray, partners: int) -> pl.DataFrame:
    """One flow and year: every code with ~`partners` partners, the 45 columns as integers."""
    countries = np.array(list(PARTNERS))
    weights = np.array(list(PARTNERS.values()), dtype=float)
    weights /= weights.sum()
    k = np.clip(rng.poisson(partners, size=len(hs9)), 1, len(countries))
    rows_code = np.repeat(np.arange(len(hs9)), k)
    # partners per code without repeats: a random permutation weighted by trade share
    keys = -np.log(rng.random((len(hs9), len(countries)))) / weights
    order = np.argsort(keys, axis=1)
    pos = np.concatenate([order[i, :k[i]] for i in range(len(hs9))])
    n = len(rows_code)
    scale = rng.lognormal(mean=8.0, sigma=2.0, size=n)  # thousand yen per active month
    active = rng.random((n, 12)) < rng.uniform(0.3, 1.0, size=(n, 1))
    value = np.floor(active * scale[:, None] * rng.lognormal(0, 0.5, size=(n, 12))).astype(np.int64)
    price = rng.lognormal(mean=0.0, sigma=1.5, size=len(hs9))[rows_code]  # thousand yen per kg
    unit_kind = rng.choice(np.array(["KG", "MT", "NO"]), p=[0.85, 0.05, 0.10], size=len(hs9))[rows_code]
    kg = np.floor(value / price[:, None]).astype(np.int64)
    q2 = np.where((unit_kind == "MT")[:, None], kg // 1000, kg)  # amounts under one unit dropped
    q1 = np.where((unit_kind == "NO")[:, None], kg // 7, 0)
    hs = np.char.add(np.char.add("'", hs9[rows_code]), "'")
    cols: dict[str, object] = {
        "Exp or Imp": np.full(n, 1 if flow == "exp" else 2), "Year": np.full(n, year), "HS": hs,
        "Country": countries[pos],
        "Unit1": np.where(unit_kind == "NO", "NO", "   "), "Unit2": np.where(unit_kind == "MT", "MT", "KG"),
        "Quantity1-Year": q1.sum(axis=1), "Quantity2-Year": q2.sum(axis=1), "Value-Year": value.sum(axis=1),
    }
    april = "Apl" if year < 2020 else "Apr"
    for i, mon in enumerate(MONTHS):
        mon = april if mon == "Apr" else mon
        cols[f"Quantity1-{mon}"], cols[f"Quantity2-{mon}"], cols[f"Value-{mon}"] = q1[:, i], q2[:, i], value[:, i]
    return pl.DataFrame(cols)


def write_year(out: Path, rng: np.random.Generator, year: int, hs9: np.ndarray, partners: int) -> list[Path]:
    published = dt.date(year + 1, 11, 27)  # the fixed release (確定), November of the next year
    paths = []
    for flow in ("imp", "exp"):
        frame = year_frame(rng, year, flow, hs9, partners)
        chapter = frame["HS"].str.slice(1, 2).cast(pl.Int64)
        for first, last in CHAPTER_BLOCKS:
            block = frame.filter(chapter.is_between(first, last))
            if block.is_empty():
                continue
            total = block.select(pl.exclude("Exp or Imp", "Year", "HS", "Country", "Unit1", "Unit2").sum())
            summary = pl.DataFrame({"Exp or Imp": [block["Exp or Imp"][0]], "Year": [year], "HS": ["S-TOTAL"],
                                    "Country": [None], "Unit1": [""], "Unit2": [""]}).hstack(total)
            body = pl.concat([block, summary.cast(block.schema)], how="vertical")  # type: ignore[arg-type]
            path = out / f"{year}_{flow}_ch{first:02d}{last:02d}_v{published:%Y%m%d}.csv"
            text = body.write_csv(null_value="").encode()
            path.write_bytes((b"\xef\xbb\xbf" if year % 2 == 0 else b"") + text)
            paths.append(path)
    return paths


def generate(out: Path, first: int, last: int, n_codes: int = 9000, partners: int = 12, seed: int = 7) -> list[Path]:
    """Write the releases of years first..last under out/japan_customs/; returns the files."""
    folder = out / "japan_customs"
    folder.mkdir(parents=True, exist_ok=True)
    hs9 = codes(np.random.default_rng(seed), n_codes)
    paths = []
    for year in range(first, last + 1):
        paths += write_year(folder, np.random.default_rng([seed, year]), year, hs9, partners)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--years", default="1988-2025", help="FIRST-LAST (default 1988-2025)")
    p.add_argument("--codes", type=int, default=9000)
    p.add_argument("--partners", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args(argv)
    first, _, last = a.years.partition("-")
    paths = generate(a.out, int(first), int(last or first), a.codes, a.partners, a.seed)
    size = sum(f.stat().st_size for f in paths)
    print(f"{len(paths)} files, {size / 1e6:,.0f} MB under {a.out / 'japan_customs'}")


if __name__ == "__main__":
    main()
