"""Benchmark: parse a full-size Japan Customs 品別国別表 release, against bare polars.

A full release is ~110,000 rows a year per flow, ~20 MB of CSV (DEVELOPERS notes). This script
builds a synthetic release of that size in the official layout (random codes across all HS
chapters, catalogue codes among them at their real ~1 % rate), then times:
  bare    polars read_csv (all strings) + filter to the catalogue's HS6 headings;
  parse   rarewatch's parse_release (decode, header mapping, filter, typing, pandera checks, unpivot).
Prints figures; asserts nothing. Usage: python benchmarks/japan_customs_parse.py [ROWS] [REPEATS]
"""

from __future__ import annotations

import io
import random
import statistics
import sys
import time

import polars as pl

from flows.catalogue import Catalogue
from flows.sources import ReleaseFile
from flows.sources.japan_customs.parse import parse_release
from flows.warehouse import sha256_bytes

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def build(rows: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    cat = Catalogue.load()
    ours = cat.hs6_codes
    head = ["Exp or Imp", "Year", "HS", "Country", "Unit1", "Unit2", "Quantity1-Year", "Quantity2-Year", "Value-Year"]
    for m in MONTHS:
        head += [f"Quantity1-{m}", f"Quantity2-{m}", f"Value-{m}"]
    out = io.StringIO()
    out.write(",".join(head) + "\n")
    countries = [103, 105, 106, 110, 111, 113, 117, 123, 205, 210, 213, 224, 302, 304, 409, 410, 551, 601, 703]
    for _ in range(rows):
        hs6 = rng.choice(ours) if rng.random() < 0.01 else f"{rng.randint(10, 97):02d}{rng.randint(0, 9999):04d}"
        q = [rng.randint(0, 50_000) for _ in range(12)]
        v = [x * rng.randint(1, 9) // 10 for x in q]
        cells = ["2", "2024", f"'{hs6}{rng.randint(0, 999):03d}'", str(rng.choice(countries)), "", "KG",
                 "0", str(sum(q)), str(sum(v))]
        for a, b in zip(q, v):
            cells += ["0", str(a), str(b)]
        out.write(",".join(cells) + "\n")
    return out.getvalue().encode()


def bare(data: bytes, cat: Catalogue) -> pl.DataFrame:
    df = pl.read_csv(io.BytesIO(data), infer_schema=False)
    return df.filter(pl.col("HS").str.strip_chars("'").str.slice(0, 6).is_in(cat.hs6_codes))


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main(rows: int = 110_000, repeats: int = 5) -> None:
    cat = Catalogue.load()
    data = build(rows)
    ref = ReleaseFile("japan_customs", "bench.csv", "file:///bench.csv")
    sha = sha256_bytes(data)
    kept = bare(data, cat).height
    parsed = parse_release(ref, data, sha, cat)
    assert parsed.failures.is_empty(), parsed.failures
    t_bare = timed(lambda: bare(data, cat), repeats)
    t_parse = timed(lambda: parse_release(ref, data, sha, cat), repeats)
    mb = len(data) / 1e6
    print(f"release: {rows:,} rows, {mb:.1f} MB; catalogue rows kept {kept:,}; clean monthly rows {parsed.frame.height:,}")
    print(f"bare polars   median {statistics.median(t_bare):.3f} s  ({mb / statistics.median(t_bare):.0f} MB/s)")
    print(f"parse_release median {statistics.median(t_parse):.3f} s  ({mb / statistics.median(t_parse):.0f} MB/s)")
    print(f"ratio parse/bare: {statistics.median(t_parse) / statistics.median(t_bare):.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
