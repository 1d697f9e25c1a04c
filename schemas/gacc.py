"""China Customs (GACC) preliminary release, table (5) major exports, and the monthly series derived from it."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa


class ChinaCustomsExports(pa.DataFrameModel):
    """`clean/china_customs_exports/year=YYYY/month=MM/part-0.parquet`: table (5) rows as published.

    Source: GACC preliminary release, "China's Major Exports by Quantity and Value" (CNY and USD
    versions are both kept). `year`/`month` are the release's end month (Feb for the Jan-Feb
    release); values are in currency units (the page's unit banner applied).
    """

    year: int = pa.Field(in_range={"min_value": 1990, "max_value": 2100}, description="year of the release (Hive key)")
    month: int = pa.Field(in_range={"min_value": 1, "max_value": 12}, description="end month of the release (Hive key)")
    period_start: dt.date = pa.Field(description="first day of the period (1 January for the Jan-Feb release)")
    period_end: dt.date = pa.Field(description="last day of the period")
    jan_feb: bool = pa.Field(description="true for the combined January-February release")
    commodity_label: str = pa.Field(description="commodity as the page labels it")
    commodity: str = pa.Field(nullable=True, description="normalised commodity id (rare_earths ...); null when not mapped")
    quantity_unit: str = pa.Field(nullable=True, description="quantity unit as published (null when the page omits it and the commodity has no known unit)")
    tonnes_per_unit: float = pa.Field(nullable=True, gt=0, description="tonnes in one quantity unit; null for non-mass units")
    quantity_month: float = pa.Field(nullable=True, ge=0, description="quantity in the month (Jan-Feb combined for the Jan-Feb release)")
    value_month: float = pa.Field(nullable=True, ge=0, description="value in the month, currency units")
    quantity_ytd: float = pa.Field(nullable=True, ge=0, description="quantity, January to the end month")
    value_ytd: float = pa.Field(nullable=True, ge=0, description="value, January to the end month, currency units")
    quantity_ytd_prior: float = pa.Field(nullable=True, ge=0, description="quantity, same months of the prior year")
    value_ytd_prior: float = pa.Field(nullable=True, ge=0, description="value, same months of the prior year, currency units")
    ytd_yoy_quantity_pct: float = pa.Field(nullable=True, description="published year-to-date YoY change of quantity, %")
    ytd_yoy_value_pct: float = pa.Field(nullable=True, description="published year-to-date YoY change of value, %")
    currency: str = pa.Field(isin=["CNY", "USD"], description="currency of the values")
    value_unit_published: float = pa.Field(gt=0, description="currency units in the page's value unit (1e8 for 'CNY 100 Million')")
    release_url: str = pa.Field(description="URL of the release page")
    source_file: str = pa.Field(description="file name in the raw zone")
    line: int = pa.Field(ge=1, description="table row of the figures in the page")
    vintage: dt.date = pa.Field(description="publication date (the page's date; else first retrieval)")

    class Config:
        strict = True
        unique = ["year", "month", "commodity_label", "currency", "vintage"]


class ChinaExportsMonthly(pa.DataFrameModel):
    """`indicators/china_exports_monthly/part-0.parquet`: China's exports per month and commodity.

    The month as published (Jan and Feb only together, as GACC releases them), with year-on-year
    change where both years are known: the prior-year figure is the prior year's own release when
    rarewatch has it, else the difference of consecutive prior-year-to-date columns.
    """

    commodity: str = pa.Field(description="normalised commodity id")
    currency: str = pa.Field(isin=["CNY", "USD"], description="currency of value")
    period_start: dt.date = pa.Field(description="first day of the period")
    period_end: dt.date = pa.Field(description="last day of the period")
    jan_feb: bool = pa.Field(description="January and February together")
    quantity_t: float = pa.Field(nullable=True, ge=0, description="quantity in tonnes (mass units only)")
    value: float = pa.Field(nullable=True, ge=0, description="value in currency units")
    quantity_t_prior_year: float = pa.Field(nullable=True, ge=0, description="same period a year earlier, tonnes")
    value_prior_year: float = pa.Field(nullable=True, ge=0, description="same period a year earlier, currency units")
    yoy_quantity_pct: float = pa.Field(nullable=True, description="100 * (quantity_t / prior - 1)")
    yoy_value_pct: float = pa.Field(nullable=True, description="100 * (value / prior - 1)")
    vintage: dt.date = pa.Field(description="vintage of the release the figures come from")

    class Config:
        strict = True
        unique = ["commodity", "currency", "period_start", "period_end"]


class ChinaCustomsImports(ChinaCustomsExports):
    """`clean/china_customs_imports/year=YYYY/month=MM/part-0.parquet`: table (6) rows as published.

    Source: GACC preliminary release, "China's Major Imports by Quantity and Value" (CNY and USD
    versions kept); the same layout and fields as table (5) major exports.
    """

    class Config:
        strict = True
        unique = ["year", "month", "commodity_label", "currency", "vintage"]


class ChinaImportsMonthly(ChinaExportsMonthly):
    """`indicators/china_imports_monthly/part-0.parquet`: China's imports per month and commodity
    (table (6)), derived as `china_exports_monthly` is from table (5)."""

    class Config:
        strict = True
        unique = ["commodity", "currency", "period_start", "period_end"]
