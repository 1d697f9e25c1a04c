"""UN Comtrade records (docs/sources.md §3)."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa


class ComtradeTrade(pa.DataFrameModel):
    """`clean/comtrade_trade/freq=A|M/year=YYYY/part-0.parquet`: Comtrade records as reported.

    Both sides of every flow are kept apart: a reporter's imports (flow M) and its partners'
    exports to it (flow X, reporter = partner) disagree, and mirror_gaps shows by how much.
    A request answered with `count: 0` is "not reported" and gives no row (never a zero).
    """

    freq: str = pa.Field(isin=["A", "M"], description="A annual, M monthly (Hive key)")
    year: int = pa.Field(in_range={"min_value": 1962, "max_value": 2100}, description="reference year (Hive key)")
    ref_month: int = pa.Field(nullable=True, in_range={"min_value": 1, "max_value": 12}, description="reference month; null for annual records")
    period: dt.date = pa.Field(description="first day of the reference period")
    reporter_code: int = pa.Field(ge=0, description="Comtrade reporter code (Japan 392, China 156)")
    reporter_iso3: str = pa.Field(nullable=True, description="reporter ISO3 from the versioned code table")
    flow: str = pa.Field(isin=["M", "X", "RM", "RX", "DX", "FM"], description="flow code (M imports, X exports)")
    partner_code: int = pa.Field(ge=0, description="Comtrade partner code (0 World; France 251, USA 842, India 699, 490 Other Asia nes)")
    partner_iso3: str = pa.Field(nullable=True, description="partner ISO3 as in the code table (S19 for 490)")
    partner2_code: int = pa.Field(ge=0, description="second partner (0 = all)")
    cmd_code: str = pa.Field(str_matches=r"^\d{6}$", description="HS6 commodity code")
    customs_code: str = pa.Field(description="customs procedure (C00 = all)")
    mot_code: int = pa.Field(ge=0, description="mode of transport (0 = all)")
    qty_unit_code: int = pa.Field(nullable=True, description="unit of qty (8 = kg)")
    qty: float = pa.Field(nullable=True, ge=0, description="quantity in qty_unit_code")
    net_weight_kg: float = pa.Field(nullable=True, ge=0, description="net weight, kg")
    value_usd: float = pa.Field(nullable=True, ge=0, description="primary value, US dollars")
    vintage: dt.date = pa.Field(description="when rarewatch first retrieved this answer (Comtrade gives no publication date)")
    source_file: str = pa.Field(description="request name in the raw zone")
    line: int = pa.Field(ge=1, description="record number in the answer")

    class Config:
        strict = True
        unique = ["freq", "period", "reporter_code", "flow", "partner_code", "partner2_code", "cmd_code",
                  "customs_code", "mot_code", "vintage"]
