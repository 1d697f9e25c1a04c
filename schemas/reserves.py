"""Reserve coverage and reliance (docs/sources.md §7)."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa


class ReferenceConsumption(pa.DataFrameModel):
    """`indicators/reference_consumption/part-0.parquet`: every candidate reference consumption, the one used marked.

    Methods: meti (METI survey, 12 months), baseline (published annual demand, reference/consumption_baseline.csv),
    apparent (imports - exports, + production - stock change where known; USGS).
    """

    metal: str = pa.Field(description="metal id")
    year: int = pa.Field(description="calendar year")
    method: str = pa.Field(isin=["meti", "baseline", "apparent"], description="how the figure was obtained")
    tonnes: float = pa.Field(gt=0, description="annual consumption, t")
    citation: str = pa.Field(description="source of the figure")
    note: str = pa.Field(nullable=True, description="e.g. 'carried forward from 2018', 'production unknown'")
    preference: int = pa.Field(nullable=True, ge=1, description="rank of the method in the metal's precedence (null: not allowed)")
    selected: bool = pa.Field(description="the figure used for the metal and year")

    class Config:
        strict = True
        unique = ["metal", "year", "method"]


class ReserveCoverage(pa.DataFrameModel):
    """`indicators/reserve_coverage/part-0.parquet`: the stock a target implies, per month and metal (public).

    daily_reference_t = reference consumption of the reference year / days in that year; the reference
    year is the previous calendar year, from January to June the year before last (EU 2009/119/EC Art. 3(3)).
    No stock position appears here: those are confidential (restricted/reserve_coverage).
    """

    period_start: dt.date = pa.Field(description="first day of the month")
    period_end: dt.date = pa.Field(description="last day of the month")
    metal: str = pa.Field(description="metal id")
    reference_year: int = pa.Field(description="year whose consumption is the reference")
    consumption_method: str = pa.Field(isin=["meti", "baseline", "apparent"], description="method of the reference consumption")
    consumption_note: str = pa.Field(nullable=True, description="note on the reference consumption")
    reference_consumption_t: float = pa.Field(gt=0, description="reference consumption, t/year")
    days_in_reference_year: int = pa.Field(isin=[365, 366], description="days in the reference year")
    daily_reference_t: float = pa.Field(gt=0, description="t/day")
    target_days: int = pa.Field(gt=0, description="stockpile target, days (policy; default 60)")
    required_stock_target_t: float = pa.Field(ge=0, description="target_days x daily_reference_t")
    required_stock_60d_t: float = pa.Field(ge=0, description="60 x daily_reference_t")
    required_stock_180d_t: float = pa.Field(ge=0, description="180 x daily_reference_t")
    china_share_12m_qty: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0}, description="China's share of Japan's imports, trailing 12 months, quantity (Japan Customs)")

    class Config:
        strict = True
        unique = ["metal", "period_start"]


class RestrictedReserveCoverage(ReserveCoverage):
    """`<RAREWATCH_RESTRICTED_DIR>/reserve_coverage/part-0.parquet`: CONFIDENTIAL, not for distribution.

    cover_days = stock / daily_reference; china_disruption_days = stock / (daily_reference x China's 12M
    quantity share); gap_to_target_t = required_stock_target_t - stock (positive: short of the target).
    """

    stock_as_of: dt.date = pa.Field(description="date of the stock position used (latest on or before the month's end)")
    stock_t: float = pa.Field(ge=0, description="stock, t (confidential)")
    cover_days: float = pa.Field(ge=0, description="days of reference consumption the stock covers")
    gap_to_target_t: float = pa.Field(description="required_stock_target_t - stock_t")
    china_disruption_days: float = pa.Field(nullable=True, ge=0, description="days the stock covers China's share of supply; null when China supplies nothing")
    ratio_to_target: float = pa.Field(ge=0, description="cover_days / target_days")

    class Config:
        strict = True
        unique = ["metal", "period_start"]


class ImportReliance(pa.DataFrameModel):
    """`indicators/import_reliance/part-0.parquet`: net import reliance (USGS) and import reliance (EU CRM).

    NIR = (I - E - dS) / AC, AC = P + I - E - dS (reference consumption when production is unknown);
    a net exporter is flagged, never a negative share. IR = (I - E) / (P + I - E), production known only.
    """

    metal: str = pa.Field(description="metal id")
    year: int = pa.Field(description="calendar year (complete years)")
    imports_t: float = pa.Field(ge=0, description="imports, t of metal content (Japan Customs)")
    exports_t: float = pa.Field(ge=0, description="exports, t")
    net_imports_t: float = pa.Field(description="imports - exports, t")
    production_t: float = pa.Field(nullable=True, ge=0, description="domestic production, t (METI)")
    stock_change_t: float = pa.Field(nullable=True, description="change of stocks over the year, t (METI)")
    reference_consumption_t: float = pa.Field(nullable=True, gt=0, description="selected reference consumption, t")
    apparent_consumption_t: float = pa.Field(nullable=True, description="P + I - E - dS, or the reference consumption")
    net_exporter: bool = pa.Field(description="true when net imports (after stock change) are negative: 'E' in USGS tables")
    net_import_reliance: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0}, description="USGS NIR (fraction)")
    import_reliance: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0}, description="EU CRM IR (fraction)")
    consumption_basis: str = pa.Field(description="what AC is made of")

    class Config:
        strict = True
        unique = ["metal", "year"]
