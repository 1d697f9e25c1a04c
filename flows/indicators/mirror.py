"""Mirror gaps: what Japan reported importing against what each partner reported exporting to Japan.

Japan's side: Japan Customs imports (latest vintage; kg and thousand yen) and Comtrade reporter
392 flow M (kg and USD). Partner's side: Comtrade reporter = partner, flow X, partner 392.
The two sides differ by CIF/FOB valuation, timing, origin vs consignment and confidentiality
(docs/sources.md §3: China reported 6,091.7 t of HS 850511 to Japan in 2022, Japan 3,743.8 t from China).
Quantities compare across sources; values only in the same currency (Comtrade USD on both sides).
"""

from __future__ import annotations

import polars as pl

from flows.catalogue import Catalogue
from flows.indicators.dependency import windows
from flows.periods import Month
from flows.sources.comtrade import TOTALS, partner_rows

KEY = ["freq", "period_start", "period_end", "metal", "partner_iso3"]
JAPAN = 392


def _by_partner(frame: pl.DataFrame, periods: pl.DataFrame) -> pl.DataFrame:
    """Sum quantity and value per period, metal and partner ISO3 (special areas and unknowns out)."""
    j = frame.filter(~pl.col("special_area") & ~pl.col("unknown_partner") & pl.col("partner_iso3").is_not_null())
    j = j.with_columns(pl.col("year").cast(pl.Int64), pl.col("month").cast(pl.Int64)).join(periods, on=["year", "month"])
    return j.group_by(KEY).agg(pl.col("partner_name").first(), pl.col("quantity").sum(), pl.col("value").sum())


def compute(catalogue: Catalogue, comtrade_clean: pl.DataFrame | None,
            japan_customs_latest: pl.DataFrame | None, japan_customs_months: list[Month]) -> pl.DataFrame:
    """mirror_gaps rows (see schemas.indicators.MirrorGaps)."""
    from flows.sources.comtrade import Comtrade
    from flows.sources.japan_customs import JapanCustoms

    if comtrade_clean is None or comtrade_clean.is_empty():
        return pl.DataFrame()
    ct = Comtrade()
    ct_periods = ct.windows(comtrade_clean)
    japan_sides = [("comtrade", "USD", _by_partner(ct.trade(comtrade_clean, catalogue), ct_periods))]
    if japan_customs_latest is not None and not japan_customs_latest.is_empty():
        jc = JapanCustoms().trade(japan_customs_latest, catalogue)
        japan_sides.append(("japan_customs", "JPY_thousand", _by_partner(jc, windows(japan_customs_months)
                                                                         .filter(pl.col("freq") != "12M"))))

    exports = comtrade_clean.filter((pl.col("flow") == "X") & (pl.col("partner_code") == JAPAN)
                                    & (pl.col("reporter_code") != JAPAN) & TOTALS)
    exports = catalogue.assign_metal(exports, code="cmd_code", period="period")
    exports = partner_rows(exports.drop("partner_iso3"), code="reporter_code").select(
        "year", pl.col("ref_month").fill_null(0).alias("month"), "metal", "partner_iso3", "partner_name",
        "special_area", "unknown_partner", pl.col("value_usd").alias("value"),
        pl.coalesce("net_weight_kg", pl.when(pl.col("qty_unit_code") == 8).then(pl.col("qty"))).alias("quantity"))
    partner_side = _by_partner(exports, ct_periods)

    out = []
    for name, unit, side in japan_sides:
        joined = side.join(partner_side, on=KEY, how="full", coalesce=True, suffix="_p")
        out.append(joined.select(
            *KEY, pl.coalesce("partner_name", "partner_name_p").alias("partner_name"),
            pl.lit(name).alias("japan_source"),
            pl.col("quantity").alias("japan_quantity_kg"), pl.col("quantity_p").alias("partner_quantity_kg"),
            (pl.col("quantity_p") - pl.col("quantity")).alias("quantity_gap_kg"),
            pl.when(pl.col("quantity") > 0).then(pl.col("quantity_p") / pl.col("quantity")).alias("quantity_ratio"),
            pl.col("value").alias("japan_value"), pl.lit(unit).alias("japan_value_unit"),
            pl.col("value_p").alias("partner_value_usd"),
            (pl.when(pl.col("value") > 0).then(pl.col("value_p") / pl.col("value")) if unit == "USD"
             else pl.lit(None, dtype=pl.Float64)).alias("value_ratio"),
        ))
    # Japan Customs periods the partner side does not cover (e.g. months vs annual) say nothing.
    frame = pl.concat(out, how="vertical_relaxed").filter(
        pl.col("partner_quantity_kg").is_not_null() | pl.col("partner_value_usd").is_not_null()
        | (pl.col("japan_source") == "comtrade"))
    return frame.sort("metal", "freq", "period_start", "partner_iso3", "japan_source")
