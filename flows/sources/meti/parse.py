"""Parse a METI/ANRE 非鉄金属等需給動態統計 workbook: the 「(1)需給総括」 supply-demand summary.

The survey (docs/sources.md, "METI"): monthly and annual Excel workbooks, 2012-2020 (abolished in
December 2020), `.xlsx` and older `.xls`, read with calamine (fastexcel). In 「(1)需給総括」
**rows are items** (区分 / 品目: the survey's own names, 電気銅, ニッケル, タングステン鉱, ...の故又はくず),
**the month is in the title** (「平成31年5月分」, 「令和2年5月」, 「2019年5月」; an annual workbook
names the year alone: 「令和元年分」) or else in the file name (`201905`), and the columns are
月初在庫, 受入 (生産, 輸入, その他, 計), 払出 (消費 or 国内出荷, 輸出, その他, 計), 月末在庫,
often on two header rows (the group 受入 / 払出 above its parts). Units: a 「単位：t」 (or kg)
statement above the header, or a 単位 column. Rows naming a breakdown (うち販売業者 ...) are not items.

Item names are mapped exactly through `flows/reference/meti_items.csv` (item -> metal, form ore /
metal / scrap, metal content); ore, metal and scrap stay separate rows. A workbook whose sheet,
header or items differ is refused with what was looked for, never guessed at. The layout is our
reading of public descriptions of the survey, unverified against a real workbook.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib.resources import files

import polars as pl

from flows.errors import ReleaseFileError
from flows.periods import Month
from flows.sources import FAILURE_SCHEMA, Parsed, ReleaseFile

SOURCE = "meti"
LAST_MONTH = Month(2020, 12)  # the survey was abolished in December 2020
TITLE = "需給総括"
ITEM_HEADER = re.compile(r"^(区分|品目|品名)$")
MEASURES = ["opening_stock_t", "production_t", "imports_t", "receipts_other_t", "receipts_total_t",
            "consumption_t", "exports_t", "shipments_other_t", "shipments_total_t", "closing_stock_t"]
LOOKED_FOR = ("a sheet named or titled 「(1)需給総括」, a header row with an item column (区分 / 品目) and "
              "月初在庫, 受入 (生産, 輸入) or 払出 (消費, 輸出) and 月末在庫 columns, and a unit statement (単位：t)")
_UNIT = re.compile(r"単位\s*[:：]?\s*(kg|t|トン|キログラム)|[(（]\s*(kg|t|トン)\s*[)）]", re.I)
_ERA = {"令和": 2018, "平成": 1988}
_BREAKDOWN = re.compile(r"^(うち|内|\(うち|（うち)|販売業者")


def _text(v: object) -> str:
    return unicodedata.normalize("NFKC", str(v)).strip() if v is not None else ""


@lru_cache(maxsize=1)
def items() -> pl.DataFrame:
    """The survey's item names -> metal, form and metal content (flows/reference/meti_items.csv)."""
    path = files("flows") / "reference" / "meti_items.csv"
    return pl.read_csv(path.read_bytes(), schema_overrides={"metal_content": pl.Float64}, comment_prefix="#")


def period_in(text: str) -> tuple[int, int | None] | None:
    """(year, month or None) from 「平成31年5月分」, 「令和元年分」, 「2019年5月」 or a `201905` file name."""
    t = _text(text)
    m = re.search(r"(令和|平成)\s*(元|\d{1,2})\s*年\s*(?:(\d{1,2})\s*月)?", t)
    if m:
        year = _ERA[m.group(1)] + (1 if m.group(2) == "元" else int(m.group(2)))
        return year, int(m.group(3)) if m.group(3) else None
    m = re.search(r"((?:19|20)\d{2})\s*年\s*(?:(\d{1,2})\s*月)?", t)
    if m:
        return int(m.group(1)), int(m.group(2)) if m.group(2) else None
    m = re.search(r"(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])?(?!\d)", t)
    if m:
        return int(m.group(1)), int(m.group(2)) if m.group(2) else None
    return None


