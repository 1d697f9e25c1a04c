"""What changed between vintages (docs/sources.md §1.4: "the later version replaces the whole data").

For each flow, month and 9-digit code, consecutive vintages are compared country by country (a
country missing from one vintage counts as 0 there), and the differences are summed to metal and
partner. Only changes are listed.
"""

from __future__ import annotations

import polars as pl

from flows.catalogue import Catalogue, japan_customs_countries

KEY = ["flow", "year", "month", "hs9"]


def japan_customs(clean: pl.LazyFrame | pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
    """Revisions of Japan Customs figures, value (thousand yen) and quantity (kg)."""
    lf = clean.lazy()
    # only the (flow, month, code) published in more than one vintage can have been revised
    # a month published in one vintage only has no revision: found on the month first (cheap keys)
    month = ["flow", "year", "month"]
    months = lf.group_by(month).agg(pl.col("vintage").n_unique().alias("_n")).filter(pl.col("_n") > 1).drop(
        "_n").collect()
    if months.is_empty():
        return pl.DataFrame()
    lf = lf.join(months.lazy(), on=month, how="semi")
    revised = lf.group_by(KEY).agg(pl.col("vintage").n_unique().alias("_n")).filter(pl.col("_n") > 1).drop(
        "_n").collect()
    if revised.is_empty():
        return pl.DataFrame()
    rows = catalogue.assign_metal(lf.join(revised.lazy(), on=KEY, how="semi").collect(), code="hs9", period="period")
    if rows.is_empty():
        return pl.DataFrame()
    versions = rows.select(*KEY, "vintage", "release").unique().sort(*KEY, "vintage").with_columns(
        pl.col("vintage").shift(1).over(KEY).alias("old_vintage"),
        pl.col("release").shift(1).over(KEY).alias("old_release"),
    ).filter(pl.col("old_vintage").is_not_null()).rename({"vintage": "new_vintage", "release": "new_release"})
    if versions.is_empty():
        return pl.DataFrame()
    amounts = rows.select(*KEY, "metal", "vintage", "country_code",
                          pl.col("value_jpy_thousand").cast(pl.Float64).alias("value"),
                          pl.col("net_mass_kg").alias("quantity"))
    old = versions.join(amounts.rename({"vintage": "old_vintage"}), on=[*KEY, "old_vintage"])
    new = versions.join(amounts.rename({"vintage": "new_vintage"}), on=[*KEY, "new_vintage"])
    pair = [*KEY, "metal", "old_vintage", "new_vintage", "old_release", "new_release", "country_code"]
    both = old.join(new, on=pair, how="full", coalesce=True, suffix="_new")
    long = both.unpivot(index=pair, on=["value", "quantity", "value_new", "quantity_new"],
                        variable_name="variable", value_name="amount")
    long = long.with_columns(
        pl.col("variable").str.replace("_new", "").alias("basis"),
        pl.col("variable").str.ends_with("_new").alias("is_new"))
    agg = long.group_by(*pair[:-1], "country_code", "basis").agg(
        pl.col("amount").filter(~pl.col("is_new")).sum().alias("old"),
        pl.col("amount").filter(pl.col("is_new")).sum().alias("new"))
    agg = agg.group_by("flow", "year", "month", "metal", "country_code", "basis", "old_vintage", "new_vintage",
                       "old_release", "new_release").agg(pl.col("old").sum(), pl.col("new").sum())
    countries = japan_customs_countries().select(pl.col("code").alias("country_code"),
                                                 pl.col("iso3").alias("partner_iso3"), pl.col("name").alias("partner_name"))
    out = agg.filter((pl.col("new") - pl.col("old")).abs() > 1e-9).join(countries, on="country_code", how="left")
    return out.select(
        pl.lit("japan_customs").alias("source"), "flow", pl.date("year", "month", 1).alias("period_start"), "metal",
        pl.col("country_code").alias("partner_code"), "partner_iso3", "partner_name", "basis",
        pl.when(pl.col("basis") == "value").then(pl.lit("JPY_thousand")).otherwise(pl.lit("kg")).alias("unit"),
        "old_vintage", "new_vintage", "old_release", "new_release", "old", "new",
        (pl.col("new") - pl.col("old")).alias("difference"),
    ).sort("flow", "period_start", "metal", "partner_code", "basis", "new_vintage")
