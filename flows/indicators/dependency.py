"""Import-dependency indicators: partner shares, China's share, HHI (docs/sources.md §7).

Input is the trade frame every source gives (`Source.trade`): imports by year, month, metal and
partner, with `value` (source currency) and `quantity` (net mass in kg, null when the row has no
mass unit). Definitions:
- partner share = partner / total, separately on value and on quantity; the total excludes
  special areas (For Order, Unknown, bonded areas: docs/sources.md §1.5 and 7), which are reported in
  their own column; partners missing from the code table stay in the total and are reported;
- HHI = sum of (100 * share)^2, 0..10,000 [World Mining Data]; effective suppliers = 10,000 / HHI
  (the numbers-equivalent);
- frequencies: M (one month); 12M (trailing twelve months ending in the month, only when all
  twelve months are available); A (calendar year, complete years only).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import polars as pl

from flows.periods import Month

GROUP = ["metal", "freq", "basis", "period_start", "period_end"]


def windows(months: Iterable[Month]) -> pl.DataFrame:
    """Map each available month to every period (M, 12M, A) it belongs to."""
    avail = set(months)
    rows: list[tuple[str, object, object, int, int, int]] = []
    for m in sorted(avail):
        rows.append(("M", m.first_day, m.last_day, 1, m.year, m.month))
        members = [m.shift(-k) for k in range(12)]
        if all(x in avail for x in members):
            rows.extend(("12M", members[-1].first_day, m.last_day, 12, x.year, x.month) for x in members)
        if m.month == 12:
            year = [Month(m.year, k) for k in range(1, 13)]
            if all(x in avail for x in year):
                rows.extend(("A", year[0].first_day, m.last_day, 12, x.year, x.month) for x in year)
    return pl.DataFrame(rows, schema={"freq": pl.String, "period_start": pl.Date, "period_end": pl.Date,
                                      "months": pl.Int64, "year": pl.Int64, "month": pl.Int64}, orient="row")


_PARTNER = ["partner_code", "partner_iso3", "partner_name", "special_area", "unknown_partner"]
_SERIES = ["metal", "basis", "partner_code"]


def partner_amounts(trade: pl.DataFrame, periods: pl.DataFrame) -> pl.DataFrame:
    """Amount per metal, period, basis and partner code (amounts > 0 only); `periods` from `windows`
    (all of them, or only those to recompute: `touching`).

    Linear in the history: the trade is first summed per metal, partner, basis and month; a
    period made of one (year, month) of the trade frame is a join, a period of several months
    (12M, A) is a difference of running sums, so no month is copied into each of the windows it
    belongs to. The running sums always run over the whole trade frame, in month order, so a window
    gets the same float sum whether every window is computed or only a few (an incremental update
    equals a full recompute, bit for bit).
    """
    # summed per metal, partner and month first (a month holds many codes per metal)
    per_month = trade.group_by(pl.col("year").cast(pl.Int64), pl.col("month").cast(pl.Int64), "metal",
                               "partner_code").agg(
        *[pl.col(b).filter(pl.col(b) > 0).sum().alias(b) for b in ("value", "quantity")])
    monthly = per_month.unpivot(on=["value", "quantity"], index=["year", "month", "metal", "partner_code"],
                                variable_name="basis", value_name="amount").filter(pl.col("amount") > 0)
    span = periods.group_by("freq", "period_start", "period_end", "months").agg(
        pl.len().alias("_n"), (pl.col("year") * 12 + pl.col("month") - 1).min().alias("_a"),
        (pl.col("year") * 12 + pl.col("month") - 1).max().alias("_b"))
    single = periods.join(span.filter(pl.col("_n") == 1).select("freq", "period_start"), on=["freq", "period_start"])
    parts = [monthly.join(single, on=["year", "month"], how="inner").select(*GROUP, "months", "partner_code", "amount")]
    multi = span.filter(pl.col("_n") > 1)
    if multi.height and monthly.height:
        # multi-month windows from monthly data are contiguous (12M, A): sums of a range of months,
        # read from each series' running sum at the window's last month and before its first
        # in month order, each series' running sum is sequential (one month after the other)
        running = monthly.select(*_SERIES, (pl.col("year") * 12 + pl.col("month") - 1).alias("_i"), "amount").sort(
            "_i", maintain_order=True).with_columns(pl.col("amount").cum_sum().over(_SERIES).alias("_c"))
        series = running.group_by(_SERIES).agg(pl.col("_c").last().alias("_t"))
        marks = running.select(*_SERIES, "_i", "_c")  # sorted by _i already, as join_asof needs
        windows_ = series.join(multi, how="cross")
        at_end = windows_.sort("_b").join_asof(marks.rename({"_i": "_b", "_c": "_cb"}), on="_b", by=_SERIES,
                                              strategy="backward", check_sortedness=False)
        at_start = at_end.with_columns((pl.col("_a") - 1).alias("_a1")).sort("_a1").join_asof(
            marks.rename({"_i": "_a1", "_c": "_ca"}), on="_a1", by=_SERIES, strategy="backward",
            check_sortedness=False)
        parts.append(at_start.select(
            *GROUP, "months", "partner_code",
            (pl.col("_cb").fill_null(0.0) - pl.col("_ca").fill_null(0.0)).alias("amount"), "_t",
        ).filter(pl.col("amount") > 1e-9 * pl.col("_t")).drop("_t"))  # differences of equal sums: no partner
    return pl.concat(parts, how="vertical_relaxed")


def touching(periods: pl.DataFrame, months: Iterable[Month]) -> pl.DataFrame:
    """The rows of a `windows` frame whose window holds one of `months` (what a change in those
    months makes stale)."""
    changed = pl.DataFrame([(m.year, m.month) for m in months], schema={"year": pl.Int64, "month": pl.Int64},
                           orient="row")
    keys = periods.join(changed, on=["year", "month"]).select("freq", "period_start", "period_end").unique()
    return periods.join(keys, on=["freq", "period_start", "period_end"], how="semi")


def merge(old: pl.DataFrame, new: pl.DataFrame, months: Iterable[Month], order: list[str]) -> pl.DataFrame:
    """A stored indicator with the periods holding one of `months` replaced by `new` (those periods
    recomputed), in `order`."""
    window = ["freq", "period_start", "period_end"]
    changed = pl.DataFrame({"_d": [m.first_day for m in months]}, schema={"_d": pl.Date})
    drop = old.select(window).unique().join(changed, how="cross").filter(
        (pl.col("period_start") <= pl.col("_d")) & (pl.col("period_end") >= pl.col("_d"))).select(window).unique()
    kept = old.join(drop, on=window, how="anti", maintain_order="left")
    return pl.concat([kept, new.select(old.columns)], how="vertical_relaxed").sort(order, maintain_order=True)


def _partner_table(trade: pl.DataFrame) -> pl.DataFrame:
    return trade.group_by("partner_code").agg(pl.col(c).first() for c in _PARTNER[1:])


def _sorted(amounts: pl.DataFrame) -> pl.DataFrame:
    """Rows in (GROUP, amount descending, partner_code) order, sorting on a small integer for
    (metal, freq, basis) instead of three text columns (half the time on a million rows)."""
    keys = ["metal", "freq", "basis"]
    ids = amounts.select(keys).unique().sort(keys).with_row_index("_g")
    return amounts.join(ids, on=keys).sort(["_g", "period_start", "amount", "partner_code"],
                                           descending=[False, False, True, False]).drop("_g")


def compute(trade: pl.DataFrame, periods: pl.DataFrame | Iterable[Month], *, source: str,
            value_unit: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(partner_shares, import_dependency) for one source; `periods` is a `windows` frame (or the
    available months, from which it is built)."""
    if not isinstance(periods, pl.DataFrame):
        periods = windows(periods)
    # Slim rows (codes and flags) through the million-row steps; partner names joined at the end.
    partners = _partner_table(trade)
    flags = partners.select("partner_code", "special_area", "unknown_partner",
                            (pl.col("partner_iso3") == "CHN").fill_null(False).alias("_china"))
    amounts = partner_amounts(trade, periods).join(
        flags, on="partner_code", how="left")
    unit = pl.when(pl.col("basis") == "value").then(pl.lit(value_unit)).otherwise(pl.lit("kg")).alias("unit")

    suppliers = (
        _sorted(amounts.filter(~pl.col("special_area")))
        .with_columns(
            (pl.col("amount") / pl.col("amount").sum().over(GROUP)).alias("share"),
            (pl.int_range(pl.len()).over(GROUP) + 1).cast(pl.Int64).alias("rank"),
        )
    )
    names = partners.select("partner_code", "partner_iso3", "partner_name")
    shares = suppliers.select(*GROUP, "partner_code", "amount", "share", "rank").join(
        names, on="partner_code", how="left", maintain_order="left").select(
        pl.lit(source).alias("source"), *GROUP[:1], "freq", "basis", unit, "period_start", "period_end",
        "partner_code", "partner_iso3", "partner_name", "amount", "share", "rank",
    )  # already in (metal, freq, basis, period_start, rank) order: sorted once above

    concentration = suppliers.group_by(GROUP).agg(
        pl.col("amount").sum().alias("total"),
        pl.len().cast(pl.Int64).alias("partners"),
        pl.col("share").filter(pl.col("_china")).sum().alias("china_share"),
        pl.col("partner_code").first().alias("_top"),
        pl.col("share").first().alias("top_partner_share"),
        pl.col("share").filter(pl.col("rank") <= 3).sum().alias("top3_share"),
        ((pl.col("share") * 100) ** 2).sum().alias("hhi"),
        pl.col("amount").filter(pl.col("unknown_partner")).sum().alias("unknown_partners_amount"),
    ).join(names.select(pl.col("partner_code").alias("_top"), pl.col("partner_iso3").alias("top_partner_iso3"),
                        pl.col("partner_name").alias("top_partner_name")), on="_top", how="left")
    every = amounts.group_by([*GROUP, "months"]).agg(
        pl.col("amount").filter(pl.col("special_area")).sum().alias("special_areas_amount"))
    dependency = every.join(concentration, on=GROUP, how="left").select(
        pl.lit(source).alias("source"), "metal", "freq", "basis", unit, "period_start", "period_end", "months",
        pl.col("total").fill_null(0.0),
        pl.col("partners").fill_null(0),
        "china_share", "top_partner_iso3", "top_partner_name", "top_partner_share", "top3_share",
        # float error can push a single supplier's HHI a hair over 10,000
        pl.col("hhi").clip(upper_bound=10_000.0),
        (10_000.0 / pl.col("hhi")).clip(lower_bound=1.0).alias("effective_suppliers"),
        "special_areas_amount",
        pl.col("unknown_partners_amount").fill_null(0.0),
    ).with_columns(
        pl.col(c).clip(upper_bound=1.0) for c in ("china_share", "top_partner_share", "top3_share")
    ).sort("metal", "freq", "basis", "period_start")
    return shares, dependency