def number(v: object) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    t = _text(v).replace(",", "")
    if t in ("", "-", "−", "―", "…", "x", "X", "*", "ー"):
        return None
    return float(t)


def _column_kind(group: str, label: str) -> str | None:
    """Measure of a column from its group (受入 / 払出, the upper header row) and its own label."""
    g, lab = _text(group), _text(label)
    both = g + lab
    if re.search(r"(月初|期初|前月末)在庫", both):
        return "opening_stock_t"
    if re.search(r"(月末|期末)在庫", both):
        return "closing_stock_t"
    side = "receipts" if "受入" in both else "shipments" if "払出" in both else None
    if side and (lab in ("", "計", "合計", "小計") or re.fullmatch(r"(受入|払出)計", lab)):
        return f"{side}_total_t"
    if "生産" in lab:
        return "production_t"
    if "輸入" in lab:
        return "imports_t"
    if "輸出" in lab:
        return "exports_t"
    if re.search(r"消費|国内出荷|国内販売", lab):
        return "consumption_t"
    if "その他" in lab and side:
        return f"{side}_other_t"
    return None


def _sheet_rows(data: bytes, name: str) -> tuple[str, list[list[object]]]:
    import fastexcel

    try:
        reader = fastexcel.read_excel(data)
    except Exception as e:  # calamine raises one error class per format problem
        raise ReleaseFileError(SOURCE, name, f"unreadable workbook (.xlsx or .xls): {' '.join(str(e).split())}") from None
    for sheet in reader.sheet_names:
        try:
            frame = reader.load_sheet(sheet, header_row=None).to_polars()
        except Exception as e:  # a damaged archive is often found only when a sheet is read
            raise ReleaseFileError(SOURCE, name, f"unreadable sheet {sheet!r}: {' '.join(str(e).split())}") from None
        rows = [list(r) for r in frame.iter_rows()]
        head = " ".join(_text(c) for r in rows[:5] for c in r if c is not None)
        if TITLE in _text(sheet) or TITLE in head:
            return sheet, rows
    raise ReleaseFileError(SOURCE, name, f"no sheet titled 「(1){TITLE}」 (sheets: {reader.sheet_names}); looked for "
                           + LOOKED_FOR)


def _find_header(rows: list[list[object]]) -> tuple[int, int, dict[int, str]] | None:
    """(last header row index, item column, {column: measure}); the header may span two rows
    (受入 / 払出 above their parts, merged cells read as one value then blanks)."""
    for i, row in enumerate(rows[:40]):
        cells = [_text(c) for c in row]
        item_col = next((j for j, c in enumerate(cells) if ITEM_HEADER.match(c)), None)
        if item_col is None:
            continue
        below = [_text(c) for c in rows[i + 1]] if i + 1 < len(rows) else []
        two_rows = any(re.search(r"生産|輸入|輸出|消費|その他", c) for c in below)
        cols: dict[int, str] = {}
        group = ""
        for j, c in enumerate(cells):
            if two_rows:
                group = c or group
                kind = _column_kind(group, below[j] if j < len(below) else "")
            else:
                kind = _column_kind("", c)
            if kind and kind not in cols.values():
                cols[j] = kind
        if "closing_stock_t" in cols.values() and {"production_t", "imports_t", "consumption_t"} & set(cols.values()):
            return i + (1 if two_rows else 0), item_col, cols
    return None


