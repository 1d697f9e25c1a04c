"""UN Comtrade: both sides of every flow, any country (docs/sources.md §3).

find releases (`api.plan`: one request per query and chunk of codes, or the inbox) -> fetch
bytes (`api.fetch`, throttled) -> parse (`parse.parse_answer`) -> validate
(`schemas.comtrade.ComtradeTrade`). Indicators: Japan's imports (reporter 392, flow M) by partner,
freq A from annual data and M from monthly data.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import requests

from flows.catalogue import Catalogue, comtrade_partners
from flows.periods import Period, Year
from flows.settings import Settings
from flows.sources import Parsed, ReleaseFile, Source
from flows.sources.comtrade import api
from flows.sources.comtrade.parse import parse_answer
from flows.warehouse import PartitionSpec
from schemas.comtrade import ComtradeTrade

# Totals only: every second partner, customs procedure and mode of transport (docs/sources.md §3).
TOTALS = (pl.col("partner2_code") == 0) & (pl.col("customs_code") == "C00") & (pl.col("mot_code") == 0)


class Comtrade(Source):
    """UN Comtrade annual and monthly records for the catalogue's HS6 codes."""

    name = "comtrade"
    dataset = "comtrade_trade"
    spec = PartitionSpec("clean/comtrade_trade", ("freq", "year"))
    model = ComtradeTrade
    suffixes = (".json",)
    replace_key = ("vintage", "source_file")
    latest_key = ("freq", "period", "reporter_code", "flow", "cmd_code")
    vintage_fallback = "first_seen"
    overlapping_requests = True  # the mirror query (partner 392, flow X) repeats China's own exports to Japan
    value_unit = "USD"

    def due(self, now: dt.datetime) -> Period:
        # Annual data for most reporters are complete about six months after the year ends.
        return Year(now.year - 1 if now.month >= 7 else now.year - 2)

    def recognises(self, head: bytes, name: str) -> bool:
        """A Comtrade API answer: a JSON envelope with `data` and `count` or `elapsedTime`."""
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        return text[:1] == b"{" and b'"data"' in text and (b'"count"' in text or b'"elapsedTime"' in text)

    def discover(self, settings: Settings, http: requests.Session, period: Period) -> list[ReleaseFile]:
        return api.plan(settings, period, Catalogue.load().hs6_entries)

    def fetch(self, settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
        return api.fetch(settings, http, ref)

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue) -> Parsed:
        return parse_answer(ref, data)

    def trade(self, clean: pl.DataFrame, catalogue: Catalogue) -> pl.DataFrame:
        """Japan's imports by metal and partner (reporter 392, flow M, totals rows, partner != World)."""
        imports = clean.filter((pl.col("reporter_code") == api.JAPAN) & (pl.col("flow") == "M") & TOTALS)
        with_metal = catalogue.assign_metal(imports, code="cmd_code", period="period")
        return partner_rows(with_metal).select(
            "year", pl.col("ref_month").fill_null(0).alias("month"), "metal",
            pl.col("partner_code").cast(pl.String), "partner_iso3",
            "partner_name", "special_area", "unknown_partner", pl.col("value_usd").alias("value"),
            pl.coalesce("net_weight_kg", pl.when(pl.col("qty_unit_code") == 8).then(pl.col("qty"))).alias("quantity"),
        )

    def windows(self, clean: pl.DataFrame) -> pl.DataFrame:
        """Annual records make freq A (month 0 in the trade frame); monthly records make freq M."""
        periods = clean.select("freq", "year", pl.col("ref_month").fill_null(0).alias("month")).unique()
        start = pl.date(pl.col("year"), pl.when(pl.col("month") == 0).then(1).otherwise(pl.col("month")), 1)
        return periods.select(
            pl.col("freq"), start.alias("period_start"),
            pl.when(pl.col("month") == 0).then(pl.date(pl.col("year"), 12, 31))
            .otherwise(start.dt.month_end()).alias("period_end"),
            pl.when(pl.col("month") == 0).then(12).otherwise(1).cast(pl.Int64).alias("months"),
            pl.col("year").cast(pl.Int64), pl.col("month").cast(pl.Int64),
        ).sort("freq", "period_start")


def partner_rows(frame: pl.DataFrame, code: str = "partner_code") -> pl.DataFrame:
    """Add partner_iso3/partner_name/special_area/unknown_partner from the versioned code table."""
    partners = comtrade_partners().select(pl.col("code").alias(code), pl.col("iso3").alias("_iso3"),
                                          pl.col("name").alias("partner_name"), "special_area")
    out = frame.join(partners, on=code, how="left")
    return out.with_columns(
        pl.coalesce("partner_iso3", "_iso3").alias("partner_iso3") if "partner_iso3" in frame.columns
        else pl.col("_iso3").alias("partner_iso3"),
        pl.coalesce("partner_name", pl.lit("unknown code ") + pl.col(code).cast(pl.String)).alias("partner_name"),
        pl.col("special_area").fill_null(False),
        # codes missing from the table, and 'nes' areas (other than 490 Other Asia), are not countries
        (pl.col("_iso3").is_null() | (pl.col("partner_name").str.ends_with("nes") & (pl.col(code) != 490)))
        .alias("unknown_partner"),
    ).drop("_iso3")
