"""METI/ANRE 非鉄金属等需給動態統計, table (1) 需給総括 (docs/sources.md, "METI")."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa


class MetiSupplyDemand(pa.DataFrameModel):
    """`clean/meti_supply_demand/year=YYYY/part-0.parquet`: supply and demand per survey item, tonnes.

    Source: METI/ANRE non-ferrous metals supply-demand survey, 2012-2020 (abolished December 2020),
    one row per item as the survey names it (ore, metal and scrap are separate items) and month
    (`freq` M) or year (`freq` A, annual workbooks). The layout read is documented in
    flows/sources/meti/parse.py; item names map to metals through flows/reference/meti_items.csv.
    """

    item: str = pa.Field(description="item as the survey names it (電気銅, ニッケル, タングステン鉱 ...)")
    metal: str = pa.Field(description="metal id the item belongs to (nickel, cobalt, tungsten ...)")
    form: str = pa.Field(isin=["metal", "ore", "scrap", "secondary"], description="what the item is: metal, ore, scrap or secondary metal")
    metal_content: float = pa.Field(nullable=True, gt=0, le=1, description="tonnes of metal per tonne of item; null = unknown (never summed into the metal)")
    freq: str = pa.Field(isin=["M", "A"], description="M: one month (monthly workbook); A: the year (annual workbook)")
    year: int = pa.Field(in_range={"min_value": 2000, "max_value": 2020}, description="year (Hive key)")
    month: int = pa.Field(in_range={"min_value": 1, "max_value": 12}, description="month (12 for freq A)")
    period: dt.date = pa.Field(description="first day of the month (of December for freq A)")
    opening_stock_t: float = pa.Field(nullable=True, ge=0, description="stocks at the start of the period (月初在庫), t")
    production_t: float = pa.Field(nullable=True, ge=0, description="receipts from domestic production (受入 生産), t")
    imports_t: float = pa.Field(nullable=True, ge=0, description="receipts from imports (受入 輸入), t")
    receipts_other_t: float = pa.Field(nullable=True, ge=0, description="other receipts (受入 その他), t")
    receipts_total_t: float = pa.Field(nullable=True, ge=0, description="all receipts (受入 計), t")
    consumption_t: float = pa.Field(nullable=True, ge=0, description="shipments for domestic consumption (払出 消費 / 国内出荷), t")
    exports_t: float = pa.Field(nullable=True, ge=0, description="shipments abroad (払出 輸出), t")
    shipments_other_t: float = pa.Field(nullable=True, ge=0, description="other shipments (払出 その他), t")
    shipments_total_t: float = pa.Field(nullable=True, ge=0, description="all shipments (払出 計), t")
    closing_stock_t: float = pa.Field(nullable=True, ge=0, description="stocks at the end of the period (月末在庫), t")
    vintage: dt.date = pa.Field(description="publication date, else the day rarewatch first saw the workbook")
    source_file: str = pa.Field(description="workbook name")
    line: int = pa.Field(ge=1, description="row in the sheet")

    class Config:
        strict = True
        unique = ["item", "freq", "year", "month", "vintage"]
