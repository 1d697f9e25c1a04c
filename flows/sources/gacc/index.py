"""Find China Customs preliminary releases from the index pages (REFERENCE 2).

`statics/report/preliminary{YYYY}.html` (past years) or `preliminary.html` (the current year)
hold one table row per section and currency; table (5) major exports has a row "(in CNY)" and
a row "(in USD)", each with month links to `Statics/<uuid>.html`. January has no link: it is
published with February as one Jan-Feb release, linked under Feb.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import requests

from flows.errors import FetchError
from flows.httpclient import get
from flows.periods import Month
from flows.settings import Settings
from flows.sources import ReleaseFile

SOURCE = "gacc"
_ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S | re.I)
_LINK = re.compile(r"<a\s[^>]*href\s*=\s*[\"']?([^\"'\s>]+)[\"']?[^>]*>(.*?)</a>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_ABBR = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def index_urls(settings: Settings, year: int) -> list[str]:
    base = settings.gacc_base_url.rstrip("/")
    return [f"{base}/statics/report/preliminary{year}.html", f"{base}/statics/report/preliminary.html"]


def release_links(page: str) -> dict[tuple[str, int], str]:
    """{(currency, month): url} of table (5) major exports in an index page."""
    out: dict[tuple[str, int], str] = {}
    for row in _ROW.findall(page):
        text = " ".join(_TAG.sub(" ", row).split())
        if not re.search(r"\(5\).*major\s+exports", text, re.I):
            continue
        cur = re.search(r"\(in\s+(CNY|USD|RMB)\)", text, re.I)
        if not cur:
            continue
        currency = "CNY" if cur.group(1).upper() in ("CNY", "RMB") else "USD"
        for href, text in _LINK.findall(row):
            # " Feb.", "February", "Jan.-Feb.": the last month named is the release's end month
            words = [w.lower()[:3] for w in re.findall(r"[A-Za-z]+", _TAG.sub(" ", text))]
            months = [_ABBR.index(w) + 1 for w in words if w in _ABBR]
            if months:
                out[(currency, months[-1])] = href
    return out


def year_links(settings: Settings, http: requests.Session, year: int) -> tuple[str, dict[tuple[str, int], str]]:
    """(index URL, {(currency, month): release URL}) for a year: preliminary{YYYY}.html, else the
    current-year preliminary.html when it is that year's."""
    tried = []
    for url in index_urls(settings, year):
        try:
            page = get(http, url, source=SOURCE, timeout=settings.http_timeout).text
        except FetchError as e:
            tried.append(str(e))
            continue
        shown = re.search(r'id="preliminarysel".*?<option[^>]*value="(\d{4})"', page, re.S)
        if url.endswith("/preliminary.html") and shown and int(shown.group(1)) != year:
            tried.append(f"{url} shows {shown.group(1)}")  # the current-year page is another year's
            continue
        links = release_links(page)
        if not links:
            raise FetchError(SOURCE, url, "index page lists no table (5) major-exports links; layout changed?")
        base = settings.gacc_base_url.rstrip("/") + "/"
        return url, {k: urljoin(base, urlparse(href).path.lstrip("/")) for k, href in links.items()}
    raise FetchError(SOURCE, index_urls(settings, year)[0], "no index page: " + "; ".join(tried))


def release_files(links: dict[tuple[str, int], str], year: int, months: list[int]) -> list[ReleaseFile]:
    return [ReleaseFile(source=SOURCE, name=f"table5_{year}-{m:02d}_{cur.lower()}.html", url=url,
                        period=Month(year, m))
            for (cur, m), url in sorted(links.items(), key=lambda kv: (kv[0][1], kv[0][0])) if m in months]


def discover(settings: Settings, http: requests.Session, period: Month) -> list[ReleaseFile]:
    """Table (5) pages (CNY and USD) for a month; January is found as the Jan-Feb release."""
    month = 2 if period.month == 1 else period.month
    url, links = year_links(settings, http, period.year)
    found = release_files(links, period.year, [month])
    if not found:
        raise FetchError(SOURCE, url, f"no table (5) release linked for {period} yet "
                                      f"(linked months: {sorted({m for _, m in links})})")
    return found


def fetch(settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
    data = get(http, ref.url, source=SOURCE, timeout=settings.http_timeout).content
    if not data.strip():
        raise FetchError(SOURCE, ref.url, "empty page")
    return data