# ---------------------------------------------------------------- incremental updates
STATE_KEY = "rarewatch.indicator_state"
STATE_VERSION = 1  # raise when the computation changes: stored indicators are then recomputed whole


def month_state(months: Iterable[Month], trade: pl.DataFrame) -> dict[str, str]:
    """A fingerprint of each available month's trade rows (order-independent: sums of row hashes),
    "-" for a month without import rows. Kept in the indicator files' metadata; a month whose
    fingerprint differs from the stored one is a changed month."""
    fp = trade.select(
        pl.col("year").cast(pl.Int64), pl.col("month").cast(pl.Int64), pl.struct(pl.all()).hash().alias("_h"),
    ).group_by("year", "month").agg(
        (pl.col("_h") // 2**32).cast(pl.Int64).sum().alias("_hi"), (pl.col("_h") % 2**32).cast(pl.Int64).sum().alias("_lo"),
        pl.len().alias("_n"))
    prints = {(y, m): f"{n}.{hi:x}.{lo:x}" for y, m, hi, lo, n in fp.select("year", "month", "_hi", "_lo", "_n").iter_rows()}
    return {str(m): prints.get((m.year, m.month), "-") for m in sorted(set(months))}


def state_metadata(state: dict[str, str]) -> dict[str, str]:
    return {STATE_KEY: json.dumps({"version": STATE_VERSION, "polars": pl.__version__, "months": state},
                                  sort_keys=True, separators=(",", ":"))}


def stored_state(metadata: Mapping[str, str]) -> dict[str, str] | None:
    """The month fingerprints an indicator file was computed from; None when unknown or made by
    another version of the computation (or of polars, whose row hashes may change)."""
    import json

    try:
        doc = json.loads(metadata[STATE_KEY])
    except (KeyError, ValueError):
        return None
    if doc.get("version") != STATE_VERSION or doc.get("polars") != pl.__version__:
        return None
    return dict(doc.get("months") or {})


def changed_months(old: Mapping[str, str], new: Mapping[str, str]) -> list[Month]:
    """Months added, removed or changed between two states."""
    return sorted(Month.parse(m) for m in set(old) | set(new) if old.get(m) != new.get(m))
