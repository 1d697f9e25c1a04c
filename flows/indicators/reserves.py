"""Reserve coverage: reference consumption, target-implied stocks, days of cover (docs/sources.md §7).

Stock days (IEA; EU Directive 2009/119/EC): days of cover = stocks / average daily consumption
of the reference year, the **previous calendar year**, or from 1 January to 30 June the **year
before last** (Art. 3(3)). rarewatch:
    daily_reference       = reference_consumption(reference year) / days in that year
    required_stock        = target_days x daily_reference
    cover_days            = S / daily_reference                         (S: confidential stock, t)
    china_disruption_days = S / (daily_reference x China's 12M quantity share)
Net import reliance (USGS MCS): AC = P + I - E - dS (dS = stock change); NIR = (I - E - dS) / AC,
"E" (a net exporter) never a negative share. Import reliance (EU CRM): IR = (I - E) / (P + I - E).

Reference consumption comes from three declared methods, each row saying which:
- meti: the METI survey's consumption, summed over the 12 months of the year (2012-2020 only);
- baseline: reference/consumption_baseline.csv, published annual demand; a year without its own
  figure takes the latest earlier one up to 5 years old (noted "carried forward from Y");
- apparent: imports - exports from Japan Customs (net mass x the catalogue's metal content,
  default 1.0), + production - stock change where METI knows them (USGS definition).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import polars as pl

from flows.catalogue import Catalogue
from flows.errors import RarewatchError
from flows.periods import Month

METHODS = ("meti", "baseline", "apparent")
DEFAULT_TARGET_DAYS = 60  # the 1986 standard (docs/sources.md §5)
BASELINE_MAX_AGE = 5


def reference_year(month: Month) -> int:
    """Previous calendar year; from January to June the year before last (EU 2009/119/EC Art. 3(3))."""
    return month.year - 2 if month.month <= 6 else month.year - 1


def days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


# ----------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class Precedence:
    """Order of methods, by default and per metal."""

    default: tuple[str, ...]
    per_metal: dict[str, tuple[str, ...]]

    @classmethod
    def parse(cls, text: str) -> "Precedence":
        """'meti,baseline,apparent|tungsten=baseline,apparent;cobalt=meti,apparent'."""
        head, _, rest = text.partition("|")

        def methods(t: str) -> tuple[str, ...]:
            out = tuple(m.strip() for m in t.split(",") if m.strip())
            bad = [m for m in out if m not in METHODS]
            if bad or not out:
                raise RarewatchError(f"RAREWATCH_CONSUMPTION_PRECEDENCE: unknown method(s) {bad or t!r}; "
                                     f"known: {', '.join(METHODS)}")
            return out

        per = {}
        for part in filter(None, (p.strip() for p in rest.split(";"))):
            metal, _, ms = part.partition("=")
            per[metal.strip()] = methods(ms)
        return cls(methods(head), per)

    def order(self, metal: str) -> tuple[str, ...]:
        return self.per_metal.get(metal, self.default)


def _bundled(name: str) -> bytes:
    return resources.files("flows").joinpath("reference", name).read_bytes()


def stockpile_policy(path: Path | None = None) -> pl.DataFrame:
    """metal, target_days, tier, rationale: the bundled policy or the file given."""
    data = path.read_bytes() if path else _bundled("stockpile_policy.csv")
    df = pl.read_csv(data, infer_schema=False)
    if not {"metal", "target_days"} <= set(df.columns):
        raise RarewatchError(f"stockpile policy {path or 'bundled'}: needs columns metal, target_days")
    df = df.with_columns(pl.col("target_days").cast(pl.Int64, strict=False))
    if df["target_days"].null_count() or (df["target_days"] <= 0).any():
        raise RarewatchError(f"stockpile policy {path or 'bundled'}: target_days must be whole positive days")
    for c in ("tier", "rationale"):
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    return df.select("metal", "target_days", "tier", "rationale")


def baseline_table() -> pl.DataFrame:
    return pl.read_csv(_bundled("consumption_baseline.csv"), schema_overrides={"year": pl.Int64, "tonnes": pl.Float64})


# ----------------------------------------------------------------------------- consumption
def meti_consumption(meti: pl.DataFrame | None) -> pl.DataFrame:
    """Annual consumption from the METI survey, complete years only."""
    if meti is None or meti.is_empty():
        return _empty_candidates()
    annual = meti.group_by("metal", "year").agg(
        pl.col("consumption_t").sum().alias("tonnes"),
        pl.col("consumption_t").is_not_null().sum().alias("n"), pl.col("month").n_unique().alias("months"))
    return annual.filter((pl.col("n") == 12) & (pl.col("months") == 12)).select(
        "metal", "year", pl.lit("meti").alias("method"), "tonnes",
        pl.lit("METI/ANRE 非鉄金属等需給動態統計, 需給総括: consumption, sum of 12 months").alias("citation"),
        pl.lit(None, dtype=pl.String).alias("note"))


def baseline_consumption(years: list[int], table: pl.DataFrame | None = None) -> pl.DataFrame:
    """Published annual demand for each (metal, year), carried forward up to BASELINE_MAX_AGE years."""
    table = baseline_table() if table is None else table
    rows = []
    for metal in table["metal"].unique().sort().to_list():
        t = table.filter(pl.col("metal") == metal).sort("year")
        for y in years:
            earlier = t.filter((pl.col("year") <= y) & (pl.col("year") >= y - BASELINE_MAX_AGE))
            if earlier.is_empty():
                continue
            r = earlier.row(-1, named=True)
            note = None if r["year"] == y else f"carried forward from {r['year']}"
            rows.append((metal, y, "baseline", r["tonnes"], f"{r['basis']}; {r['citation']}", note))
    return pl.DataFrame(rows, schema=_CANDIDATES, orient="row") if rows else _empty_candidates()


def apparent_consumption(trade_t: pl.DataFrame, meti: pl.DataFrame | None) -> pl.DataFrame:
    """USGS apparent consumption: I - E (+ P - dS where METI knows them), complete years only.

    `trade_t`: metal, year, imports_t, exports_t for complete years (Japan Customs).
    """
    if trade_t.is_empty():
        return _empty_candidates()
    df = trade_t.join(_meti_flows(meti), on=["metal", "year"], how="left")
    ac = pl.col("imports_t") - pl.col("exports_t") + pl.col("production_t").fill_null(0) - pl.col(
        "stock_change_t").fill_null(0)
    note = pl.when(pl.col("production_t").is_null()).then(pl.lit("imports - exports only (production unknown)")) \
        .otherwise(pl.lit("production + imports - exports - stock change"))
    return df.with_columns(ac.alias("tonnes"), note.alias("note")).filter(pl.col("tonnes") > 0).select(
        "metal", "year", pl.lit("apparent").alias("method"), "tonnes",
        pl.lit("Japan Customs net mass (x metal content) and METI where known; USGS MCS definition").alias("citation"),
        "note")


def _meti_flows(meti: pl.DataFrame | None) -> pl.DataFrame:
    """Annual production and stock change (Dec - previous Dec) from METI."""
    schema = {"metal": pl.String, "year": pl.Int64, "production_t": pl.Float64, "stock_change_t": pl.Float64}
    if meti is None or meti.is_empty():
        return pl.DataFrame(schema=schema)
    annual = meti.group_by("metal", "year").agg(
        pl.when(pl.col("production_t").is_not_null().sum() == 12).then(pl.col("production_t").sum())
        .alias("production_t"),
        pl.col("stocks_t").filter(pl.col("month") == 12).first().alias("dec_stock"))
    prev = annual.select("metal", (pl.col("year") + 1).alias("year"), pl.col("dec_stock").alias("prev_stock"))
    return annual.join(prev, on=["metal", "year"], how="left").select(
        "metal", "year", "production_t", (pl.col("dec_stock") - pl.col("prev_stock")).alias("stock_change_t"))


_CANDIDATES = {"metal": pl.String, "year": pl.Int64, "method": pl.String, "tonnes": pl.Float64,
               "citation": pl.String, "note": pl.String}


def _empty_candidates() -> pl.DataFrame:
    return pl.DataFrame(schema=_CANDIDATES)


def select(candidates: pl.DataFrame, precedence: Precedence) -> pl.DataFrame:
    """All candidates with `preference` (1 = first in the metal's order) and `selected`."""
    if candidates.is_empty():
        return candidates.with_columns(pl.lit(None, dtype=pl.Int64).alias("preference"),
                                       pl.lit(None, dtype=pl.Boolean).alias("selected"))
    metals = candidates["metal"].unique().to_list()
    order = pl.DataFrame([(m, method, i + 1) for m in metals for i, method in enumerate(precedence.order(m))],
                         schema={"metal": pl.String, "method": pl.String, "preference": pl.Int64}, orient="row")
    ranked = candidates.join(order, on=["metal", "method"], how="left")
    best = ranked.filter(pl.col("preference").is_not_null()).group_by("metal", "year").agg(
        pl.col("preference").min().alias("_best"))
    return ranked.join(best, on=["metal", "year"], how="left").with_columns(
        (pl.col("preference") == pl.col("_best")).fill_null(False).alias("selected")).drop("_best").sort(
        "metal", "year", "preference", nulls_last=True)


# ----------------------------------------------------------------------------- stock positions
def read_stock_positions(path: Path) -> pl.DataFrame:
    """metal, as_of (date), tonnes. Errors name the file, row and column, never a figure."""
    if not path.is_file():
        raise RarewatchError(f"RAREWATCH_STOCK_POSITIONS: {path} is not a file")
    try:
        raw = pl.read_parquet(path) if path.suffix.lower() == ".parquet" else pl.read_csv(path, infer_schema=False)
    except Exception as e:
        raise RarewatchError(f"stock positions {path.name}: unreadable ({type(e).__name__})") from None
    missing = {"metal", "as_of", "tonnes"} - set(raw.columns)
    if missing:
        raise RarewatchError(f"stock positions {path.name}: missing column(s) {sorted(missing)}")
    df = raw.select(
        pl.col("metal").cast(pl.String).str.strip_chars(),
        pl.col("as_of").cast(pl.String).str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("as_of"),
        pl.col("tonnes").cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False).alias("tonnes"),
    ).with_row_index("row", offset=2)
    bad = df.filter(pl.col("metal").is_null() | ~pl.col("metal").str.contains(r"^[a-z][a-z0-9_]*$")
                    | pl.col("as_of").is_null() | pl.col("tonnes").is_null() | (pl.col("tonnes") < 0))
    if bad.height:
        r = bad.row(0, named=True)
        column = ("metal" if r["metal"] is None or not r["metal"] else "as_of" if r["as_of"] is None else "tonnes")
        raise RarewatchError(f"stock positions {path.name}: row {r['row']}, column {column!r} is not valid "
                             f"({bad.height} bad row(s); values are not shown: the file is confidential)")
    if df.select("metal", "as_of").is_duplicated().any():
        raise RarewatchError(f"stock positions {path.name}: a metal has two positions on the same date")
    return df.drop("row")


