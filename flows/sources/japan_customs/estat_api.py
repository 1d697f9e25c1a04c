"""Japan Customs through the e-Stat API v3.0 (docs/sources.md), used when RAREWATCH_ESTAT_APP_ID is set.

The 品別国別表 database tables (one per five years; time = year, months in `cat02`):
`getMetaInfo` lists the 9-digit codes (`cat01`) and the measure items (`cat02`); the items are
resolved by their *names* at run time (quantity 1/2 and value for each month and the year, and
the units), never by hard-coded item codes. `getStatsData` is then asked for the catalogue's
codes only (`cdCat01`, at most 100 a call), paged with `RESULT_INF.NEXT_KEY` -> `startPosition`.
Quirks: `VALUE` and `CLASS` may be a single object instead of a list; `$` is a string and may be
`-`, `X`, `…`, `***` (null, never 0); `RESULT.STATUS != 0` is an error carrying `ERROR_MSG`;
`area` = "5" + 4-digit country code; `time` = `YYYY000000`.
Unit values are full-width (`ＫＧ`): normalised with NFKC before any comparison. The vintage is the
table's `UPDATED_DATE`; the stage of each month comes from the table's description when it states
it, else from the release calendar (docs/sources.md, "e-Stat API").
The raw zone keeps one JSON document per request: `{"meta": <getMetaInfo>, "pages": [<getStatsData>...]}`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from dataclasses import replace
from urllib.parse import urlencode

import polars as pl
import requests

from flows.catalogue import Catalogue
from flows.errors import FetchError, LayoutError, ReleaseFileError
from flows.httpclient import get, redact
from flows.periods import Month
from flows.settings import Settings
from flows.sources import Parsed, ReleaseFile
from flows.sources.japan_customs.vintages import parse_title_stages, stage_of_word
from schemas.japan_customs import MEASURES, MONTH_NAMES

SOURCE = "japan_customs"
# Database tables of the 品別国別表, one per five years: (first year, last year, statsDataId)
# (docs/sources.md, "e-Stat API"). A year outside them is looked up with getStatsList.
TABLES = {
    "import": [(2001, 2005, "0003228183"), (2006, 2010, "0003228184"), (2011, 2015, "0003228185"),
               (2016, 2020, "0003313966"), (2021, 2025, "0003425294"), (2026, 2030, "0004049326")],
    "export": [(2001, 2005, "0003228116"), (2006, 2010, "0003228117"), (2011, 2015, "0003228118"),
               (2016, 2020, "0003313965"), (2021, 2025, "0003425293"), (2026, 2030, "0004049306")],
}
FIRST_YEAR = 2001  # the API's 品別国別表 tables start in 2001 (earlier years: the CSV files)
STATS_CODE = "00350300"  # 貿易統計
CODES_PER_CALL = 100
MAX_PAGES = 200
NULL_TOKENS = {"-", "X", "x", "…", "...", "***", "*", ""}
UNPUBLISHED = "\x00"  # marks a token cell through the pivot, where an absent cell becomes null
_EN_MONTHS = {m: i + 1 for i, m in enumerate(MONTH_NAMES)}


def table_id(flow: str, year: int) -> str | None:
    """The built-in statsDataId of a flow's table holding `year`, or None (then: `find_table`)."""
    if year < FIRST_YEAR:
        raise FetchError(SOURCE, "e-Stat API", f"no 品別国別表 database table for {year} (API tables start in "
                                               f"{FIRST_YEAR}; earlier years come as CSV files)")
    return next((tid for first, last, tid in TABLES[flow] if first <= year <= last), None)


_FLOW_WORD = {"import": "輸入", "export": "輸出"}


def _text_of(x: object) -> str:
    """e-Stat gives some fields as {"@no": ..., "$": text}."""
    return str(x.get("$", "")) if isinstance(x, dict) else str(x or "")


def find_table(settings: Settings, http: requests.Session, flow: str, year: int) -> str:
    """statsDataId of the 品別国別表 table of a flow holding `year`, from getStatsList."""
    doc = _call(settings, http, "getStatsList", {"statsCode": STATS_CODE, "searchWord": "品別国別表"})
    tables = listify(doc.get("GET_STATS_LIST", {}).get("DATALIST_INF", {}).get("TABLE_INF"))
    for t in tables:
        title = unicodedata.normalize("NFKC", " ".join(_text_of(t.get(k)) for k in ("TITLE", "STATISTICS_NAME")))
        if "品別国別表" not in title or _FLOW_WORD[flow] not in title:
            continue
        span = re.search(r"(\d{4})(?:\d{2})?\s*-\s*(\d{4})", str(t.get("SURVEY_DATE", ""))) or \
            re.search(r"(\d{4})\s*年?\s*[-~〜～]\s*(\d{4})", title)
        if span and int(span.group(1)) <= year <= int(span.group(2)):
            return str(t["@id"])
    raise FetchError(SOURCE, f"{settings.estat_api_base_url.rstrip('/')}/getStatsList",
                     f"no 品別国別表 {_FLOW_WORD[flow]} table for {year} among {len(tables)} tables listed")


