"""Find and download a month's 品別国別表 CSV files on e-Stat's file pages (docs/sources.md, "e-Stat file pages").

The site as it is (public scrapers of the live pages agree on it):
1. the list page filtered by `year` alone (`/stat-search/files?...&tclass2=000001013182&year=YYYY0`;
   `...181` for exports) is a navigation page: no file links, one link per published month
   (`<a class="stat-item_child" href="...&amp;year=20260&amp;month=23070907&amp;result_back=1">7月</a>`);
2. the month page (the same URL with `&month=<8-digit code>`) lists ~22 `article` items, one per HS
   chapter block; inside an item the title (`2026年7月分 品別国別表 (輸入 1-6月：確報、7月：輸入9桁速報)`),
   `調査年月 2026年 7月` and `公開（更新）日 2026-08-31` come before the links
   `file-download?statInfId=NNNNNNNNNNNN&fileKind=1` (CSV; `&` raw or `&amp;`).
The month code is followed from the navigation page; when a month has no link there, the code
is built as `{half}{quarter}{first month of quarter:02}{last month:02}{month:02}` (July `23070907`).
statInfIds change with every release, so they are always read from the pages. A page of another
shape is an error saying what was looked for; the page is kept in `quarantine/pages/`.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
import zipfile
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

from flows.errors import FetchError, LayoutError, LimitExceeded, NotPublished
from flows.httpclient import get, page_text
from flows.periods import Month
from flows.settings import Settings
from flows.sources import READ_ONLY, ReleaseFile
from flows.sources.japan_customs.vintages import parse_title_stages
from flows.warehouse import Warehouse

SOURCE = "japan_customs"

# e-Stat classification of the Trade Statistics (docs/sources.md).
TOUKEI = "00350300"
TSTAT = "000001013141"
TCLASS1 = "000001013180"  # 品別国別表
TCLASS2 = {"import": "000001013182", "export": "000001013181"}
MAX_PAGES = 20  # a month has ~22 files; e-Stat shows up to 100 per page

_FILE_LINK = re.compile(r"file-download\?(?:[^\"'<>\s]*?)statInfId=(\d{12})(?:&amp;|&)fileKind=1")
_ANCHOR = re.compile(r"<a\b[^>]*?href\s*=\s*[\"']([^\"']*)[\"'][^>]*>(.*?)</a>", re.S | re.I)
_MONTH_CODE = re.compile(r"[?&](?:amp;)?month=(\d{8})(?=[&\"'#]|$)")
_ARTICLE = re.compile(r"<article\b.*?</article>", re.S | re.I)
_SURVEY_MONTH = re.compile(r"調査年月\s*(\d{4})\s*年\s*(\d{1,2})\s*月")
_TITLE_MONTH = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月")
_PUBLISHED = re.compile(r"公開[（(]更新[)）]日\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_CHAPTER = re.compile(r"第\s*(\d{1,2})\s*(?:[-－~〜～]\s*(\d{1,2})\s*)?類|Chapters?\s*(\d{1,2})(?:\s*[-–]\s*(\d{1,2}))?",
                      re.I)
_TAG = re.compile(r"<[^>]+>")

LOOKED_FOR_NAV = ("month links (<a class=\"stat-item_child\"> whose href holds month=NNNNNNNN) "
                  "or file links (file-download?statInfId=NNNNNNNNNNNN&fileKind=1)")
LOOKED_FOR_MONTH = ("file articles (<article> items holding 調査年月, 公開（更新）日 and a "
                    "file-download?statInfId=NNNNNNNNNNNN&fileKind=1 CSV link)")


@dataclass(frozen=True)
class ListedFile:
    """One CSV file as a month page lists it."""

    stat_inf_id: str
    survey_month: Month | None
    published: dt.date | None
    title: str
    chapters: str | None  # "28-38", or None when the title names no chapter block
    stages: dict[int, str]  # month -> release stage, from the title


def month_code(month: Month) -> str:
    """e-Stat's 8-digit month code: half, quarter, first and last month of the quarter, month."""
    q = (month.month - 1) // 3 + 1
    half = 1 if month.month <= 6 else 2
    return f"{half}{q}{3 * q - 2:02d}{3 * q:02d}{month.month:02d}"


def list_page_url(settings: Settings, flow: str, year: int, page: int = 1, code: str | None = None) -> str:
    url = (f"{settings.estat_base_url.rstrip('/')}/stat-search/files?page={page}&layout=datalist"
           f"&toukei={TOUKEI}&tstat={TSTAT}&cycle=1&tclass1={TCLASS1}&tclass2={TCLASS2[flow]}"
           f"&tclass3val=0&year={year}0")
    return url + (f"&month={code}&result_back=1" if code else "")


