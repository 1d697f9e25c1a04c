"""Japan Customs clean rows as the indicators read them: newest vintage, metal assigned, summed.

Computed lazily from the clean dataset's scan (projection and predicate pushdown, streaming), so
a full history (1988 to today, ~1.4 million rows) is never held row by row: what is kept is one
row per flow, month, metal and country, with value, net mass and tonnes of metal content
(`metal_content` of flows/reference/commodities.csv; docs/sources.md §7). Every indicator of a
run (partner shares, import dependency, mirror gaps, reserve coverage and reliance) starts here.
"""

from __future__ import annotations

import polars as pl

from flows.catalogue import Catalogue
from flows.sources import latest_vintage

KEY = ("flow", "year", "month", "hs9")  # within which the newest vintage wins (docs/sources.md §1.4)
PARTITION = ("year", "month")


def indicator_frame(scan: pl.LazyFrame | pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    """flow, year, month, period, metal, country_code, value_jpy_thousand, net_mass_kg, metal_t."""
    lf = scan.lazy() if isinstance(scan, pl.DataFrame) else scan
    latest = latest_vintage(lf.select("flow", "year", "month", "period", "hs9", "country_code", "value_jpy_thousand",
                                       "net_mass_kg", "vintage"), KEY, PARTITION)
    with_metal = catalogue.assign_metal(latest, code="hs9", period="period")
    factors = catalogue.entries.select("metal", "code", "metal_content")
    content = (with_metal.with_columns(pl.col("hs9").str.slice(0, 6).alias("_hs6"))
               .join(factors.rename({"code": "hs9"}).lazy(), on=["metal", "hs9"], how="left")
               .join(factors.rename({"code": "_hs6", "metal_content": "_c6"}).lazy(), on=["metal", "_hs6"], how="left")
               .with_columns(pl.coalesce("metal_content", "_c6", pl.lit(1.0)).alias("_content")))
    summed = content.group_by("flow", "year", "month", "period", "metal", "country_code").agg(
        # a month's figures not published (null) stay unknown only if every row is unknown
        pl.when(pl.col("value_jpy_thousand").is_not_null().any()).then(pl.col("value_jpy_thousand").sum())
        .alias("value_jpy_thousand"),
        pl.when(pl.col("net_mass_kg").is_not_null().any()).then(pl.col("net_mass_kg").sum()).alias("net_mass_kg"),
        pl.when(pl.col("net_mass_kg").is_not_null().any()).then((pl.col("net_mass_kg") * pl.col("_content")).sum() / 1000)
        .alias("metal_t"),
    )
    return summed.collect(engine="streaming").sort("flow", "year", "month", "metal", "country_code")