def _call(settings: Settings, http: requests.Session, method: str, params: dict) -> dict:
    """One API call; STATUS != 0 is an error. The appId is sent but never shown."""
    app_id = settings.estat_app_id.get_secret_value() if settings.estat_app_id else ""
    url = f"{settings.estat_api_base_url.rstrip('/')}/{method}?{urlencode(params)}"
    r = get(http, url + f"&appId={app_id}", source=SOURCE, redact=(app_id,))
    try:
        doc = r.json()
    except ValueError:
        raise FetchError(SOURCE, url, "answer is not JSON") from None
    root = doc.get("GET_META_INFO") or doc.get("GET_STATS_DATA") or doc.get("GET_STATS_LIST") or {}
    result = root.get("RESULT", {})
    if str(result.get("STATUS", "")) not in ("0",):
        # the server's own text may echo the request, appId included: redacted before it goes anywhere
        message = redact(str(result.get("ERROR_MSG", "?")), (app_id,))[:300]
        raise FetchError(SOURCE, url, f"e-Stat API STATUS {redact(str(result.get('STATUS')), (app_id,))}: {message}")
    return doc


def listify(x: object) -> list:
    """e-Stat gives a single object where a list has one element."""
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def class_objs(doc: dict) -> dict[str, list[dict]]:
    root = doc.get("GET_META_INFO", {}).get("METADATA_INF") or doc.get("GET_STATS_DATA", {}).get(
        "STATISTICAL_DATA", {})
    return {o["@id"]: listify(o.get("CLASS")) for o in listify(root.get("CLASS_INF", {}).get("CLASS_OBJ"))}


def classify_item(name: str) -> str | None:
    """Canonical column for a cat02 item name: quantity1_jan ... value_year, unit1, unit2, unit."""
    n = unicodedata.normalize("NFKC", name).lower().replace(" ", "").replace("　", "")
    if "単位" in n or "unit" in n:
        d = re.search(r"(?:単位|unit)([12])", n)
        return f"unit{d.group(1)}" if d else "unit"
    m = re.search(r"数量([12])|quantity([12])", n)
    if m:
        measure = f"quantity{m.group(1) or m.group(2)}"
        n = n[:m.start()] + n[m.end():]
    elif "金額" in n or "価額" in n or "value" in n:
        measure = "value"
    else:
        return None
    month = re.search(r"(\d{1,2})月", n)
    if month and 1 <= int(month.group(1)) <= 12:
        return f"{measure}_{MONTH_NAMES[int(month.group(1)) - 1]}"
    for abbr in _EN_MONTHS:
        if abbr in n:
            return f"{measure}_{abbr}"
    if re.search(r"年|累計|計|year|total", n):
        return f"{measure}_year"
    return None


def resolve_items(meta: dict, file: str) -> dict[str, str]:
    """cat02 item code -> canonical column, from getMetaInfo; every month's measures are required."""
    items = {}
    for c in class_objs(meta).get("cat02", []):
        canon = classify_item(c.get("@name", ""))
        if canon:
            items[c["@code"]] = canon
    needed = {f"{m}_{p}" for m in MEASURES for p in MONTH_NAMES}
    missing = needed - set(items.values())
    if missing:
        raise ReleaseFileError(SOURCE, file, f"cannot resolve cat02 items for {sorted(missing)[:6]} from getMetaInfo "
                                             f"(item names: {[c.get('@name') for c in class_objs(meta).get('cat02', [])][:8]})")
    return items


def discover(settings: Settings, http: requests.Session, period: Month) -> list[ReleaseFile]:
    """One request per flow: the year of `period` (the table holds every month published so far)."""
    refs = []
    for flow in ("import", "export"):
        tid = table_id(flow, period.year) or find_table(settings, http, flow, period.year)
        params = {"statsDataId": tid, "cdTime": f"{period.year}000000"}
        refs.append(ReleaseFile(source=SOURCE, name=f"estat_api_{flow}_{period.year}_{tid}.json",
                                url=f"{settings.estat_api_base_url.rstrip('/')}/getStatsData?{urlencode(params)}",
                                period=period))
    return refs