def download_url(settings: Settings, stat_inf_id: str) -> str:
    return f"{settings.estat_base_url.rstrip('/')}/stat-search/file-download?statInfId={stat_inf_id}&fileKind=1"


def _text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).replace("\xa0", " ").split())


def month_links(page: str, base_url: str, year: int) -> dict[int, str]:
    """{month: URL of its month page} from a year's navigation page."""
    out: dict[int, str] = {}
    for href, label in _ANCHOR.findall(page):
        code = _MONTH_CODE.search(href)
        if not code:
            continue
        href = html.unescape(href)
        y = re.search(r"[?&]year=(\d{4})0", href)
        if y and int(y.group(1)) != year:
            continue
        month = int(code.group(1)[-2:])
        named = re.search(r"(\d{1,2})\s*月", _text(label))
        if named and int(named.group(1)) != month:
            continue  # a code that does not fit its label: not a month link as we know them
        if 1 <= month <= 12:
            out.setdefault(month, urljoin(base_url, href))
    return out


def parse_articles(page: str) -> list[ListedFile]:
    """Every CSV file listed on a month page, with its metadata (see the module docstring).

    Items are the page's `article` elements; a page without them is read as text between one
    file link and the previous one (older datalist markup)."""
    chunks = _ARTICLE.findall(page)
    if not chunks:
        chunks, prev = [], 0
        for m in _FILE_LINK.finditer(page):
            chunks.append(page[prev:m.end()])
            prev = m.end()
    out: dict[str, ListedFile] = {}
    for chunk in chunks:
        link = _FILE_LINK.search(chunk)
        if not link:
            continue  # an item without a CSV link (Excel or PDF only)
        meta = chunk[:link.start()]
        text = _text(meta)
        pieces = [p for p in (_text(x) for x in re.split(r"<[^>]+>", meta)) if p]
        title = next((p for p in pieces if "品別国別表" in p), None) or next(
            (p for p in pieces if _TITLE_MONTH.search(p) and "調査年月" not in p), "")
        survey = _SURVEY_MONTH.search(text) or _TITLE_MONTH.search(title)
        month = Month(int(survey.group(1)), int(survey.group(2))) if survey and 1 <= int(survey.group(2)) <= 12 else None
        pub = _PUBLISHED.search(text) or (list(_DATE.finditer(text)) or [None])[-1]
        published = None
        if pub:
            try:
                published = dt.date(int(pub.group(1)), int(pub.group(2)), int(pub.group(3)))
            except ValueError:
                published = None
        ch = _CHAPTER.search(title) or _CHAPTER.search(text)
        chapters = None
        if ch:
            a, b = (ch.group(1), ch.group(2)) if ch.group(1) else (ch.group(3), ch.group(4))
            chapters = f"{int(a):02d}-{int(b):02d}" if b else f"{int(a):02d}"
        sid = link.group(1)
        out.setdefault(sid, ListedFile(sid, month, published, title, chapters, parse_title_stages(title)))
    return list(out.values())


def _has_next_page(page_html: str, page: int) -> bool:
    return re.search(rf"[?&](?:amp;)?page={page + 1}(?:&|\"|')", page_html) is not None


def _keep(settings: Settings, url: str, body: str, what: str) -> str | None:
    """Keep an unrecognised page in the warehouse's quarantine (best effort: the error matters more)."""
    if READ_ONLY.get():
        return None
    name = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}_{what}.html"
    try:
        return Warehouse(settings.warehouse).keep_page(SOURCE, name, body.encode("utf-8"))
    except OSError:
        return None


def _paged(settings: Settings, http: requests.Session, first_url: str) -> tuple[list[ListedFile], str]:
    """Files of a list page and the pages after it; (files, first page's text)."""
    files: list[ListedFile] = []
    first_body = ""
    for page in range(1, MAX_PAGES + 1):
        url = re.sub(r"([?&])page=\d+", rf"\g<1>page={page}", first_url)
        body = page_text(get(http, url, source=SOURCE))
        if page == 1:
            first_body = body
        files.extend(parse_articles(body))
        if not _has_next_page(body, page):
            break
    return files, first_body


def year_months(settings: Settings, http: requests.Session, flow: str, year: int) -> tuple[str, str, dict[int, str]]:
    """(navigation page URL, its text, {month: month page URL}) for a flow and year."""
    url = list_page_url(settings, flow, year)
    body = page_text(get(http, url, source=SOURCE))
    return url, body, month_links(body, url, year)


