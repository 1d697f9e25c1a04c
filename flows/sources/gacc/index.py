"""Find China Customs preliminary releases from the index pages (docs/sources.md, "China Customs").

`statics/report/preliminary{YYYY}.html` (past years) or `preliminary.html` (the current year)
hold one table row per section and currency; table (5) major exports has a row "(in CNY)" and
a row "(in USD)", each with month links to `Statics/<uuid>.html`. January has no link: it is
published with February as one Jan-Feb release, linked under Feb.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlparse

import requests

from flows.errors import FetchError, LayoutError, NotPublished
from flows.httpclient import get, page_text
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


def release_links(page: str, direction: str = "exports") -> dict[tuple[str, int], str]:
    """{(currency, month): url} of table (5) major exports (or (6) major imports) in an index page."""
    out: dict[tuple[str, int], str] = {}
    number = {"exports": 5, "imports": 6}[direction]
    for row in _ROW.findall(page):
        text = " ".join(_TAG.sub(" ", row).split())
        if not re.search(rf"\({number}\).*major\s+{direction}", text, re.I):
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


def shown_year(page: str) -> int | None:
    """The year an index page shows: its year selector's selected option, else the first."""
    select = re.search(r'id="preliminarysel".*?</select>', page, re.S | re.I)
    if not select:
        return None
    options = re.findall(r"<option([^>]*)>", select.group(0), re.I)
    chosen = next((o for o in options if re.search(r"\bselected\b", o, re.I)), options[0] if options else "")
    value = re.search(r'value\s*=\s*["\']?(\d{4})', chosen)
    return int(value.group(1)) if value else None


def year_links(settings: Settings, http: requests.Session, year: int,
               direction: str = "exports") -> tuple[str, dict[tuple[str, int], str]]:
    """(index URL, {(currency, month): release URL}) for a year: preliminary{YYYY}.html, else the
    current-year preliminary.html when it is that year's."""
    tried = []
    for url in index_urls(settings, year):
        try:
            page = page_text(get(http, url, source=SOURCE))
        except FetchError as e:
            tried.append(str(e))
            continue
        shown = shown_year(page)
        if url.endswith("/preliminary.html") and shown and shown != year:
            tried.append(f"{url} shows {shown}")  # the current-year page is another year's
            continue
        links = release_links(page, direction)
        if not links:
            number = {"exports": 5, "imports": 6}[direction]
            raise LayoutError(SOURCE, url, f"index rows titled '({number}) China's Major {direction.title()} by "
                                           "Quantity and Value (in CNY|USD)' with month links")
        base = settings.gacc_base_url.rstrip("/") + "/"
        return url, {k: urljoin(base, urlparse(href).path.lstrip("/")) for k, href in links.items()}
    # the current-year page answered for another year: this year's index is not out yet
    kind = NotPublished if any(" shows " in t for t in tried) else FetchError
    raise kind(SOURCE, index_urls(settings, year)[0], "no index page: " + "; ".join(tried))


def release_files(links: dict[tuple[str, int], str], year: int, months: list[int],
                  source: str = SOURCE, table: int = 5) -> list[ReleaseFile]:
    return [ReleaseFile(source=source, name=f"table{table}_{year}-{m:02d}_{cur.lower()}.html", url=url,
                        period=Month(year, m))
            for (cur, m), url in sorted(links.items(), key=lambda kv: (kv[0][1], kv[0][0])) if m in months]


def discover(settings: Settings, http: requests.Session, period: Month, direction: str = "exports",
             source: str = SOURCE) -> list[ReleaseFile]:
    """Table (5) (or (6)) pages, CNY and USD, for a month; January is found as the Jan-Feb release."""
    month = 2 if period.month == 1 else period.month
    table = {"exports": 5, "imports": 6}[direction]
    url, links = year_links(settings, http, period.year, direction)
    found = release_files(links, period.year, [month], source, table)
    if not found:
        raise NotPublished(SOURCE, url, f"no table ({table}) release linked for {period} yet "
                                      f"(linked months: {sorted({m for _, m in links})})")
    return found


def fetch(settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
    data = get(http, ref.url, source=SOURCE).content
    if not data.strip():
        raise FetchError(SOURCE, ref.url, "empty page")
    return data