def fetch(settings: Settings, http: requests.Session, ref: ReleaseFile, catalogue: Catalogue) -> bytes:
    """getMetaInfo, then getStatsData for the catalogue's codes, every page; one JSON document."""
    m = re.search(r"statsDataId=(\d+)&cdTime=(\d{4})", ref.url)
    if not m:
        raise FetchError(SOURCE, ref.url, "not an e-Stat API request of rarewatch")
    tid, year = m.group(1), m.group(2)
    meta = _call(settings, http, "getMetaInfo", {"statsDataId": tid})
    codes = [c["@code"] for c in class_objs(meta).get("cat01", [])
             if re.fullmatch(r"\d{9}", c.get("@code", "")) and c["@code"][:6] in set(catalogue.hs6_codes)]
    pages = []
    for i in range(0, len(codes), CODES_PER_CALL):
        params = {"statsDataId": tid, "cdTime": f"{year}000000", "cdCat01": ",".join(codes[i:i + CODES_PER_CALL]),
                  "metaGetFlg": "N", "cntGetFlg": "N", "sectionHeaderFlg": "2"}
        start = None
        for _ in range(MAX_PAGES):
            page = _call(settings, http, "getStatsData", {**params, **({"startPosition": start} if start else {})})
            body = page.get("GET_STATS_DATA")
            if not isinstance(body, dict):
                raise LayoutError(SOURCE, f"{settings.estat_api_base_url.rstrip('/')}/getStatsData?statsDataId={tid}",
                                  f"a GET_STATS_DATA object in the answer (got {sorted(page)[:5]})")
            pages.append(page)
            start = (body.get("STATISTICAL_DATA") or {}).get("RESULT_INF", {}).get("NEXT_KEY")
            if not start:
                break
        else:
            raise FetchError(SOURCE, ref.url, f"more than {MAX_PAGES} pages")
    flow = "import" if "_import_" in ref.name else "export"
    return json.dumps({"flow": flow, "statsDataId": tid, "meta": meta, "pages": pages}, ensure_ascii=False,
                      sort_keys=True).encode()


def to_rows(ref: ReleaseFile, data: bytes) -> tuple[pl.DataFrame, dict[str, str], dict]:
    """The API document as release rows in the CSV route's canonical layout (strings, `line`),
    the column names to show in messages, and the table's TABLE_INF."""
    try:
        doc = json.loads(data)
        items = resolve_items(doc["meta"], ref.name)
        pages = doc["pages"]
        flow_code = {"import": "2", "export": "1"}[doc["flow"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ReleaseFileError(SOURCE, ref.name, f"not an e-Stat API document of rarewatch: {e!r}") from None
    try:
        records = _records(pages, items)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ReleaseFileError(SOURCE, ref.name, f"an e-Stat API page not in the documented shape "
                               f"(GET_STATS_DATA.STATISTICAL_DATA.DATA_INF.VALUE[]): {type(e).__name__}: {e}") from None
    if not records:
        raise ReleaseFileError(SOURCE, ref.name, "the API returned no values for the catalogue's codes")
    return _wide(records, flow_code, doc, ref)


def _records(pages: list, items: dict) -> list[tuple]:
    records = []
    for page in pages:
        for v in listify(page["GET_STATS_DATA"].get("STATISTICAL_DATA", {}).get("DATA_INF", {}).get("VALUE")):
            canon = items.get(v.get("@cat02"))
            if canon is None:
                continue
            raw = str(v.get("$", "")).strip()
            if canon.startswith("unit"):
                value = unicodedata.normalize("NFKC", raw).strip() or None  # full-width ＫＧ -> KG
            elif raw in NULL_TOKENS or not re.fullmatch(r"-?\d+", raw.replace(",", "")):
                value = UNPUBLISHED  # '-', 'X', '…', '***': not published, never 0
            else:
                value = raw.replace(",", "")
            unit = unicodedata.normalize("NFKC", v["@unit"]).strip() if v.get("@unit") else None
            records.append((v.get("@cat01"), v.get("@area"), v.get("@time"), canon, value, unit))
    return records


def _wide(records: list[tuple], flow_code: str, doc: dict, ref: ReleaseFile) -> tuple[pl.DataFrame, dict[str, str], dict]:
    long = pl.DataFrame(records, schema=["hs9", "area", "time", "canon", "value", "unit"], orient="row")
    wide = long.pivot(on="canon", index=["hs9", "area", "time"], values="value", aggregate_function="first")
    unit_attr = long.filter(pl.col("canon").str.starts_with("quantity2")).group_by("hs9", "area", "time").agg(
        pl.col("unit").drop_nulls().first().alias("_unit2"))
    wide = wide.join(unit_attr, on=["hs9", "area", "time"], how="left")
    measure_cols = [f"{m}_{p}" for m in MEASURES for p in (*MONTH_NAMES, "year")]
    for c in ["unit1", "unit2", "unit", *measure_cols]:
        if c not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.String).alias(c))
    wide = wide.with_columns(
        pl.lit(flow_code).alias("flow_code"),
        pl.col("time").str.slice(0, 4).alias("year"),
        pl.col("area").str.slice(1).str.strip_chars_start("0").str.zfill(3).alias("country_code"),
        pl.coalesce("unit1", pl.col("unit").str.split("/").list.get(0, null_on_oob=True)).alias("unit1"),
        pl.coalesce("unit2", pl.col("unit").str.split("/").list.get(1, null_on_oob=True), "_unit2").alias("unit2"),
    )
    # A month absent from the API has no trade (the CSV files write 0 there); without an annual
    # item the year is the sum of the months, as in the CSV files; token cells end up null.
    months = [f"{m}_{p}" for m in MEASURES for p in MONTH_NAMES]
    wide = wide.with_columns(pl.col(months).fill_null("0"))
    wide = wide.with_columns(
        pl.col(f"{m}_year").fill_null(pl.sum_horizontal(
            [pl.col(f"{m}_{p}").cast(pl.Int64, strict=False) for p in MONTH_NAMES]).cast(pl.String))
        for m in MEASURES)
    wide = wide.with_columns(pl.col(measure_cols).replace(UNPUBLISHED, None))
    frame = wide.sort("hs9", "country_code").with_row_index("line", offset=1).with_columns(
        pl.col("line").cast(pl.Int64)).select(
        "line", "flow_code", "year", "hs9", "country_code", "unit1", "unit2", *measure_cols)
    names = {c: f"cat02 {c}" for c in frame.columns if c != "line"}
    names.update({"hs9": "@cat01", "country_code": "@area", "year": "@time"})
    return frame, names, table_inf(doc)


