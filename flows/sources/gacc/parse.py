"""Parse a China Customs (GACC) preliminary release, table (5) "China's Major Exports by Quantity
and Value" or table (6) "... Major Imports ...", to one row per commodity (docs/sources.md, "China
Customs"; table (6) has the same layout as table (5)).

Read by header *meaning*, never position:
- title `(5) China's Major Exports by Quantity and Value, <period> (in CNY|USD)`; `<period>` is a
  month (`May 2019`) or the combined `January-February 2025` (January has no release of its own);
- unit banner `Value Unit: CNY 100 Million`, `Unit: USD1 Million`, `Unit: US$1,000`: values are
  converted to currency units; a banner whose currency differs from the title's is rejected (one
  real page had a CNY title over a USD unit row);
- period headers vary (`May`, `5`, `Jan-May in Total`, `1-4 Total`, `1-4 Total,2024`,
  `Year-On-Year(%)`) and are classified as month / year-to-date / prior-year-to-date / YoY %;
  Jan-Feb tables have no single-month columns;
- some pages (April 2025 USD) omit the quantity-unit cell in data rows: numbers shift left and
  an empty cell pads the end; detected per table;
- numbers carry thousands commas, `&nbsp;` and indents; `-`, `—` and blanks are nulls.
A page without a data table (2018 releases are images) is rejected with a clear message. Each
row is checked: ytd YoY % ~ 100 * (ytd / prior ytd - 1) within 0.15 (rounding of published figures).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import polars as pl

from flows.errors import ReleaseFileError
from flows.htmltables import parse_tables
from flows.periods import Month
from flows.sources import FAILURE_SCHEMA, Parsed, ReleaseFile, skipped_file

SOURCE = "gacc"
YOY_TOLERANCE = 0.15  # percentage points (docs/sources.md)

_TITLE = re.compile(r"Major\s+(?P<dir>Exports|Imports)\s+by\s+Quantity\s+and\s+Value\s*,?\s*(?P<period>.+?)\s*"
                    r"\(\s*in\s+(?P<cur>[A-Za-z$]+)\s*\)", re.I)
# Any table of the release: "(1) China's Total Export & Import Values ...", "(4) ... by Country/Region".
_ANY_TABLE = re.compile(r"\(\s*(?P<n>\d{1,2})\s*\)\s*(?P<name>China['’]?s?\s[^,(]{3,120})", re.I)
TABLE_NUMBER = {"exports": 5, "imports": 6}
TABLE_SOURCE = {"exports": "gacc", "imports": "gacc_imports"}
_BANNER = re.compile(r"Unit\s*[:：]\s*(?P<cur>CNY|RMB|USD|US\s*\$)\s*(?P<num>[\d,]*(?:\.\d+)?)\s*"
                     r"(?P<word>hundred\s+million|million|billion|thousand)?", re.I)
# The other word order some releases use: "Unit: 100 million yuan", "Unit: USD 1 million" is above.
_BANNER_NUM_FIRST = re.compile(r"Unit\s*[:：]\s*(?P<num>[\d,]*(?:\.\d+)?)\s*"
                               r"(?P<word>hundred\s+million|million|billion|thousand)?\s*(?P<cur>yuan|RMB|CNY|USD|US\s*dollars?)",
                               re.I)
_WORDS = {"hundred million": 1e8, "million": 1e6, "billion": 1e9, "thousand": 1e3, None: 1.0}
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_DATE = re.compile(r"(20\d{2})[/-](\d{1,2})[/-](\d{1,2})")

# Normalised commodity ids: (pattern on the lower-cased label, id, unit when the page omits it).
COMMODITIES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"^\W*rare[\s\-]*earths?\b(?!.*magnet)"), "rare_earths", "Ton"),
]
# Quantity units that measure mass, in tonnes.
MASS_UNITS_T = {"ton": 1.0, "tons": 1.0, "tonne": 1.0, "tonnes": 1.0, "10,000 tons": 1e4, "10000 tons": 1e4,
                "10 thousand tons": 1e4, "10,000 tonnes": 1e4, "kilogram": 1e-3, "kilograms": 1e-3, "kg": 1e-3}


def currency_of(text: str) -> str:
    t = text.upper().replace(" ", "")
    if t in ("USD", "US$", "USDOLLAR", "USDOLLARS"):
        return "USD"
    return "CNY" if t in ("CNY", "RMB", "YUAN") else t


def parse_period(text: str, file: str) -> tuple[Month, bool]:
    """(end month, Jan-Feb combined?) from `May 2019`, `January-February 2025`, `Jan.-Feb. 2025`."""
    year = re.search(r"(19|20)\d{2}", text)
    names = [w for w in re.findall(r"[A-Za-z]+", text.lower()) if w in _MONTHS]
    if not year or not names:
        raise ReleaseFileError(SOURCE, file, f"cannot read the period in the title: {text!r}")
    months = [_MONTHS[n] for n in names]
    end = Month(int(year.group(0)), months[-1])
    combined = len(months) >= 2 and months[0] == 1 and months[-1] == 2
    if len(months) >= 2 and not combined:
        raise ReleaseFileError(SOURCE, file, f"unexpected multi-month period {text!r}")
    return end, combined


def classify(label: str) -> str:
    """month / ytd / ytd_prior / yoy for a period header as GACC words it."""
    low = label.lower()
    if re.search(r"year[\s\-]*on[\s\-]*year|yoy|%|±", low):
        return "yoy"
    if re.search(r"(19|20)\d{2}", low):
        return "ytd_prior"
    if "total" in low or re.search(r"\d\s*-\s*\d|[a-z]\s*-\s*[a-z]", low):
        return "ytd"
    return "month"


def number(text: str) -> float | None:
    t = text.replace(",", "").replace(" ", "").replace("\u3000", "")
    if t in ("", "-", "—", "–", "--", "…"):
        return None
    return float(t)  # ValueError handled by the caller


def parse_release(ref: ReleaseFile, data: bytes, direction: str = "exports") -> Parsed:
    """Parse one page of table (5) major exports (or (6) major imports) to rows of `schemas.gacc`.

    A page of the release that is another table ((1)-(4), by country, the other direction) is
    recognised and skipped (`Parsed.skip`), never a failure; a page that is no release table is."""
    try:
        page = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        page = data.decode("gb18030", errors="replace")
    title, tables = parse_tables(page)
    heads = [(t, " ".join(" ".join(r) for r in t.texts()[:3])) for t in tables]
    table = next((t for t, h in heads if _TITLE.search(h)), None)
    m = next((x for _, h in heads if (x := _TITLE.search(h))), None) or _TITLE.search(title)
    if m is None:
        other = _ANY_TABLE.search(title) or next((x for _, h in heads if (x := _ANY_TABLE.search(h))), None)
        if other and int(other.group("n")) in TABLE_NUMBER.values():
            # table (5) or (6) by its number, yet its title is not read: a damaged or changed page
            raise ReleaseFileError(SOURCE, ref.name, f"the title of table ({other.group('n')}) is not in the known "
                                   "form '(5) China's Major Exports by Quantity and Value, May 2019 (in CNY)' "
                                   f"(found {' '.join(other.group(0).split())!r})", row=1)
        if other:
            name = " ".join(other.group("name").split()).rstrip(" ,")
            return skipped_file(f"table ({other.group('n')}) {name}: a table rarewatch does not read")
        if not any(len(t.rows) > 4 for t in tables):
            raise ReleaseFileError(SOURCE, ref.name, "page has no data table (2018 releases are published as images)")
        raise ReleaseFileError(SOURCE, ref.name, "not a China Customs release table: looked for a title like "
                                                 "'(5) China's Major Exports by Quantity and Value, May 2019 (in CNY)' "
                                                 "or '(6) China's Major Imports ...'", row=1)
    found = m.group("dir").lower()
    if found != direction:
        return skipped_file(f"table ({TABLE_NUMBER[found]}) China's Major {found.title()} by Quantity and Value: "
                            f"read by source {TABLE_SOURCE[found]}")
    if table is None:
        table = next((t for t in tables if len(t.rows) > 4), None)
    if table is None:
        raise ReleaseFileError(SOURCE, ref.name, "page has no data table (2018 releases are published as images)")
    texts = table.texts()
    end, combined = parse_period(m.group("period"), ref.name)
    title_cur = currency_of(m.group("cur"))
    banner = next((b for r in texts[:4] for b in (_BANNER.search(" ".join(r)), _BANNER_NUM_FIRST.search(" ".join(r)))
                   if b), None)
    if banner is None:
        raise ReleaseFileError(SOURCE, ref.name, "no value-unit banner (e.g. 'Unit: USD1 Million')")
    unit_cur = currency_of(banner.group("cur"))
    if unit_cur != title_cur:
        raise ReleaseFileError(SOURCE, ref.name, f"title says {title_cur} but the unit row says {banner.group(0)!r}")
    multiplier = float(banner.group("num").replace(",", "") or 1) * _WORDS[
        re.sub(r"\s+", " ", banner.group("word").lower()) if banner.group("word") else None]

    hdr_i = next((i for i, r in enumerate(texts) if r and r[0].strip().lower() == "commodity"), None)
    if hdr_i is None or hdr_i + 1 >= len(texts):
        raise ReleaseFileError(SOURCE, ref.name, "no 'Commodity' header row")
    header = table.rows[hdr_i]
    has_unit_col = len(header) > 1 and "unit" in header[1].text.lower()
    groups = [c.text for c in header[(2 if has_unit_col else 1):]]
    kinds = [classify(g) for g in groups]
    expected = ["ytd", "ytd_prior", "yoy"] if combined else ["month", "ytd", "ytd_prior", "yoy"]
    if sorted(kinds) != sorted(expected):
        raise ReleaseFileError(SOURCE, ref.name, f"cannot map the period headers {groups} (read as {kinds})",
                               row=hdr_i + 1)
    sub = [c.lower() for c in texts[hdr_i + 1]]
    if sub != ["quantity", "value"] * len(groups):
        raise ReleaseFileError(SOURCE, ref.name, f"expected Quantity/Value sub-headers, found {texts[hdr_i + 1]}",
                               row=hdr_i + 2)
    n = 2 * len(groups)
    body = [(i + 1, r) for i, r in enumerate(texts[hdr_i + 2:], start=hdr_i + 2) if len(r) > 1]
    if not body:
        raise ReleaseFileError(SOURCE, ref.name, "table has no commodity rows")
    # The unit cell is omitted in some pages (numbers shift left, an empty cell pads the end).
    shifted = has_unit_col and sum(len(r) == 1 + n or (len(r) == 2 + n and r[-1] == "") for _, r in body) > len(body) / 2

    rows, failures = [], []
    for line, r in body:
        label = r[0].strip()
        if shifted:
            unit, cells = None, r[1:1 + n]
            ok = len(r) in (1 + n, 2 + n) and (len(r) == 1 + n or r[-1] == "")
        else:
            unit, cells = (r[1] if has_unit_col else None), r[(2 if has_unit_col else 1):]
            ok = len(cells) == n
        if not ok:
            failures.append({"line": line, "column": label, "check": f"row has {len(r)} cells, expected {n + 2}",
                             "value": " | ".join(r)[:200]})
            continue
        values: dict[str, float | None] = {}
        for g, kind in enumerate(kinds):
            for j, measure in enumerate(("quantity", "value")):
                cell = cells[2 * g + j]
                try:
                    values[f"{measure}_{kind}"] = number(cell)
                except ValueError:
                    failures.append({"line": line, "column": f"{label} / {groups[g]} {measure}",
                                     "check": "number", "value": cell})
        commodity, default_unit = _normalise(label)
        unit = unit if unit not in (None, "", "-", "—") else (default_unit if shifted or unit is None else None)
        rows.append(_row(ref, end, combined, label, commodity, unit, values, multiplier, title_cur, line))
    frame = pl.DataFrame(rows, schema=_SCHEMA, orient="row") if rows else pl.DataFrame(schema=_SCHEMA)
    failures += _yoy_failures(frame)
    published = _page_date(page)
    return Parsed(frame=frame.with_columns(pl.lit(published, dtype=pl.Date).alias("vintage")),
                  failures=pl.DataFrame(failures, schema=FAILURE_SCHEMA),
                  vintage=published, release="preliminary",
                  months=[Month(end.year, 1), end] if combined else [end], skipped={})


def _normalise(label: str) -> tuple[str | None, str | None]:
    low = label.lower()
    for pattern, cid, unit in COMMODITIES:
        if pattern.search(low):
            return cid, unit
    return None, None


_SCHEMA = {
    "year": pl.Int64, "month": pl.Int64, "period_start": pl.Date, "period_end": pl.Date, "jan_feb": pl.Boolean,
    "commodity_label": pl.String, "commodity": pl.String, "quantity_unit": pl.String, "tonnes_per_unit": pl.Float64,
    "quantity_month": pl.Float64, "value_month": pl.Float64, "quantity_ytd": pl.Float64, "value_ytd": pl.Float64,
    "quantity_ytd_prior": pl.Float64, "value_ytd_prior": pl.Float64, "ytd_yoy_quantity_pct": pl.Float64,
    "ytd_yoy_value_pct": pl.Float64, "currency": pl.String, "value_unit_published": pl.Float64,
    "release_url": pl.String, "source_file": pl.String, "line": pl.Int64,
}


def _row(ref: ReleaseFile, end: Month, combined: bool, label: str, commodity: str | None, unit: str | None,
         v: dict[str, float | None], multiplier: float, currency: str, line: int) -> tuple:
    def money(x: float | None) -> float | None:
        return None if x is None else round(x * multiplier, 6)

    month_q = v.get("quantity_ytd") if combined else v.get("quantity_month")
    month_v = v.get("value_ytd") if combined else v.get("value_month")
    start = Month(end.year, 1) if combined else end
    t = MASS_UNITS_T.get(re.sub(r"\s+", " ", unit.lower()).strip()) if unit else None
    return (end.year, end.month, start.first_day, end.last_day, combined, label, commodity, unit, t,
            month_q, money(month_v), v.get("quantity_ytd"), money(v.get("value_ytd")),
            v.get("quantity_ytd_prior"), money(v.get("value_ytd_prior")), v.get("quantity_yoy"), v.get("value_yoy"),
            currency, multiplier, ref.url, ref.name, line)


def _yoy_failures(frame: pl.DataFrame) -> list[dict]:
    """ytd YoY % must match 100 * (ytd / prior - 1) within YOY_TOLERANCE (docs/sources.md), widened by
    what rounding the published figures to one decimal can move the ratio: with h = 0.05,
    |d(100 ytd/prior)| <= 100 h (1/prior + ytd/prior^2). (May 2019 CNY value: 12.6 / 13.3 gives
    -5.26 % against a published -5.1 %, an honest rounding gap of 0.16 points.)"""
    out = []
    for r in frame.iter_rows(named=True):
        for measure in ("quantity", "value"):
            ytd, prior, yoy = r[f"{measure}_ytd"], r[f"{measure}_ytd_prior"], r[f"ytd_yoy_{measure}_pct"]
            if None in (ytd, prior, yoy) or prior == 0:
                continue
            if measure == "value":  # back to the published unit before judging rounding
                ytd, prior = ytd / r["value_unit_published"], prior / r["value_unit_published"]
            computed = 100 * (ytd / prior - 1)
            rounding = 100 * 0.05 * (1 / abs(prior) + abs(ytd) / prior ** 2)
            if abs(computed - yoy) > YOY_TOLERANCE + rounding:
                out.append({"line": r["line"], "column": f"{r['commodity_label']} / YoY {measure}",
                            "check": f"ytd_yoy ~ 100*(ytd/prior-1) = {computed:.2f}", "value": f"{yoy}"})
    return out


def _page_date(page: str) -> dt.date | None:
    m = re.search(r'class="atcl-date"[^>]*>\s*(20\d{2})[/-](\d{1,2})[/-](\d{1,2})', page)
    return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
