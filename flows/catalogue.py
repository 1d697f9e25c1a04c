"""Reference data kept in the repository: the commodity catalogue and Japan's country codes.

- `reference/commodities.csv`: HS6 or Japan 9-digit code prefix -> metal id, `metal_content` (share
  of the metal in the goods' net mass, for apparent consumption; blank = 1.0, gross weight), `valid_from` /
  `valid_to` months for HS revisions (docs/sources.md §6; HS2017 -> HS2022 changed 8103, 8106,
  8109, 8112). A 9-digit code belongs to the metal of its *longest* matching prefix, so the
  Japanese national splits of 811292 (indium, vanadium, germanium, other incl. gallium) win over
  any HS6 entry; every code maps to at most one metal and nothing is counted twice.
- `reference/japan_customs_countries.csv`: the official 3-digit list (customs.go.jp
  toukei/sankou/code/country_e.htm, docs/sources.md §1.5) plus ISO 3166-1 alpha-3 and the special-area
  flag (701 For Order, 702 Unknown, 703 bonded areas); built by scripts/build_country_table.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources

import polars as pl

_METAL_ID = re.compile(r"^[a-z][a-z0-9_]*$")


def _reference_csv(name: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    data = resources.files("flows").joinpath("reference", name).read_bytes()
    return pl.read_csv(data, schema_overrides=schema, infer_schema=False)


@dataclass(frozen=True)
class Catalogue:
    """The commodity catalogue: which HS codes make up which metal, and when."""

    entries: pl.DataFrame  # metal, code, valid_from, valid_to, description, citation

    @classmethod
    @cache
    def load(cls) -> "Catalogue":
        df = _reference_csv("commodities.csv", {})
        bad = df.filter(~pl.col("code").str.contains(r"^(\d{6}|\d{9})$") |
                        ~pl.col("metal").str.contains(_METAL_ID.pattern))
        if bad.height:
            raise ValueError(f"reference/commodities.csv: malformed rows {bad.to_dicts()}")
        dup = df.filter(pl.struct("code", "valid_from").is_duplicated())
        if dup.height:
            raise ValueError(f"reference/commodities.csv: code listed twice {dup['code'].to_list()}")
        return cls(df.with_columns(
            pl.col("valid_from").fill_null("0000-01"), pl.col("valid_to").fill_null("9999-12"),
            # share of the metal in the goods' net mass; 1.0 (gross weight) unless the catalogue says
            pl.col("metal_content").cast(pl.Float64).fill_null(1.0),
        ))

    @property
    def metals(self) -> list[str]:
        return sorted(self.entries["metal"].unique().to_list())

    @property
    def hs6_codes(self) -> list[str]:
        """HS6 codes of the catalogue, including the HS6 heading of every 9-digit entry."""
        return list(self._hs6)

    @cached_property
    def _hs6(self) -> tuple[str, ...]:  # asked once per release file, ~1,700 times in a full backfill
        return tuple(sorted(set(self.entries["code"].str.slice(0, 6).to_list())))

    @property
    def hs6_entries(self) -> list[str]:
        """The catalogue's own HS6 codes (what international sources such as Comtrade report)."""
        return sorted(set(self.entries.filter(pl.col("code").str.len_chars() == 6)["code"].to_list()))

    def codes_of(self, metal: str) -> list[str]:
        return sorted(self.entries.filter(pl.col("metal") == metal)["code"].to_list())

    def keeps(self, hs: pl.Expr) -> pl.Expr:
        """Expression: is this 6- or 9-digit code covered by the catalogue (any date)?

        Used to filter while scanning a release, before any row is typed or validated.
        """
        return hs.str.slice(0, 6).is_in(self.hs6_codes)

    def assign_metal(self, frame: pl.DataFrame, *, code: str = "hs9", period: str = "period") -> pl.DataFrame:
        """Add `metal` to rows with a 6- or 9-digit `code` and a Date `period`; drop rows of no metal.

        Longest matching prefix wins among entries valid at the period.
        """
        # Decided once per distinct (code, month), not per row: a history holds ~150 codes x 456
        # months but ~1 million rows.
        keys = frame.select(pl.col(code).alias("_code_full"), pl.col(period).alias("_period")).unique()
        if isinstance(keys, pl.LazyFrame):  # a lazy scan: the distinct keys are few, the rows many
            keys = keys.collect()
        month = pl.col("_period").dt.strftime("%Y-%m")
        keys = keys.with_row_index("_r")
        cands = []
        for length in (9, 6):
            e = self.entries.filter(pl.col("code").str.len_chars() == length)
            if e.height == 0:
                continue
            j = keys.select("_r", pl.col("_code_full").str.slice(0, length).alias("_code"), month.alias("_month")).join(
                e.select("metal", pl.col("code").alias("_code"), "valid_from", "valid_to"), on="_code")
            j = j.filter((pl.col("_month") >= pl.col("valid_from")) & (pl.col("_month") <= pl.col("valid_to")))
            cands.append(j.select("_r", "metal", pl.lit(length).alias("_len")))
        best = (pl.concat(cands).sort("_r", "_len", descending=[False, True])
                .unique("_r", keep="first", maintain_order=True).drop("_len"))
        mapping = keys.join(best, on="_r", how="inner").select(
            pl.col("_code_full").alias(code), pl.col("_period").alias(period), "metal")
        names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
        if "metal" in names:
            frame = frame.drop("metal")
        if isinstance(frame, pl.LazyFrame):
            return frame.join(mapping.lazy(), on=[code, period], how="inner")
        return frame.join(mapping, on=[code, period], how="inner", maintain_order="left")


@cache
def japan_customs_countries() -> pl.DataFrame:
    """code (3-digit string), zone, name, iso3 (null where no ISO code), special_area (bool)."""
    df = _reference_csv("japan_customs_countries.csv", {})
    return df.with_columns(
        pl.col("code").str.zfill(3),
        pl.col("iso3").replace("", None),
        (pl.col("special_area") == "true").alias("special_area"),
    )


# Comtrade aggregates that are not supplier countries (partnerAreas.json): World, Bunkers, Free
# Zones, Special Categories, Areas nes. Excluded from shares like Japan's special areas 701-703.
COMTRADE_SPECIAL = {0, 837, 838, 839, 899}


@cache
def comtrade_partners() -> pl.DataFrame:
    """Comtrade numeric area codes: code (int), name, iso3 (as published: S19 for 490 "Other Asia,
    nes"), special_area; versioned in reference/comtrade_partners.csv (scripts/build_comtrade_partners.py)."""
    df = _reference_csv("comtrade_partners.csv", {})
    return df.select(
        pl.col("code").cast(pl.Int64), "name", pl.col("iso3").str.strip_chars().replace("", None), "version",
    ).with_columns(pl.col("code").is_in(list(COMTRADE_SPECIAL)).alias("special_area"))
