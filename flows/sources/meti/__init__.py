"""METI/ANRE 非鉄金属等需給動態統計 (non-ferrous metals supply and demand), monthly, 2012-2020.

find releases (`discover`: the results page links one page per year, the workbooks sit there;
or the inbox) ->
fetch bytes -> parse (`parse.parse_workbook`: the 「(1)需給総括」 table) -> validate
(`schemas.meti.MetiSupplyDemand`). The survey was abolished in December 2020 (docs/sources.md): a
later period is refused before anything is fetched.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urljoin, urlparse

import requests

from flows.catalogue import Catalogue
from flows.errors import FetchError, LayoutError, NotPublished
from flows.httpclient import get, page_text
from flows.periods import Month, Period, Year
from flows.settings import Settings
from flows.sources import Parsed, ReleaseFile, Source
from flows.sources.meti.parse import LAST_MONTH, parse_workbook, period_in
from flows.warehouse import PartitionSpec
from schemas.meti import MetiSupplyDemand

RESULTS_PAGE = "/statistics/coal_and_minerals/cm002/results.html"  # the survey's results page
_ANCHOR = re.compile(r"<a\b[^>]*?href\s*=\s*[\"']([^\"']+)[\"'][^>]*>(.*?)</a>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def _anchors(page: str, base: str) -> list[tuple[str, str]]:
    """(absolute URL, link text) of every link on the site's own host (never another host's)."""
    host = urlparse(base).netloc
    out = []
    for href, text in _ANCHOR.findall(page):
        url = urljoin(base, html.unescape(href))
        if urlparse(url).netloc == host:
            out.append((url, " ".join(_TAG.sub(" ", html.unescape(text)).split())))
    return out


def year_pages(page: str, base: str) -> dict[int, str]:
    """{year: its 統計表一覧 page} from the results page (links worded 令和2年, 平成24年, 2019年)."""
    out: dict[int, str] = {}
    for url, text in _anchors(page, base):
        if re.search(r"\.xlsx?$", url, re.I):
            continue
        when = period_in(text)
        if when and when[1] is None and re.fullmatch(r"\s*(令和|平成)?\s*(元|\d{1,4})\s*年(度)?(分)?\s*", text):
            out.setdefault(when[0], url)
    return out


def workbooks(page: str, base: str) -> list[tuple[str, str, tuple[int, int | None] | None]]:
    """(URL, link text, (year, month or None)) of every workbook linked on a year page."""
    out = []
    for url, text in _anchors(page, base):
        if re.search(r"\.xlsx?$", urlparse(url).path, re.I):
            out.append((url, text, period_in(text) or period_in(url.rsplit("/", 1)[-1])))
    return out


class Meti(Source):
    """Monthly production, imports, consumption and stocks of Ni, Co, W, Mo, Sb and others."""

    name = "meti"
    dataset = "meti_supply_demand"
    spec = PartitionSpec("clean/meti_supply_demand", ("year",))
    model = MetiSupplyDemand
    suffixes = (".xlsx", ".xls")
    replace_key = ("vintage", "source_file")
    latest_key = ("item", "freq", "year", "month")
    vintage_fallback = "first_seen"

    def own_host(self, settings: Settings) -> str | None:
        return urlparse(settings.meti_base_url).hostname

    def due(self, now: dt.datetime) -> Period | None:
        return None  # nothing new since the survey ended in December 2020

    def recognises(self, head: bytes, name: str) -> bool:
        """An Excel workbook (.xlsx zip or .xls OLE file): the only workbooks rarewatch reads are METI's."""
        return name.lower().endswith(self.suffixes) and (head[:2] == b"PK" or head[:4] == b"\xd0\xcf\x11\xe0")

    def discover(self, settings: Settings, http: requests.Session, period: Period) -> list[ReleaseFile]:
        """The results page -> the year's page -> its workbooks (the month's, or all for a year)."""
        year = period.year
        if (Month(year, 1) if isinstance(period, Year) else period) > LAST_MONTH:
            raise FetchError(self.name, settings.meti_base_url, f"no data for {period}: the survey was abolished "
                                                                "in December 2020")
        url = settings.meti_base_url.rstrip("/") + RESULTS_PAGE
        page = page_text(get(http, url, source=self.name))
        years = year_pages(page, url)
        if not years:
            raise LayoutError(self.name, url, "links to one page per year (統計表一覧: 令和2年 ... 平成24年)")
        if year not in years:
            raise NotPublished(self.name, url, f"no page for {year} linked (years: {sorted(years)})")
        year_url = years[year]
        listed = workbooks(page_text(get(http, year_url, source=self.name)), year_url)
        if not listed:
            raise LayoutError(self.name, year_url, "workbook links (.xlsx or .xls) on the year's page")
        wanted = [(u, t) for u, t, when in listed if when and when[0] == year
                  and (isinstance(period, Year) or when[1] == period.month)]
        if not wanted:
            raise NotPublished(self.name, year_url, f"no workbook for {period} linked ({len(listed)} workbooks)")
        return [ReleaseFile(self.name, u.rsplit("/", 1)[-1], u, note=t or None) for u, t in wanted]

    def fetch(self, settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
        return get(http, ref.url, source=self.name).content

    def parse(self, ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue) -> Parsed:
        return parse_workbook(ref, data)