# ----------------------------------------------------------------------------- coverage
def coverage(months: list[Month], consumption: pl.DataFrame, policy: pl.DataFrame,
             china_12m: pl.DataFrame) -> pl.DataFrame:
    """Public rows: per month and metal with a selected reference consumption for its reference year.

    `china_12m`: metal, period_end, china_share (12M, quantity basis).
    """
    chosen = consumption.filter(pl.col("selected"))
    grid = pl.DataFrame([(m.last_day, m.year, m.month, reference_year(m)) for m in months],
                        schema={"period_end": pl.Date, "year": pl.Int64, "month": pl.Int64,
                                "reference_year": pl.Int64}, orient="row")
    rows = grid.join(chosen.select("metal", pl.col("year").alias("reference_year"), "method",
                                   pl.col("tonnes").alias("reference_consumption_t"), "note"),
                     on="reference_year", how="inner")
    rows = rows.join(policy.select("metal", "target_days"), on="metal", how="left").with_columns(
        pl.col("target_days").fill_null(DEFAULT_TARGET_DAYS))
    days = pl.col("reference_year").map_elements(days_in_year, return_dtype=pl.Int64)
    rows = rows.with_columns(days.alias("days_in_reference_year")).with_columns(
        (pl.col("reference_consumption_t") / pl.col("days_in_reference_year")).alias("daily_reference_t"))
    rows = rows.with_columns(
        (pl.col("target_days") * pl.col("daily_reference_t")).alias("required_stock_target_t"),
        (60 * pl.col("daily_reference_t")).alias("required_stock_60d_t"),
        (180 * pl.col("daily_reference_t")).alias("required_stock_180d_t"),
    ).join(china_12m.select("metal", "period_end", pl.col("china_share").alias("china_share_12m_qty")),
           on=["metal", "period_end"], how="left")
    return rows.select(
        pl.date(pl.col("year"), pl.col("month"), 1).alias("period_start"), "period_end", "metal",
        "reference_year", pl.col("method").alias("consumption_method"), pl.col("note").alias("consumption_note"),
        "reference_consumption_t", "days_in_reference_year", "daily_reference_t", "target_days",
        "required_stock_target_t", "required_stock_60d_t", "required_stock_180d_t", "china_share_12m_qty",
    ).sort("metal", "period_start")


