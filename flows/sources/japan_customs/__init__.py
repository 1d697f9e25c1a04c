"""Japan Customs trade statistics (Ministry of Finance), 品別国別表, through e-Stat.

find releases (`estat_files.discover`, or the inbox) -> fetch bytes (`estat_files.fetch`)
-> parse (`parse.parse_release`) -> validate (`schemas.japan_customs.JapanCustomsTrade`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import requests

from flows.catalogue import Catalogue, japan_customs_countries
from flows.periods import Month, Period, Year, latest_japan_customs_month
from flows.settings import Settings
from flows.sources import Parsed, ReleaseFile, Source
from flows.sources.japan_customs import estat_api, estat_files
from flows.sources.japan_customs.parse import check_release_rows, parse_release
from flows.sources.japan_customs.summary import indicator_frame
from flows.warehouse import PartitionSpec
from schemas.japan_customs import JapanCustomsTrade


API_PREFIX = "estat_api_"


class JapanCustoms(Source):
    """Japan's imports and exports by 9-digit code and country, monthly."""

    name = "japan_customs"
    dataset = "japan_customs_trade"
    spec = PartitionSpec("clean/japan_customs_trade", ("year", "month"), (("month", 2),))
    model = JapanCustomsTrade
    suffixes = (".csv", ".txt", ".json")  # .json: e-Stat API documents kept by an earlier run
    # A file re-ingested (same vintage, same file name) replaces its own earlier rows only:
    # the ~22 chapter-block files of one release land side by side.
    replace_key = ("vintage", "source_file")
    latest_key = ("flow", "year", "month", "hs9")
    value_unit = "JPY_thousand"
    # what trade, revisions, mirror gaps and reserves read: not the provenance (sha256, file, line)
    indicator_columns = ("flow", "year", "month", "period", "hs9", "country_code", "value_jpy_thousand",
                         "net_mass_kg", "vintage", "release")

    def due(self, now: dt.datetime) -> Period:
        return latest_japan_customs_month(now)

    def release_periods(self, months: list[Month]) -> list[tuple[Period, list[Month]]]:
        """A year's months come in one release: that of the latest month asked, which carries
        January to it (docs/sources.md §1.2); so each year is fetched once."""
        by_year: dict[int, list[Month]] = {}
        for m in months:
            by_year.setdefault(m.year, []).append(m)
        return [(max(ms), sorted(ms)) for _, ms in sorted(by_year.items())]

    def recognises(self, head: bytes, name: str) -> bool:
        """A 品別国別表 CSV (its header) or an e-Stat API document kept by rarewatch."""
        first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].lower().replace(b" ", b"")
        return first.startswith(b"exporimp,year") or (b'"statsDataId"' in head and b'"pages"' in head)

    def discover(self, settings: Settings, http: requests.Session, period: Period) -> list[ReleaseFile]:
        # A year means its full-year (December) release, which carries all twelve months.
        month = Month(period.year, 12) if isinstance(period, Year) else period
        if settings.estat_app_id is not None:  # the API route (docs/sources.md §1.3)
            return estat_api.discover(settings, http, month)
        return estat_files.discover(settings, http, month)

    def fetch(self, settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
        if ref.name.startswith(API_PREFIX):
            return estat_api.fetch(settings, http, ref, Catalogue.load())
        return estat_files.fetch(settings, http, ref)

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue) -> Parsed:
        if ref.name.startswith(API_PREFIX):
            return estat_api.parse(ref, data, sha256, catalogue, check=False)
        return parse_release(ref, data, sha256, catalogue, check=False)  # checked per batch: check_rows

    def check_rows(self, parsed: list[Parsed]) -> list[pl.DataFrame]:
        """The release's wide-row checks (annual sums, non-negative figures), once per batch."""
        return check_release_rows(parsed)

    def revisions(self, clean: pl.LazyFrame | pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
        """What changed between vintages (all vintages of the clean dataset)."""
        from flows.indicators.revisions import japan_customs

        return japan_customs(clean, catalogue)

    def indicator_frame(self, scan: pl.LazyFrame, catalogue: Catalogue) -> pl.DataFrame:
        """Newest vintage, metal assigned, summed to flow, month, metal and country (summary.py)."""
        return indicator_frame(scan, catalogue)

    def trade(self, frame: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
        """Imports by metal and partner, in the shape every source gives the indicators; from the
        indicator frame (or from clean rows, which are summed to it first)."""
        if "metal" not in frame.columns:
            frame = indicator_frame(frame, catalogue)
        countries = japan_customs_countries()
        with_metal = frame.filter(pl.col("flow") == "import")
        return with_metal.join(
            countries.select(pl.col("code").alias("country_code"), "iso3", "name", "special_area"),
            on="country_code", how="left",
        ).select(
            "year", "month", "metal",
            pl.col("country_code").alias("partner_code"),
            pl.col("iso3").alias("partner_iso3"),
            pl.coalesce("name", pl.lit("unknown code ") + pl.col("country_code")).alias("partner_name"),
            pl.col("special_area").fill_null(False),
            pl.col("name").is_null().alias("unknown_partner"),
            pl.col("value_jpy_thousand").cast(pl.Float64).alias("value"),
            pl.col("net_mass_kg").alias("quantity"),
        )
