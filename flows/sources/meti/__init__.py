"""METI/ANRE 非鉄金属等需給動態統計 (non-ferrous metals supply and demand), monthly, 2012-2020.

find releases (`discover`: the workbook links on the published results page, or the inbox) ->
fetch bytes -> parse (`parse.parse_workbook`: the 「(1)需給総括」 table) -> validate
(`schemas.meti.MetiSupplyDemand`). The survey was abolished in December 2020 (REFERENCE 4): a
later period is refused before anything is fetched.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urljoin

import requests

from flows.catalogue import Catalogue
from flows.errors import FetchError
from flows.httpclient import get
from flows.periods import Month, Period, Year
from flows.settings import Settings
from flows.sources import Parsed, ReleaseFile, Source
from flows.sources.meti.parse import LAST_MONTH, parse_workbook
from flows.warehouse import PartitionSpec
from schemas.meti import MetiSupplyDemand

RESULTS_PAGE = "/statistics/coal_and_minerals/cm002/results.html"  # [I]: the survey's results page
_LINK = re.compile(r"href\s*=\s*[\"']([^\"']+\.xlsx?)[\"']", re.I)


class Meti(Source):
    """Monthly production, imports, consumption and stocks of Ni, Co, W, Mo, Sb and others."""

    name = "meti"
    dataset = "meti_supply_demand"
    spec = PartitionSpec("clean/meti_supply_demand", ("year",))
    model = MetiSupplyDemand
    suffixes = (".xlsx", ".xls")
    replace_key = ("vintage", "source_file")
    latest_key = ("metal", "year", "month")
    vintage_fallback = "first_seen"

    def due(self, now: dt.datetime) -> Period | None:
        return None  # nothing new since the survey ended in December 2020

    def recognises(self, head: bytes, name: str) -> bool:
        """An Excel workbook (.xlsx zip or .xls OLE file): the only workbooks rarewatch reads are METI's."""
        return name.lower().endswith(self.suffixes) and (head[:2] == b"PK" or head[:4] == b"\xd0\xcf\x11\xe0")

    def discover(self, settings: Settings, http: requests.Session, period: Period) -> list[ReleaseFile]:
        year = period.year
        if (Month(year, 1) if isinstance(period, Year) else period) > LAST_MONTH:
            raise FetchError(self.name, settings.meti_base_url, f"no data for {period}: the survey was abolished "
                                                                "in December 2020")
        url = settings.meti_base_url.rstrip("/") + RESULTS_PAGE
        page = get(http, url, source=self.name, timeout=settings.http_timeout).text
        links = [urljoin(url, h) for h in _LINK.findall(page)]
        wanted = [u for u in links if str(year) in u.rsplit("/", 1)[-1]]
        if not wanted:
            raise FetchError(self.name, url, f"no workbook for {year} linked ({len(links)} workbook links on the page)")
        return [ReleaseFile(self.name, u.rsplit("/", 1)[-1], u) for u in wanted]

    def fetch(self, settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
        return get(http, ref.url, source=self.name, timeout=settings.http_timeout).content

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue) -> Parsed:
        return parse_workbook(ref, data)