def restricted_coverage(public: pl.DataFrame, stocks: pl.DataFrame) -> pl.DataFrame:
    """Confidential rows: the public row plus the latest stock position on or before the month's end."""
    if public.is_empty() or stocks.is_empty():
        return pl.DataFrame()
    joined = public.sort("period_end").join_asof(
        stocks.sort("as_of").rename({"as_of": "stock_as_of", "tonnes": "stock_t"}),
        left_on="period_end", right_on="stock_as_of", by="metal", strategy="backward", check_sortedness=False,
    ).filter(pl.col("stock_t").is_not_null())
    china = pl.col("china_share_12m_qty")
    return joined.with_columns(
        (pl.col("stock_t") / pl.col("daily_reference_t")).alias("cover_days"),
        (pl.col("required_stock_target_t") - pl.col("stock_t")).alias("gap_to_target_t"),
        # China supplying nothing leaves nothing to lose: no disruption figure (null)
        pl.when(china > 0).then(pl.col("stock_t") / (pl.col("daily_reference_t") * china))
        .alias("china_disruption_days"),
    ).with_columns(
        (pl.col("cover_days") / pl.col("target_days")).alias("ratio_to_target"),
    ).sort("metal", "period_start")


# ----------------------------------------------------------------------------- reliance
def reliance(trade_t: pl.DataFrame, meti: pl.DataFrame | None, consumption: pl.DataFrame) -> pl.DataFrame:
    """NIR (USGS) and IR (EU CRM) per metal and year where production or consumption is known."""
    if trade_t.is_empty():
        return pl.DataFrame()
    chosen = consumption.filter(pl.col("selected")).select("metal", "year",
                                                           pl.col("tonnes").alias("reference_consumption_t"))
    df = trade_t.join(_meti_flows(meti), on=["metal", "year"], how="left").join(chosen, on=["metal", "year"],
                                                                                 how="left")
    net = pl.col("imports_t") - pl.col("exports_t")
    dS = pl.col("stock_change_t").fill_null(0)
    ac = pl.when(pl.col("production_t").is_not_null()).then(pl.col("production_t") + net - dS) \
        .otherwise(pl.col("reference_consumption_t"))
    df = df.with_columns(net.alias("net_imports_t"), ac.alias("apparent_consumption_t"))
    known = pl.col("apparent_consumption_t") > 0
    exporter = pl.col("net_imports_t") - dS < 0
    return df.filter(pl.col("production_t").is_not_null() | pl.col("reference_consumption_t").is_not_null()).select(
        "metal", "year", "imports_t", "exports_t", "net_imports_t", "production_t", "stock_change_t",
        "reference_consumption_t", "apparent_consumption_t",
        exporter.alias("net_exporter"),
        pl.when(known & ~exporter).then(((net - dS) / pl.col("apparent_consumption_t")).clip(upper_bound=1.0))
        .alias("net_import_reliance"),
        pl.when(pl.col("production_t").is_not_null() & (pl.col("production_t") + net > 0) & (net >= 0))
        .then(net / (pl.col("production_t") + net)).alias("import_reliance"),
        pl.when(pl.col("production_t").is_not_null()).then(pl.lit("production + imports - exports - stock change"))
        .otherwise(pl.lit("reference consumption")).alias("consumption_basis"),
    ).sort("metal", "year")


def trade_tonnes(japan_customs_latest: pl.DataFrame, catalogue: Catalogue, complete_years: list[int]) -> pl.DataFrame:
    """Imports and exports per metal and complete year, tonnes of metal content, from the Japan
    Customs indicator frame (`metal_t`: flows/sources/japan_customs/summary.py)."""
    t = japan_customs_latest.filter(pl.col("year").is_in(complete_years)).rename({"metal_t": "_t"})
    return t.group_by("metal", "year").agg(
        pl.col("_t").filter(pl.col("flow") == "import").sum().alias("imports_t"),
        pl.col("_t").filter(pl.col("flow") == "export").sum().alias("exports_t"),
    ).sort("metal", "year")
