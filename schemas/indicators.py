"""Dependency indicators (docs/sources.md §7), one row per source, metal, freq, basis and period."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa

FREQS = ["M", "12M", "A"]
BASES = ["value", "quantity"]


class _Keyed(pa.DataFrameModel):
    source: str = pa.Field(description="source of the trade figures (Hive key), e.g. japan_customs")
    metal: str = pa.Field(str_matches=r"^[a-z][a-z0-9_]*$", description="metal id of the commodity catalogue")
    freq: str = pa.Field(isin=FREQS, description="M one month; 12M trailing twelve months ending in the month; A calendar year (complete years only)")
    basis: str = pa.Field(isin=BASES, description="value (currency) or quantity (net mass, kg; mass units only)")
    unit: str = pa.Field(description="unit of amounts: JPY_thousand, USD or kg")
    period_start: dt.date = pa.Field(description="first day of the period")
    period_end: dt.date = pa.Field(description="last day of the period")


class PartnerShares(_Keyed):
    """`indicators/partner_shares/source=<source>/part-0.parquet`: each supplier's share of Japan's imports.

    share = partner / total, total excluding special areas (docs/sources.md §7); ranked by amount.
    """

    partner_code: str = pa.Field(description="partner code in the source's own list")
    partner_iso3: str = pa.Field(nullable=True, description="ISO 3166-1 alpha-3; null where the code has none or is unknown")
    partner_name: str = pa.Field(description="partner name (source's list)")
    amount: float = pa.Field(gt=0, description="imports from the partner, in `unit`")
    share: float = pa.Field(in_range={"min_value": 0.0, "max_value": 1.0}, description="amount / total (fraction 0..1)")
    rank: int = pa.Field(ge=1, description="1 = largest supplier")

    class Config:
        strict = True
        unique = ["source", "metal", "freq", "basis", "period_start", "partner_code"]


class ImportDependency(_Keyed):
    """`indicators/import_dependency/source=<source>/part-0.parquet`: how concentrated Japan's supply is.

    HHI = sum over partners of (100 * share)^2, 0..10,000 (World Mining Data; US merger guideline
    bands < 1,500 unconcentrated, 1,500-2,500 moderate, > 2,500 high); effective_suppliers =
    10,000 / HHI, the numbers-equivalent (docs/sources.md §7). Special areas are excluded from total,
    shares and HHI, and reported in `special_areas_amount`.
    """

    months: int = pa.Field(in_range={"min_value": 1, "max_value": 12}, description="months in the period")
    total: float = pa.Field(ge=0, description="imports from all partners except special areas, in `unit`")
    partners: int = pa.Field(ge=0, description="number of supplying partners (amount > 0)")
    china_share: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0}, description="China's share (fraction); null when total is 0")
    top_partner_iso3: str = pa.Field(nullable=True, description="largest supplier (ISO3)")
    top_partner_name: str = pa.Field(nullable=True, description="largest supplier (name)")
    top_partner_share: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0}, description="largest supplier's share")
    top3_share: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0}, description="share of the three largest suppliers")
    hhi: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 10000.0}, description="Herfindahl-Hirschman index, 0..10,000")
    effective_suppliers: float = pa.Field(nullable=True, ge=1.0, description="10,000 / HHI")
    special_areas_amount: float = pa.Field(ge=0, description="imports recorded under special areas (701-703), not in total")
    unknown_partners_amount: float = pa.Field(ge=0, description="imports from codes missing from the code table (in total)")

    class Config:
        strict = True
        unique = ["source", "metal", "freq", "basis", "period_start", "period_end"]



class MirrorGaps(pa.DataFrameModel):
    """`indicators/mirror_gaps/part-0.parquet`: Japan's reported imports against partners' reported exports to Japan.

    partner side: Comtrade, reporter = partner, flow X, partner 392; Japan side: Japan Customs
    (`japan_source` japan_customs) or Comtrade reporter 392 flow M (`japan_source` comtrade).
    quantity_ratio = partner / Japan; value_ratio only where both values are in USD.
    """

    freq: str = pa.Field(isin=["M", "A"], description="M month, A calendar year")
    period_start: dt.date = pa.Field(description="first day of the period")
    period_end: dt.date = pa.Field(description="last day of the period")
    metal: str = pa.Field(description="metal id of the commodity catalogue")
    partner_iso3: str = pa.Field(description="partner ISO3")
    partner_name: str = pa.Field(nullable=True, description="partner name")
    japan_source: str = pa.Field(isin=["japan_customs", "comtrade"], description="where Japan's side comes from")
    japan_quantity_kg: float = pa.Field(nullable=True, ge=0, description="Japan-reported imports from the partner, kg")
    partner_quantity_kg: float = pa.Field(nullable=True, ge=0, description="partner-reported exports to Japan, kg")
    quantity_gap_kg: float = pa.Field(nullable=True, description="partner - Japan, kg")
    quantity_ratio: float = pa.Field(nullable=True, ge=0, description="partner / Japan (quantity)")
    japan_value: float = pa.Field(nullable=True, ge=0, description="Japan-reported value, in japan_value_unit (CIF)")
    japan_value_unit: str = pa.Field(isin=["USD", "JPY_thousand"], description="unit of japan_value")
    partner_value_usd: float = pa.Field(nullable=True, ge=0, description="partner-reported value, USD (FOB)")
    value_ratio: float = pa.Field(nullable=True, ge=0, description="partner / Japan (value), USD on both sides only")

    class Config:
        strict = True
        unique = ["freq", "period_start", "metal", "partner_iso3", "japan_source"]


class Revisions(pa.DataFrameModel):
    """`indicators/revisions/source=<source>/part-0.parquet`: what changed between consecutive vintages.

    Compared per month, code and country (absent = 0), summed to metal and partner; changes only.
    """

    source: str = pa.Field(description="source (Hive key)")
    flow: str = pa.Field(isin=["import", "export"], description="flow")
    period_start: dt.date = pa.Field(description="first day of the month revised")
    metal: str = pa.Field(description="metal id")
    partner_code: str = pa.Field(description="partner code in the source's list")
    partner_iso3: str = pa.Field(nullable=True, description="partner ISO3")
    partner_name: str = pa.Field(nullable=True, description="partner name")
    basis: str = pa.Field(isin=["value", "quantity"], description="value or quantity")
    unit: str = pa.Field(description="JPY_thousand or kg")
    old_vintage: dt.date = pa.Field(description="earlier vintage (publication date)")
    new_vintage: dt.date = pa.Field(description="later vintage")
    old_release: str = pa.Field(description="kind of the earlier release")
    new_release: str = pa.Field(description="kind of the later release")
    old: float = pa.Field(nullable=True, description="amount in the earlier vintage")
    new: float = pa.Field(nullable=True, description="amount in the later vintage")
    difference: float = pa.Field(description="new - old")

    class Config:
        strict = True
        unique = ["source", "flow", "period_start", "metal", "partner_code", "basis", "old_vintage", "new_vintage"]