def month_files(settings: Settings, http: requests.Session, flow: str, period: Month) -> list[ListedFile]:
    """The CSV files of one flow and month, following the site: navigation page, month page."""
    nav_url, nav, links = year_months(settings, http, flow, period.year)
    if not links and not _FILE_LINK.search(nav):
        if "該当するデータがありません" in nav or "該当データはありません" in nav:  # e-Stat's "no data" answer
            raise NotPublished(SOURCE, nav_url, f"e-Stat lists no {flow} files for {period.year} yet")
        raise LayoutError(SOURCE, nav_url, LOOKED_FOR_NAV, _keep(settings, nav_url, nav, f"{flow}_{period.year}_nav"))
    if links:
        month_url = links.get(period.month) or list_page_url(settings, flow, period.year, code=month_code(period))
        listed, body = _paged(settings, http, month_url)
        if not listed:
            published = sorted(links)
            if published and period.month not in links:
                raise NotPublished(SOURCE, nav_url, f"no {flow} files published for {period} yet (months linked: "
                                 + ", ".join(f"{period.year}-{m:02d}" for m in published) + ")")
            raise LayoutError(SOURCE, month_url, LOOKED_FOR_MONTH,
                              _keep(settings, month_url, body, f"{flow}_{period}_month"))
    else:  # a year page that lists the files itself (older markup): read it as a month page
        listed, _ = _paged(settings, http, nav_url)
    wanted = [f for f in listed if f.survey_month == period]
    if not wanted:
        months = sorted({str(f.survey_month) for f in listed if f.survey_month})
        raise NotPublished(SOURCE, nav_url, f"no {flow} files listed for {period} (listed months: "
                                          f"{', '.join(months) or 'none'})")
    return wanted


def discover(settings: Settings, http: requests.Session, period: Month) -> list[ReleaseFile]:
    """The import and export files of `period`'s release, with the stage of every month they carry."""
    refs: list[ReleaseFile] = []
    for flow in ("import", "export"):
        for f in month_files(settings, http, flow, period):
            block = f"ch{f.chapters}_" if f.chapters else ""
            refs.append(ReleaseFile(
                source=SOURCE, name=f"{flow}_{period}_{block}{f.stat_inf_id}.csv",
                url=download_url(settings, f.stat_inf_id), published=f.published, period=period,
                stages=tuple(sorted(f.stages.items())), note=f.title or None))
    return refs


def unzip_one_csv(settings: Settings, url: str, data: bytes) -> bytes:
    """The one CSV file of a zip archive, within the limits `max_inflated_mb` and
    `max_inflate_ratio` (checked on the archive's stated sizes, then again while inflating, since
    a hostile archive can understate them)."""
    limits = settings.limits(SOURCE)
    cap, ratio = int(limits["max_inflated_mb"] * 2**20), limits["max_inflate_ratio"]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = [i for i in z.infolist() if i.filename.lower().endswith(".csv")]
            if len(members) != 1:
                raise FetchError(SOURCE, url, f"zip archive holds {len(members)} CSV files, expected 1")
            info = members[0]
            if info.file_size > cap:
                raise LimitExceeded(SOURCE, url, f"{info.filename} inflates to {info.file_size:,} bytes, more than "
                                    f"max_inflated_mb={limits['max_inflated_mb']:g}", setting="RAREWATCH_MAX_INFLATED_MB")
            if info.file_size > ratio * max(info.compress_size, 1):
                raise LimitExceeded(SOURCE, url, f"{info.filename} inflates {info.file_size / max(info.compress_size, 1):,.0f} "
                                    f"times (zip bomb?), more than max_inflate_ratio={ratio:g}",
                                    setting="RAREWATCH_MAX_INFLATE_RATIO")
            out, size = [], 0
            with z.open(info) as f:
                while chunk := f.read(1 << 20):
                    size += len(chunk)
                    if size > cap or size > ratio * max(info.compress_size, 1):
                        raise LimitExceeded(SOURCE, url, f"{info.filename} inflated past its stated size and the "
                                            f"limits ({size:,} bytes so far)", setting="RAREWATCH_MAX_INFLATED_MB")
                    out.append(chunk)
            return b"".join(out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, OSError) as e:
        raise FetchError(SOURCE, url, f"corrupt zip archive ({type(e).__name__}: {e})") from None


def fetch(settings: Settings, http: requests.Session, ref: ReleaseFile) -> bytes:
    """The CSV bytes of one file (unzipped when e-Stat serves a zip archive)."""
    data = get(http, ref.url, source=SOURCE).content
    if not data:
        raise FetchError(SOURCE, ref.url, "empty response")
    if data[:2] == b"PK":
        return unzip_one_csv(settings, ref.url, data)
    head = data[:200].lstrip().lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        raise FetchError(SOURCE, ref.url, "got an HTML page instead of a CSV file")
    return data