def parse_workbook(ref: ReleaseFile, data: bytes) -> Parsed:
    """Rows of `schemas.meti.MetiSupplyDemand` from one workbook (one month, or a year's totals)."""
    sheet, rows = _sheet_rows(data, ref.name)
    found = _find_header(rows)
    if found is None:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet!r}: no header row found; looked for {LOOKED_FOR}",
                               column=sheet)
    header_i, item_col, cols = found
    above = " ".join(_text(c) for r in rows[:header_i + 1] for c in r if c is not None)
    when = period_in(above) or period_in(ref.name)
    if when is None:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet!r}: no survey month in the title (「平成31年5月分」) "
                                                 "or the file name (201905)", row=1)
    year, month = when
    freq = "M" if month else "A"
    period = Month(year, month or 12)
    if period > LAST_MONTH:
        raise ReleaseFileError(SOURCE, ref.name, f"{period}: the survey ended in December 2020", row=1)
    unit_col = next((j for j, c in enumerate(rows[header_i]) if _text(c) == "単位"), None)
    sheet_unit = _UNIT.search(above)
    if sheet_unit is None and unit_col is None:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet!r}: no unit statement (単位：t) or 単位 column",
                               row=header_i + 1)
    known = {r["item"]: r for r in items().iter_rows(named=True)}
    out, failures, breakdowns = [], [], 0
    for i, row in enumerate(rows[header_i + 1:], start=header_i + 2):
        label = _text(row[item_col]) if item_col < len(row) else ""
        values = [row[j] for j in cols if j < len(row)]
        if not label and all(_text(v) == "" for v in values):
            continue
        if _BREAKDOWN.search(label):
            breakdowns += 1
            continue
        if label.startswith(("注", "(注", "資料", "※")):
            continue
        item = known.get(label)
        if item is None:
            failures.append({"line": i, "column": "区分", "check": "item named in flows/reference/meti_items.csv",
                             "value": label})
            continue
        unit = _UNIT.search(f"単位：{_text(row[unit_col])}") if unit_col is not None else sheet_unit
        word = ((unit.group(1) or unit.group(2) or "") if unit else "t").lower()
        factor = 0.001 if word in ("kg", "キログラム") else 1.0
        figures: dict[str, float | None] = {}
        for j, measure in cols.items():
            try:
                x = number(row[j] if j < len(row) else None)
                figures[measure] = None if x is None else x * factor
            except ValueError:
                failures.append({"line": i, "column": measure, "check": "number", "value": _text(row[j])})
        out.append({"item": label, "metal": item["metal"], "form": item["form"], "metal_content": item["metal_content"],
                    "freq": freq, "year": year, "month": period.month, "period": period.first_day,
                    **{m: figures.get(m) for m in MEASURES}, "source_file": ref.name, "line": i})
    if not out and not failures:
        raise ReleaseFileError(SOURCE, ref.name, f"sheet {sheet!r}: no item rows under the header", row=header_i + 1)
    frame = pl.DataFrame(out, schema={"item": pl.String, "metal": pl.String, "form": pl.String,
                                      "metal_content": pl.Float64, "freq": pl.String, "year": pl.Int64,
                                      "month": pl.Int64, "period": pl.Date, **{m: pl.Float64 for m in MEASURES},
                                      "source_file": pl.String, "line": pl.Int64})
    return Parsed(frame=frame.with_columns(pl.lit(ref.published, dtype=pl.Date).alias("vintage")),
                  failures=pl.DataFrame(failures, schema=FAILURE_SCHEMA), vintage=ref.published,
                  release="annual" if freq == "A" else "monthly",
                  months=[Month(year, m) for m in range(1, 13)] if freq == "A" else [period],
                  skipped={"breakdown_rows": breakdowns})


def metal_monthly(clean: pl.DataFrame | None) -> pl.DataFrame | None:
    """Monthly tonnes of metal per metal: items summed only where their metal content is known
    (flows/reference/meti_items.csv); ores and scrap without a content factor stay out."""
    if clean is None or clean.is_empty():
        return None
    rows = clean.filter((pl.col("freq") == "M") & pl.col("metal_content").is_not_null())
    cols = {"production_t": "production_t", "imports_t": "imports_t", "exports_t": "exports_t",
            "consumption_t": "consumption_t", "closing_stock_t": "stocks_t"}
    return rows.group_by("metal", "year", "month").agg(
        # a measure unknown for any item is unknown for the metal, never a partial sum
        pl.when(pl.col(c).is_null().any()).then(None).otherwise((pl.col(c) * pl.col("metal_content")).sum()).alias(out)
        for c, out in cols.items()).sort("metal", "year", "month")