def table_inf(doc: dict) -> dict:
    """TABLE_INF of the document's table (getMetaInfo's, else the first data page's)."""
    meta = doc.get("meta", {}).get("GET_META_INFO", {}).get("METADATA_INF", {}).get("TABLE_INF")
    if meta:
        return meta
    for page in doc.get("pages", []):
        inf = page.get("GET_STATS_DATA", {}).get("STATISTICAL_DATA", {}).get("TABLE_INF")
        if inf:
            return inf
    return {}


def updated_date(inf: dict) -> dt.date | None:
    """The table's UPDATED_DATE (`2021-03-31`), the vintage of every row it gives."""
    m = re.search(r"(\d{4})-?(\d{2})-?(\d{2})", _text_of(inf.get("UPDATED_DATE")))
    return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def description_stages(inf: dict, year: int) -> dict[int, str]:
    """{month: stage} of `year` when the table's own texts state it (`2020年：確々報`,
    `2021年1-6月：確報`); empty when they do not (the calendar decides)."""
    text = unicodedata.normalize("NFKC", " ".join(
        _text_of(inf.get(k)) for k in ("DESCRIPTION", "TITLE_SPEC", "TITLE", "STATISTICS_NAME_SPEC")))
    out: dict[int, str] = {}
    for m in re.finditer(r"(\d{4})\s*年\s*(?:[-~〜～]\s*(\d{4})\s*年)?\s*((?:\d{1,2}\s*(?:[-~〜～]\s*\d{1,2})?\s*月)?)"
                         r"\s*[:：]?\s*([^、,，。\s)）]+)", text):
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        stage = stage_of_word(m.group(4))
        if stage is None or not first <= year <= last:
            continue
        months = parse_title_stages(f"({m.group(3)}：{m.group(4)})") if m.group(3) else {}
        out.update(months or {mm: stage for mm in range(1, 13)})
    return out


def parse(ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue, *, check: bool = True) -> Parsed:
    """The API document to clean rows: vintage from the table's UPDATED_DATE, each month's stage
    from the table's description when it states it, else from the release calendar. With
    `check`, the wide-row checks run here (else once per batch, `check_release_rows`)."""
    from flows.sources.japan_customs.parse import rows_to_parsed, with_row_checks

    frame, names, inf = to_rows(ref, data)
    year = int(frame["year"].drop_nulls().head(1).item()) if frame.height else 0
    ref = replace(ref, published=updated_date(inf) or ref.published,
                  stages=tuple(sorted(description_stages(inf, year).items())) or ref.stages)
    parsed = rows_to_parsed(frame, names, ref, sha256, catalogue, nulls_allowed=True)
    return with_row_checks(parsed) if check else parsed
