"""Shock alerts from the indicators (schemas/alerts.py; thresholds in settings).

Plain functions over the published indicator frames; the flow writes them to `indicators/alerts/`
and emits one Prefect event per new alert (`rarewatch.alert.<kind>`, resource the metal).
"""

from __future__ import annotations

import polars as pl

ALERT_SCHEMA = {"kind": pl.String, "subject": pl.String, "source": pl.String, "period_start": pl.Date,
                "period_end": pl.Date, "observed": pl.Float64, "reference": pl.Float64, "change": pl.Float64,
                "threshold": pl.Float64, "message": pl.String}


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=ALERT_SCHEMA)


def china_export_drops(monthly: pl.DataFrame | None, drop_pct: float, what: str = "exports",
                       source: str = "gacc") -> pl.DataFrame:
    """China's monthly exports of a commodity down >= drop_pct % year on year, by quantity (one
    row per month: the CNY and USD pages give the same tonnes)."""
    if monthly is None or monthly.is_empty():
        return _empty()
    rows = (monthly.filter(pl.col("yoy_quantity_pct").is_not_null() & (pl.col("yoy_quantity_pct") <= -drop_pct))
            .unique(subset=["commodity", "period_start", "period_end"], keep="first", maintain_order=True)
            .sort("commodity", "period_start"))
    return rows.select(
        pl.lit("china_export_drop").alias("kind"), pl.col("commodity").alias("subject"), pl.lit(source).alias("source"),
        "period_start", "period_end", pl.col("quantity_t").alias("observed"),
        pl.col("quantity_t_prior_year").alias("reference"), pl.col("yoy_quantity_pct").alias("change"),
        pl.lit(float(drop_pct)).alias("threshold"),
        pl.format("China's {} of {} in {}: {} t, {}% year on year", pl.lit(what), pl.col("commodity"),
                  pl.col("period_end").dt.strftime("%Y-%m"), pl.col("quantity_t").round(1),
                  pl.col("yoy_quantity_pct").round(1)).alias("message"),
    ).cast(ALERT_SCHEMA)


def china_share_shifts(dependency: pl.DataFrame | None, points: float) -> pl.DataFrame:
    """China's share (12M, quantity) of a metal moved >= `points` against the window ending
    twelve months earlier."""
    if dependency is None or dependency.is_empty():
        return _empty()
    d = dependency.filter((pl.col("freq") == "12M") & (pl.col("basis") == "quantity")
                          & pl.col("china_share").is_not_null()).select("source", "metal", "period_start",
                                                                        "period_end", "china_share")
    earlier = d.select("source", "metal", pl.col("period_end").dt.offset_by("12mo").dt.month_end().alias("period_end"),
                       pl.col("china_share").alias("_before"))
    moved = d.join(earlier, on=["source", "metal", "period_end"], how="inner").with_columns(
        (100 * (pl.col("china_share") - pl.col("_before"))).alias("change")
    ).filter(pl.col("change").abs() >= points).sort("source", "metal", "period_end")
    return moved.select(
        pl.lit("china_share_shift").alias("kind"), pl.col("metal").alias("subject"), "source", "period_start",
        "period_end", pl.col("china_share").alias("observed"), pl.col("_before").alias("reference"), "change",
        pl.lit(float(points)).alias("threshold"),
        pl.format("China's share of Japan's {} imports (12 months to {}): {}% against {}% a year earlier",
                  pl.col("metal"), pl.col("period_end").dt.strftime("%Y-%m"), (100 * pl.col("china_share")).round(1),
                  (100 * pl.col("_before")).round(1)).alias("message"),
    ).cast(ALERT_SCHEMA)


def top_suppliers_gone(shares: pl.DataFrame | None) -> pl.DataFrame:
    """A top-3 supplier of the 12 months ending the month before supplied nothing in the month
    (quantity). Only months present in the data are judged."""
    if shares is None or shares.is_empty():
        return _empty()
    s = shares.filter(pl.col("basis") == "quantity")
    top = s.filter((pl.col("freq") == "12M") & (pl.col("rank") <= 3)).select(
        "source", "metal", "partner_code", "partner_name", "share",
        pl.col("period_end").dt.offset_by("1mo").dt.month_end().alias("period_end"))
    months = s.filter(pl.col("freq") == "M").select("source", "metal", "period_start", "period_end").unique()
    present = s.filter(pl.col("freq") == "M").select("source", "metal", "period_end", "partner_code")
    gone = (top.join(months, on=["source", "metal", "period_end"], how="inner")
            .join(present, on=["source", "metal", "period_end", "partner_code"], how="anti")
            .sort("source", "metal", "period_end", "partner_code"))
    return gone.select(
        pl.lit("top_supplier_gone").alias("kind"), pl.col("metal").alias("subject"), "source", "period_start",
        "period_end", pl.lit(0.0).alias("observed"), pl.col("share").alias("reference"), pl.lit(None, pl.Float64).alias("change"),
        pl.lit(3.0).alias("threshold"),
        pl.format("{} (a top-3 supplier of Japan's {} over the previous 12 months) supplied nothing in {}",
                  pl.col("partner_name"), pl.col("metal"), pl.col("period_end").dt.strftime("%Y-%m")).alias("message"),
    ).unique(subset=["subject", "source", "period_start", "period_end"], keep="first", maintain_order=True).cast(ALERT_SCHEMA)


