"""China Customs (GACC) monthly preliminary release: table (5) major exports and table (6) major
imports, rare earths among them (docs/sources.md, "China Customs").

find releases (`index.discover`, or the inbox) -> fetch bytes (`index.fetch`) -> parse
(`parse.parse_release`) -> validate (`schemas.gacc`); derived monthly series with year-on-year
change (`derive`). Two sources share one inbox folder (`inbox/gacc/`, a release dropped whole):
`gacc` reads table (5), `gacc_imports` table (6); each skips, with a note, the pages it does not read.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlparse

import polars as pl
import requests

from flows.catalogue import Catalogue
from flows.periods import Period, Year, latest_gacc_month
from flows.settings import Settings
from flows.sources import Parsed, ReleaseFile, Source
from flows.sources.gacc import index
from flows.sources.gacc.parse import TABLE_NUMBER, parse_release
from flows.warehouse import PartitionSpec
from schemas.gacc import ChinaCustomsExports, ChinaCustomsImports, ChinaExportsMonthly, ChinaImportsMonthly

MONTHLY = PartitionSpec("indicators/china_exports_monthly")
MONTHLY_IMPORTS = PartitionSpec("indicators/china_imports_monthly")


class Gacc(Source):
    """China's exports of major commodities (rare earths among them), as China reports them."""

    name = "gacc"
    direction = "exports"
    dataset = "china_customs_exports"
    spec = PartitionSpec("clean/china_customs_exports", ("year", "month"), (("month", 2),))
    model = ChinaCustomsExports
    monthly = (MONTHLY, ChinaExportsMonthly)
    suffixes = (".html", ".htm")
    inbox_folder = "gacc"
    replace_key = ("vintage", "source_file")
    latest_key = ("year", "month", "commodity_label", "currency")
    label_columns = ("commodity_label",)  # labels vary in case and spacing between releases
    # Preliminary pages never change once published; a page without its date gets the day
    # rarewatch first saw it.
    vintage_fallback = "first_seen"

    def own_host(self, settings: Settings) -> str | None:
        return urlparse(settings.gacc_base_url).hostname

    def due(self, now: dt.datetime) -> Period:
        return latest_gacc_month(now)

    def discover(self, settings: Settings, http: requests.Session, period: Period) -> list[ReleaseFile]:
        if isinstance(period, Year):  # every release linked for the year
            _, links = index.year_links(settings, http, period.year, self.direction)
            return index.release_files(links, period.year, list(range(2, 13)), self.name, TABLE_NUMBER[self.direction])
        return index.discover(settings, http, period, self.direction, self.name)

    def fetch(self, settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
        return index.fetch(settings, http, ref)

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue) -> Parsed:
        parsed = parse_release(ref, data, self.direction)
        if parsed.skip is None and parsed.vintage is None and ref.published is not None:
            parsed.vintage = ref.published
            parsed.frame = parsed.frame.with_columns(pl.lit(ref.published, dtype=pl.Date).alias("vintage"))
        return parsed

    def recognises(self, head: bytes, name: str) -> bool:
        text = head.decode("utf-8", errors="ignore")
        return bool(_RELEASE_TITLE.search(text)) and name.lower().endswith(self.suffixes)

    def derive(self, latest: pl.DataFrame) -> list[tuple[PartitionSpec, type, pl.DataFrame]]:
        spec, model = self.monthly
        return [(spec, model, monthly_series(latest))]


class GaccImports(Gacc):
    """China's imports of major commodities (table (6)): China buys rare-earth ores and compounds too."""

    name = "gacc_imports"
    direction = "imports"
    dataset = "china_customs_imports"
    spec = PartitionSpec("clean/china_customs_imports", ("year", "month"), (("month", 2),))
    model = ChinaCustomsImports
    monthly = (MONTHLY_IMPORTS, ChinaImportsMonthly)


_RELEASE_TITLE = re.compile(r"\(\s*\d{1,2}\s*\)\s*China['’]?s\s+(Major|Total)", re.I)


def monthly_series(latest: pl.DataFrame) -> pl.DataFrame:
    """The month as published, with YoY where both years are known (see ChinaExportsMonthly)."""
    keys = ["commodity", "currency"]
    base = latest.filter(pl.col("commodity").is_not_null()).with_columns(
        (pl.col("quantity_month") * pl.col("tonnes_per_unit")).alias("quantity_t"),
        (pl.col("quantity_ytd_prior") * pl.col("tonnes_per_unit")).alias("q_prior_ytd_t"),
        pl.col("value_month").alias("value"),
    )
    prev = base.select(*keys, "year", (pl.col("month") + 1).alias("month"),
                       pl.col("q_prior_ytd_t").alias("_pq"), pl.col("value_ytd_prior").alias("_pv"))
    published = base.select(*keys, (pl.col("year") + 1).alias("year"), "month", "jan_feb",
                            pl.col("quantity_t").alias("_q_pub"), pl.col("value").alias("_v_pub"))
    out = (base.join(prev, on=[*keys, "year", "month"], how="left")
           .join(published, on=[*keys, "year", "month", "jan_feb"], how="left"))
    derived_q = pl.when(pl.col("jan_feb")).then(pl.col("q_prior_ytd_t")).otherwise(pl.col("q_prior_ytd_t") - pl.col("_pq"))
    derived_v = pl.when(pl.col("jan_feb")).then(pl.col("value_ytd_prior")).otherwise(pl.col("value_ytd_prior") - pl.col("_pv"))
    out = out.with_columns(
        pl.coalesce("_q_pub", derived_q).alias("quantity_t_prior_year"),
        pl.coalesce("_v_pub", derived_v).alias("value_prior_year"),
    ).with_columns(
        pl.when(pl.col("quantity_t_prior_year") > 0)
        .then(100 * (pl.col("quantity_t") / pl.col("quantity_t_prior_year") - 1)).alias("yoy_quantity_pct"),
        pl.when(pl.col("value_prior_year") > 0)
        .then(100 * (pl.col("value") / pl.col("value_prior_year") - 1)).alias("yoy_value_pct"),
    )
    return out.select(
        *keys, "period_start", "period_end", "jan_feb", "quantity_t", "value",
        # a difference of rounded figures can dip a hair below zero: no such thing as negative exports
        pl.col("quantity_t_prior_year").clip(lower_bound=0.0), pl.col("value_prior_year").clip(lower_bound=0.0),
        "yoy_quantity_pct", "yoy_value_pct", "vintage",
    ).sort(*keys, "period_start")


__all__ = ["Gacc", "GaccImports", "monthly_series"]
