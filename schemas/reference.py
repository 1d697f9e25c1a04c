"""Reference tables published in `reference/` of the warehouse (flows/reference/*.csv, cited)."""

from __future__ import annotations

import pandera.polars as pa


class Metals(pa.DataFrameModel):
    """`reference/metals/part-0.parquet`: the commodity catalogue, one row per metal and code.

    A code is an HS6 subheading or a Japanese 9-digit prefix; the longest prefix wins
    (docs/sources.md §6). Validity follows the HS revisions.
    """

    metal: str = pa.Field(str_matches=r"^[a-z][a-z0-9_]*$", description="metal id used in every indicator")
    metal_name: str = pa.Field(description="the metal as a heading names it")
    code: str = pa.Field(str_matches=r"^\d{4,9}$", description="HS6 subheading or Japanese 9-digit code prefix")
    valid_from: str = pa.Field(nullable=True, str_matches=r"^\d{4}-\d{2}$",
                               description="first month (YYYY-MM) the code counts for the metal (null: always)")
    valid_to: str = pa.Field(nullable=True, str_matches=r"^\d{4}-\d{2}$",
                             description="last month (YYYY-MM) the code counts for the metal (null: still valid)")
    description: str = pa.Field(description="what the code covers")
    metal_content: float = pa.Field(nullable=True, in_range={"min_value": 0.0, "max_value": 1.0},
                                    description="tonnes of the metal per tonne of the commodity (null: counted as is)")
    citation: str = pa.Field(description="where the mapping comes from")

    class Config:
        strict = True
        unique = ["metal", "code", "valid_from"]


class Countries(pa.DataFrameModel):
    """`reference/countries/part-0.parquet`: Japan Customs country codes with ISO3 (docs/sources.md §1.5)."""

    code: str = pa.Field(str_matches=r"^\d{3}$", description="Japan Customs 3-digit country code")
    zone: str = pa.Field(description="Japan Customs area heading (Asia, Europe, ...)")
    name: str = pa.Field(description="country or area name")
    iso3: str = pa.Field(nullable=True, description="ISO 3166-1 alpha-3 (null: none)")
    special_area: bool = pa.Field(description="special areas 701-703 (bonded, high seas): left out of totals and shares")

    class Config:
        strict = True
        unique = ["code"]


class ComtradePartners(pa.DataFrameModel):
    """`reference/comtrade_partners/part-0.parquet`: Comtrade numeric partner codes with ISO3."""

    code: int = pa.Field(ge=0, description="Comtrade (M49-based) numeric code")
    name: str = pa.Field(description="partner name")
    iso3: str = pa.Field(nullable=True, description="ISO3, or Comtrade's own area code (S19 = Other Asia, nes)")
    version: str = pa.Field(description="code table version")
    special_area: bool = pa.Field(description="an aggregate, not a supplier (World, Bunkers, Free Zones, Areas nes): left out of shares")

    class Config:
        strict = True
        unique = ["code"]


class StockpilePolicy(pa.DataFrameModel):
    """`reference/stockpile_policy/part-0.parquet`: target days per metal (docs/sources.md §5).

    JOGMEC's targets are secret since 2020 (over 180 days for the most critical metals, under 60
    for the others): these are rarewatch's assumptions, replaceable with RAREWATCH_STOCKPILE_POLICY.
    """

    metal: str = pa.Field(description="metal id")
    target_days: int = pa.Field(gt=0, description="days of reference consumption the stockpile should cover")
    tier: str = pa.Field(nullable=True, isin=["most_critical", "standard"], description="most_critical (180 days) or standard (60)")
    rationale: str = pa.Field(nullable=True, description="why this target (with its citation)")

    class Config:
        strict = True
        unique = ["metal"]


class ConsumptionBaseline(pa.DataFrameModel):
    """`reference/consumption_baseline/part-0.parquet`: published annual domestic demand, cited."""

    year: int = pa.Field(ge=1990, description="calendar year")
    metal: str = pa.Field(description="metal id")
    tonnes: float = pa.Field(gt=0, description="annual domestic demand, t")
    basis: str = pa.Field(description="what the figure measures")
    citation: str = pa.Field(description="where the figure comes from ([S]: secondary source)")

    class Config:
        strict = True
        unique = ["year", "metal"]
