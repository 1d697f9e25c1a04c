"""METI/ANRE 非鉄金属等需給動態統計, table (1) 需給総括 (REFERENCE section 4)."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa


class MetiSupplyDemand(pa.DataFrameModel):
    """`clean/meti_supply_demand/year=YYYY/part-0.parquet`: monthly supply and demand per metal, tonnes.

    Source: METI/ANRE non-ferrous metals supply-demand survey, 2012-2020 (abolished December 2020).
    The workbook layout is rarewatch's reading of the 「(1)需給総括」 table (see flows/sources/meti/parse.py).
    """

    metal: str = pa.Field(description="metal id (nickel, cobalt, tungsten, molybdenum, antimony ...)")
    metal_label: str = pa.Field(description="metal as the workbook names it")
    year: int = pa.Field(in_range={"min_value": 2000, "max_value": 2020}, description="year (Hive key)")
    month: int = pa.Field(in_range={"min_value": 1, "max_value": 12}, description="month")
    period: dt.date = pa.Field(description="first day of the month")
    production_t: float = pa.Field(nullable=True, ge=0, description="domestic production, t")
    imports_t: float = pa.Field(nullable=True, ge=0, description="imports, t")
    exports_t: float = pa.Field(nullable=True, ge=0, description="exports, t")
    consumption_t: float = pa.Field(nullable=True, ge=0, description="domestic consumption, t")
    stocks_t: float = pa.Field(nullable=True, ge=0, description="stocks at the end of the month, t")
    vintage: dt.date = pa.Field(description="publication date, else the day rarewatch first saw the workbook")
    source_file: str = pa.Field(description="workbook name")
    line: int = pa.Field(ge=1, description="row in the sheet")

    class Config:
        strict = True
        unique = ["metal", "year", "month", "vintage"]