def target_stock_rises(coverage: pl.DataFrame | None, rise_pct: float) -> pl.DataFrame:
    """The stock a target implies > rise_pct % above the previous year's: judged once, in the
    first month of a new reference year (the figure changes only then, docs/sources.md §7)."""
    if coverage is None or coverage.is_empty():
        return _empty()
    c = (coverage.sort("metal", "period_start")
         .group_by("metal", "reference_year", maintain_order=True)
         .agg(pl.col("period_start").first(), pl.col("period_end").first(), pl.col("required_stock_target_t").first())
         .sort("metal", "reference_year")
         .with_columns(pl.col("required_stock_target_t").shift(1).over("metal").alias("_before"),
                       pl.col("reference_year").shift(1).over("metal").alias("_year_before")))
    up = c.filter((pl.col("_before") > 0) & (pl.col("_year_before") == pl.col("reference_year") - 1)).with_columns(
        (100 * (pl.col("required_stock_target_t") / pl.col("_before") - 1)).alias("change")
    ).filter(pl.col("change") > rise_pct).sort("metal", "period_end")
    return up.select(
        pl.lit("target_stock_rise").alias("kind"), pl.col("metal").alias("subject"), pl.lit("reserve_coverage").alias("source"),
        "period_start", "period_end", pl.col("required_stock_target_t").alias("observed"),
        pl.col("_before").alias("reference"), "change", pl.lit(float(rise_pct)).alias("threshold"),
        pl.format("The stock the target implies for {} from {}: {} t, {}% above the previous year's ({} t)",
                  pl.col("metal"), pl.col("period_end").dt.strftime("%Y-%m"), pl.col("required_stock_target_t").round(0),
                  pl.col("change").round(1), pl.col("_before").round(0)).alias("message"),
    ).cast(ALERT_SCHEMA)


def all_alerts(*, exports_monthly: pl.DataFrame | None, dependency: pl.DataFrame | None,
               shares: pl.DataFrame | None, coverage: pl.DataFrame | None, drop_pct: float, share_points: float,
               rise_pct: float, releases: list[dict] | None = None) -> pl.DataFrame:
    parts = [china_export_drops(exports_monthly, drop_pct), china_share_shifts(dependency, share_points),
             top_suppliers_gone(shares), target_stock_rises(coverage, rise_pct), releases_overdue(releases or [])]
    return pl.concat(parts, how="vertical").sort("period_end", "kind", "subject", descending=[True, False, False])


def releases_overdue(latest: list[dict]) -> pl.DataFrame:
    """A live source whose newest landed month is older than the release its calendar says is
    out (`Source.due`). `latest`: source, due_start, due_end, landed_end (None: nothing landed).
    Only sources read from the network are judged (an inbox of samples is never 'late')."""
    rows = [r for r in latest if r["due_end"] is not None and r["landed_end"] is not None
            and r["landed_end"] < r["due_end"]]
    if not rows:
        return _empty()
    frame = pl.DataFrame(rows, schema={"source": pl.String, "due_start": pl.Date, "due_end": pl.Date,
                                       "landed_end": pl.Date})
    return frame.select(
        pl.lit("release_overdue").alias("kind"), pl.col("source").alias("subject"), "source",
        pl.col("due_start").alias("period_start"), pl.col("due_end").alias("period_end"),
        pl.lit(None, pl.Float64).alias("observed"), pl.lit(None, pl.Float64).alias("reference"),
        ((pl.col("due_end").dt.year() - pl.col("landed_end").dt.year()) * 12
         + pl.col("due_end").dt.month() - pl.col("landed_end").dt.month()).cast(pl.Float64).alias("change"),
        pl.lit(0.0).alias("threshold"),
        pl.format("{}: the release of {} is out by its calendar, the newest landed is {}", pl.col("source"),
                  pl.col("due_end").dt.strftime("%Y-%m"), pl.col("landed_end").dt.strftime("%Y-%m")).alias("message"),
    ).cast(ALERT_SCHEMA)
