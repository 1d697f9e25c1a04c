"""Parse a METI/ANRE 非鉄金属等需給動態統計 workbook: the 「(1)需給総括」 supply-demand summary.

REFERENCE section 4: monthly/annual Excel workbooks, 2012-2020 (the survey was abolished in
December 2020); table names include 「(1)需給総括」 (production, imports, consumption, stocks)
[V]; **the sheet layout is not confirmed** [S/I]. rarewatch reads the layout below, by header
text, and rejects anything else with a message saying what it looked for:

- a sheet whose name, or one of its first rows, contains 「需給総括」;
- a header row holding a metal column (品目 / 品名 / 鉱種 / 金属), a period column (年月 / 年・月 /
  期間) and at least one of 生産 (production), 輸入 (imports), 消費 (consumption), 在庫 (stocks,
  end of month), optionally 輸出 (exports);
- a unit statement above or in the header (「単位：t」, 「(トン)」, 「単位：kg」);
- one row per metal and month below it; periods as dates, 「2019年1月」, 「2019/1」 or 「2019-01」.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import zipfile

import openpyxl
import polars as pl

from flows.errors import ReleaseFileError
from flows.periods import Month
from flows.sources import FAILURE_SCHEMA, Parsed, ReleaseFile

SOURCE = "meti"
LAST_MONTH = Month(2020, 12)  # the survey was abolished in December 2020 (REFERENCE 4)
TITLE = "需給総括"
COLUMNS = {
    "metal": re.compile(r"品目|品名|鉱種|金属"),
    "period": re.compile(r"年月|年・月|期間"),
    "production_t": re.compile(r"生産"),
    "imports_t": re.compile(r"輸入"),
    "exports_t": re.compile(r"輸出"),
    "consumption_t": re.compile(r"消費"),
    "stocks_t": re.compile(r"在庫"),
}
MEASURES = ["production_t", "imports_t", "exports_t", "consumption_t", "stocks_t"]
# Metal names in the survey -> rarewatch metal ids (REFERENCE 4: Ni, Co, W (+ore), Mo (+ore), Sb,
# Cu, Pb, Zn, Sn, Hg, Ag).
METALS = {
    "ニッケル": "nickel", "コバルト": "cobalt", "タングステン": "tungsten", "モリブデン": "molybdenum",
    "アンチモン": "antimony", "銅": "copper", "鉛": "lead", "亜鉛": "zinc", "錫": "tin", "すず": "tin",
    "水銀": "mercury", "銀": "silver",
}
_UNIT = re.compile(r"単位\s*[:：]?\s*(kg|t|トン|キログラム)|[(（]\s*(kg|t|トン)\s*[)）]", re.I)


def _text(v: object) -> str:
    return unicodedata.normalize("NFKC", str(v)).strip() if v is not None else ""


def metal_id(name: str) -> str | None:
    n = _text(name)
    for jp, mid in sorted(METALS.items(), key=lambda kv: -len(kv[0])):
        if n.startswith(jp) or n == jp:
            return mid
    return None


def parse_period(v: object) -> Month | None:
    if isinstance(v, (dt.date, dt.datetime)):
        return Month(v.year, v.month)
    t = _text(v)
    m = re.fullmatch(r"(\d{4})\s*(?:年|/|-|\.)\s*(\d{1,2})\s*月?", t)
    if m and 1 <= int(m.group(2)) <= 12:
        return Month(int(m.group(1)), int(m.group(2)))
    return None


def number(v: object) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    t = _text(v).replace(",", "")
    if t in ("", "-", "−", "―", "…", "x", "X", "*"):
        return None
    return float(t)


def parse_workbook(ref: ReleaseFile, data: bytes) -> Parsed:
    """Rows of `schemas.meti.MetiSupplyDemand` from one workbook."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        kind = "an old .xls (BIFF) workbook: save it as .xlsx" if data[:4] == b"\xd0\xcf\x11\xe0" else "not an .xlsx workbook"
        raise ReleaseFileError(SOURCE, ref.name, kind)
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a broken package
        raise ReleaseFileError(SOURCE, ref.name, f"unreadable workbook: {type(e).__name__}: {e}") from None
    sheet = None
    for ws in wb.worksheets:
        head = [c for row in ws.iter_rows(min_row=1, max_row=5, values_only=True) for c in row if c is not None]
        if TITLE in ws.title or any(TITLE in _text(c) for c in head):
            sheet = ws
            break
    if sheet is None:
        raise ReleaseFileError(SOURCE, ref.name, f"no sheet titled 「{TITLE}」 (sheets: {wb.sheetnames})")
    rows = list(sheet.iter_rows(values_only=True))
    header_i, cols = _find_header(rows)
    if header_i is None:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet.title!r}: no header row with a metal column "
                                                 "(品目), a period column (年月) and 生産/輸入/消費/在庫", column=sheet.title)
    unit_text = " ".join(_text(c) for row in rows[:header_i + 1] for c in row if c is not None)
    u = _UNIT.search(unit_text)
    if not u:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet.title!r}: no unit statement (単位：t)", row=header_i + 1)
    factor = 0.001 if (u.group(1) or u.group(2) or "").lower() in ("kg", "キログラム") else 1.0

    out, failures = [], []
    for i, row in enumerate(rows[header_i + 1:], start=header_i + 2):
        name, when = row[cols["metal"]], row[cols["period"]]
        if _text(name) == "" and _text(when) == "":
            continue
        metal, month = metal_id(name), parse_period(when)
        if metal is None:
            failures.append({"line": i, "column": "品目", "check": "known metal", "value": _text(name)})
            continue
        if month is None:
            failures.append({"line": i, "column": "年月", "check": "a month", "value": _text(when)})
            continue
        if month > LAST_MONTH:
            failures.append({"line": i, "column": "年月", "check": "survey ended December 2020", "value": str(month)})
            continue
        values = {}
        for m in MEASURES:
            if m not in cols:
                values[m] = None
                continue
            try:
                x = number(row[cols[m]])
                values[m] = None if x is None else x * factor
            except ValueError:
                failures.append({"line": i, "column": m, "check": "number", "value": _text(row[cols[m]])})
        out.append({"metal": metal, "metal_label": _text(name), "year": month.year, "month": month.month,
                    "period": month.first_day, **values, "source_file": ref.name, "line": i})
    if not out and not failures:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet.title!r}: no data rows under the header",
                               row=header_i + 1)
    frame = pl.DataFrame(out, schema={"metal": pl.String, "metal_label": pl.String, "year": pl.Int64,
                                      "month": pl.Int64, "period": pl.Date, **{m: pl.Float64 for m in MEASURES},
                                      "source_file": pl.String, "line": pl.Int64})
    months = sorted({Month(y, m) for y, m in frame.select("year", "month").iter_rows()})
    return Parsed(frame=frame.with_columns(pl.lit(ref.published, dtype=pl.Date).alias("vintage")),
                  failures=pl.DataFrame(failures, schema=FAILURE_SCHEMA), vintage=ref.published,
                  release="survey", months=months)


def _find_header(rows: list[tuple]) -> tuple[int | None, dict[str, int]]:
    for i, row in enumerate(rows[:40]):
        cells = [_text(c) for c in row]
        cols: dict[str, int] = {}
        for j, c in enumerate(cells):
            for key, pattern in COLUMNS.items():
                if key not in cols and c and pattern.search(c):
                    cols[key] = j
                    break
        if "metal" in cols and "period" in cols and any(m in cols for m in MEASURES):
            return i, cols
    return None, {}
