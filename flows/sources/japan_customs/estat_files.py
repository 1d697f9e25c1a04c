"""Find and download a month's 品別国別表 CSV files on e-Stat's file pages (REFERENCE 1.3).

The list page (`/stat-search/files?...&tclass2=000001013182` imports, `...181` exports,
`&year=YYYY0`) lists ~22 files per monthly release, split by HS chapter block; each links to
`/stat-search/file-download?statInfId=<12 digits>&fileKind=1` (1 = CSV). statInfIds change
with every release, so they are always read from the list page. The page's markup is not a
documented interface: each file's survey month (`2020年7月`) and publication date
(`2020-08-31`) are read from the text between one file link and the previous one, and a page
with no recognisable file link is an error, never an empty release.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import zipfile
from dataclasses import dataclass

import requests

from flows.errors import FetchError
from flows.httpclient import get
from flows.periods import Month
from flows.settings import Settings
from flows.sources import ReleaseFile

SOURCE = "japan_customs"

# e-Stat classification of the Trade Statistics (REFERENCE 1.3).
TOUKEI = "00350300"
TSTAT = "000001013141"
TCLASS1 = "000001013180"  # 品別国別表
TCLASS2 = {"import": "000001013182", "export": "000001013181"}
MAX_PAGES = 20  # a month has ~22 files; e-Stat shows up to 100 per page

_FILE_LINK = re.compile(r"file-download\?(?:[^\"'<>\s]*?)statInfId=(\d{12})(?:&amp;|&)fileKind=1")
_SURVEY_MONTH = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月")
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class ListedFile:
    stat_inf_id: str
    survey_month: Month | None
    published: dt.date | None
    title: str


def list_page_url(settings: Settings, flow: str, year: int, page: int) -> str:
    return (
        f"{settings.estat_base_url.rstrip('/')}/stat-search/files?page={page}&layout=datalist"
        f"&toukei={TOUKEI}&tstat={TSTAT}&cycle=1&tclass1={TCLASS1}&tclass2={TCLASS2[flow]}"
        f"&tclass3val=0&year={year}0"
    )


def download_url(settings: Settings, stat_inf_id: str) -> str:
    return f"{settings.estat_base_url.rstrip('/')}/stat-search/file-download?statInfId={stat_inf_id}&fileKind=1"


def parse_file_list(page: str) -> list[ListedFile]:
    """Every CSV file linked from a list page, with its survey month and publication date."""
    out: dict[str, ListedFile] = {}
    prev = 0
    for m in _FILE_LINK.finditer(page):
        chunk = html.unescape(_TAG.sub(" ", page[prev:m.start()]))
        prev = m.end()
        months = _SURVEY_MONTH.findall(chunk)
        dates = [d for d in _DATE.findall(chunk) if 1 <= int(d[1]) <= 12]
        survey = Month(int(months[-1][0]), int(months[-1][1])) if months and 1 <= int(months[-1][1]) <= 12 else None
        published = dt.date(*map(int, dates[-1])) if dates else None
        title = " ".join(chunk.split())[-200:]
        sid = m.group(1)
        if sid not in out:
            out[sid] = ListedFile(sid, survey, published, title)
    return list(out.values())


def _has_next_page(page_html: str, page: int) -> bool:
    return re.search(rf"[?&](?:amp;)?page={page + 1}(?:&|\"|')", page_html) is not None


def discover(settings: Settings, http: requests.Session, period: Month) -> list[ReleaseFile]:
    """The import and export files of `period`'s release, from e-Stat's list pages."""
    refs: list[ReleaseFile] = []
    for flow in ("import", "export"):
        listed: list[ListedFile] = []
        for page in range(1, MAX_PAGES + 1):
            url = list_page_url(settings, flow, period.year, page)
            body = get(http, url, source=SOURCE, timeout=settings.http_timeout).text
            found = parse_file_list(body)
            if page == 1 and not found:
                raise FetchError(SOURCE, url, "list page has no CSV file link (statInfId ... fileKind=1); "
                                              "the page layout may have changed")
            listed.extend(found)
            if not _has_next_page(body, page):
                break
        wanted = [f for f in listed if f.survey_month == period]
        if not wanted:
            months = sorted({str(f.survey_month) for f in listed if f.survey_month})
            raise FetchError(SOURCE, list_page_url(settings, flow, period.year, 1),
                             f"no {flow} files listed for {period} (listed months: {', '.join(months) or 'none'})")
        refs.extend(
            ReleaseFile(source=SOURCE, name=f"{flow}_{period}_{f.stat_inf_id}.csv",
                        url=download_url(settings, f.stat_inf_id), published=f.published, period=period)
            for f in wanted
        )
    return refs


def fetch(settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
    """The CSV bytes of one file (unzipped when e-Stat serves a zip archive)."""
    data = get(http, ref.url, source=SOURCE, timeout=settings.http_timeout).content
    if not data:
        raise FetchError(SOURCE, ref.url, "empty response")
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                members = [n for n in z.namelist() if n.lower().endswith(".csv")]
                if len(members) != 1:
                    raise FetchError(SOURCE, ref.url, f"zip archive holds {len(members)} CSV files, expected 1")
                return z.read(members[0])
        except zipfile.BadZipFile:
            raise FetchError(SOURCE, ref.url, "corrupt zip archive") from None
    head = data[:200].lstrip().lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        raise FetchError(SOURCE, ref.url, "got an HTML page instead of a CSV file")
    return data
