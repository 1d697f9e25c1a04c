"""Short tables for people: what the CLI prints after a run (public figures only)."""

from __future__ import annotations

import polars as pl

from flows import pipeline
from flows.periods import Month
from flows.settings import Settings
from flows.warehouse import Warehouse


def month_summary(settings: Settings, source: str, focus: str | None) -> pl.DataFrame:
    """China share (%) and HHI per metal for the focus month: the month (M) and trailing 12 months."""
    dep = pipeline.read_indicator(settings, "import_dependency")
    if dep is None or focus is None:
        return pl.DataFrame()
    end = Month.parse(focus).last_day
    rows = dep.filter((pl.col("source") == source) & (pl.col("period_end") == end))

    def pick(freq: str, basis: str, column: str, name: str, pct: bool = False) -> pl.DataFrame:
        sel = rows.filter((pl.col("freq") == freq) & (pl.col("basis") == basis))
        expr = (pl.col(column) * 100).round(1) if pct else pl.col(column)
        return sel.select("metal", expr.alias(name))

    out = rows.select("metal").unique()
    for part in (
        pick("M", "quantity", "china_share", "China % qty M", pct=True),
        pick("12M", "quantity", "china_share", "China % qty 12M", pct=True),
        pick("12M", "value", "china_share", "China % value 12M", pct=True),
        pick("12M", "quantity", "hhi", "HHI qty 12M").with_columns(pl.col("HHI qty 12M").round(0).cast(pl.Int64)),
        pick("12M", "quantity", "top_partner_iso3", "top supplier 12M"),
    ):
        out = out.join(part, on="metal", how="left")
    return out.sort("metal")


def china_summary(settings: Settings, commodity: str = "rare_earths", periods: int = 6) -> pl.DataFrame:
    """The last periods of China's exports of a commodity, with year-on-year change."""
    from flows.sources.gacc import MONTHLY

    frame = Warehouse(settings.warehouse).read_dataset(MONTHLY)
    if frame is None:
        return pl.DataFrame()
    rows = frame.filter((pl.col("commodity") == commodity) & (pl.col("currency") == pl.col("currency").min()))
    return rows.sort("period_start").tail(periods).select(
        pl.when(pl.col("jan_feb")).then(pl.col("period_start").dt.strftime("%Y-01..02"))
        .otherwise(pl.col("period_start").dt.strftime("%Y-%m")).alias("period"),
        pl.col("quantity_t").alias("tonnes"), pl.col("quantity_t_prior_year").alias("a year earlier"),
        pl.col("yoy_quantity_pct").round(1).alias("y/y %"))


def reserve_summary(settings: Settings) -> pl.DataFrame:
    """Latest month's target-implied stocks per metal (public figures only)."""
    frame = Warehouse(settings.warehouse).read_dataset(pipeline.RESERVE_COVERAGE)
    if frame is None or frame.is_empty():
        return pl.DataFrame()
    last = frame.filter(pl.col("period_start") == pl.col("period_start").max())
    return last.select(
        "metal", pl.col("period_start").dt.strftime("%Y-%m").alias("month"), "reference_year",
        pl.col("consumption_method").alias("method"), pl.col("reference_consumption_t").round(0).alias("t/year"),
        "target_days", pl.col("required_stock_target_t").round(0).alias("stock for target, t"),
        (pl.col("china_share_12m_qty") * 100).round(1).alias("China % 12M"),
    ).sort("metal")
