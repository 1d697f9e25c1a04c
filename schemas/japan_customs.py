"""Japan Customs 品別国別表 (commodity x country): the parsed release and the clean dataset."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl

# Month names as the CSV headers spell them; older files spell April "Apl" (docs/sources.md §1.2).
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
MEASURES = ("quantity1", "quantity2", "value")

FLOW_CODES = {"1": "export", "2": "import"}  # `Exp or Imp` column (docs/sources.md §1.2)


def release_rows_schema(nulls_allowed: bool = False) -> pa.DataFrameSchema:
    """Checks on a release's rows after typing, in the file's wide layout (one row per line).

    `line` is the line number in the file as published (header = line 1), so every failure
    names its row. Annual columns must equal the sum of the twelve months: true of complete
    years, and of the current year too since months not yet published are 0 (docs/sources.md §1.2).
    """
    measure_cols = {
        f"{m}_{p}": pa.Column(pl.Int64, pa.Check.ge(0), nullable=nulls_allowed,
                              description=f"{m} for {p} as published")
        for m in MEASURES for p in (*MONTH_NAMES, "year")
    }
    sum_checks = [
        pa.Check(
            # a null (unknown) month or year cannot be checked: such rows pass
            lambda data, m=m: data.lazyframe.select(
                (pl.col(f"{m}_year") == pl.sum_horizontal([pl.col(f"{m}_{p}") for p in MONTH_NAMES]))
                .fill_null(True)
                | pl.any_horizontal([pl.col(f"{m}_{p}").is_null() for p in MONTH_NAMES])),
            name=f"{m}_year_equals_sum_of_months",
            error=f"{m} for the year differs from the sum of the monthly {m}",
        )
        for m in MEASURES
    ]
    return pa.DataFrameSchema(
        {
            "line": pa.Column(pl.Int64, pa.Check.ge(1), description="line in the file (CSV) or row of the API document; "
                              "checked a batch of files at a time, so unique per file only"),
            "flow_code": pa.Column(pl.String, pa.Check.isin(list(FLOW_CODES)), description="1 export, 2 import"),
            "year": pa.Column(pl.Int64, pa.Check.in_range(1988, 2100), description="calendar year"),
            "customs_office": pa.Column(pl.String, nullable=True, required=False,
                                        description="customs office (by-office variant only)"),
            "hs9": pa.Column(pl.String, pa.Check.str_matches(r"^\d{9}$"), description="9-digit code"),
            "country_code": pa.Column(pl.String, pa.Check.str_matches(r"^\d{3}$"), description="country"),
            "unit1": pa.Column(pl.String, nullable=True),
            "unit2": pa.Column(pl.String, nullable=True),
            **measure_cols,
        },
        checks=sum_checks,
        name="japan_customs_release_rows",
        strict=True,
    )


class JapanCustomsTrade(pa.DataFrameModel):
    """Japan's monthly trade by 9-digit commodity and country, every published vintage.

    Dataset `clean/japan_customs_trade/year=YYYY/month=MM/part-0.parquet` (year and month are
    Hive keys, not columns of the files). Source: Japan Customs Trade Statistics, 品別国別表,
    as published on e-Stat (toukei 00350300). One row per flow, code, country, month and vintage;
    months with zero quantity and value are not stored.
    """

    flow: str = pa.Field(isin=["import", "export"], description="import (by origin, CIF) or export (by destination, FOB)")
    year: int = pa.Field(in_range={"min_value": 1988, "max_value": 2100}, description="calendar year (Hive key)")
    month: int = pa.Field(in_range={"min_value": 1, "max_value": 12}, description="calendar month 1..12 (Hive key)")
    period: dt.date = pa.Field(description="first day of the month")
    hs9: str = pa.Field(str_matches=r"^\d{9}$", description="9-digit statistical code: HS6 + national suffix")
    hs6: str = pa.Field(str_matches=r"^\d{6}$", description="HS subheading (first six digits of hs9)")
    country_code: str = pa.Field(str_matches=r"^\d{3}$", description="Japan Customs 3-digit country code (701-703 special areas)")
    unit1: str = pa.Field(nullable=True, description="unit of quantity1 (often blank)")
    unit2: str = pa.Field(nullable=True, description="unit of quantity2 (usually KG)")
    quantity1: int = pa.Field(ge=0, nullable=True, description="quantity in unit1; amounts under one unit are dropped, so 0 with value > 0 is legal; null = not published (e-Stat API '-', 'X', '…')")
    quantity2: int = pa.Field(ge=0, nullable=True, description="quantity in unit2 (net weight); null = not published")
    value_jpy_thousand: int = pa.Field(ge=0, nullable=True, description="value in thousand yen, truncated; imports CIF, exports FOB; null = not published")
    net_mass_kg: float = pa.Field(ge=0, nullable=True, description="net mass in kg from the first mass unit (unit2, then unit1); null when neither is a mass unit")
    vintage: dt.date = pa.Field(description="publication date of the release the row comes from")
    release: str = pa.Field(isin=["provisional_9digit", "detailed", "revised", "fixed"],
                            description="kind of release (docs/sources.md §1.4): provisional_9digit, detailed, revised or fixed")
    source_file: str = pa.Field(description="file name as published")
    sha256: str = pa.Field(str_matches=r"^[0-9a-f]{64}$", description="sha256 of the original file (raw zone key)")
    line: int = pa.Field(ge=1, description="line of the row in the original CSV file (header is line 1), or row number in an e-Stat API document")

    class Config:
        strict = True
        coerce = False
        unique = ["flow", "year", "month", "hs9", "country_code", "vintage"]
