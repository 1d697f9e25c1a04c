"""Parse a Japan Customs 品別国別表 CSV (commodity x country, one year) to clean monthly rows.

Layout (docs/sources.md §1.2, read by header *name*, never by position): `Exp or Imp, Year, HS, Country,
Unit1, Unit2, Quantity1-Year, Quantity2-Year, Value-Year`, then `Quantity1-<Mon>, Quantity2-<Mon>,
Value-<Mon>` for Jan..Dec (45 columns). Quirks handled:
- HS wrapped in single quotes (`'280530000'`); Country an integer (`105`);
- older files spell April `Apl`;
- Unit1 blank (spaces) with Quantity1 0; quantity 0 with value > 0 is legal (amounts under one
  unit are dropped, docs/sources.md §1.1);
- `utf-8-sig` (BOM) or `cp932` encodings;
- rows whose HS or Country is not a code (S-TOTAL and other summary rows) are skipped and counted;
- a by-customs-office variant adds `Custom` after `Year` (46 columns): summed to national rows;
- a file carries every month of its year published so far, later months 0: the months carried
  are 1..the last month with any non-zero figure anywhere in the file.
Only codes whose HS6 heading is in the commodity catalogue are kept, filtered before typing.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import itertools
import re
from dataclasses import dataclass, replace

import pandera.errors
import polars as pl

from flows.catalogue import Catalogue
from flows.errors import ReleaseFileError
from flows.periods import Month
from flows.sources import FAILURE_SCHEMA, Parsed, ReleaseFile, no_failures
from flows.sources.japan_customs.vintages import file_stages
from schemas.japan_customs import FLOW_CODES, MEASURES, MONTH_NAMES, release_rows_schema

SOURCE = "japan_customs"

# Customs unit codes that measure mass, and their factor to kg (customs.go.jp 数量単位コード [I]:
# KG kilogram, MT metric ton, GR gram, CT metric carat = 0.2 g).
MASS_UNITS_KG = {"KG": 1.0, "MT": 1000.0, "GR": 0.001, "CT": 0.0002}

_MEASURE_HEADER = re.compile(r"^(quantity1|quantity2|value)-(year|" + "|".join(MONTH_NAMES) + r"|apl)$")
_FIXED_HEADERS = {
    "exporimp": "flow_code",
    "year": "year",
    "custom": "customs_office",
    "customs": "customs_office",
    "hs": "hs9",
    "country": "country_code",
    "unit1": "unit1",
    "unit2": "unit2",
}
REQUIRED = ["flow_code", "year", "hs9", "country_code", "unit1", "unit2",
            *[f"{m}_{p}" for m in MEASURES for p in (*MONTH_NAMES, "year")]]
MEASURE_COLS = [f"{m}_{p}" for m in MEASURES for p in (*MONTH_NAMES, "year")]


def decode(data: bytes, file: str) -> bytes:
    """UTF-8 bytes of the file without BOM: `utf-8-sig` first, then `cp932` (docs/sources.md §1.2)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932").encode("utf-8")
    except UnicodeDecodeError as e:
        raise ReleaseFileError(SOURCE, file, f"neither UTF-8 nor CP932 text (byte {e.start})") from None


def canonical_header(header: str) -> str | None:
    """Canonical column name for a published header, or None if unknown."""
    h = re.sub(r"[\s_]+", "", header).lower()
    if h in _FIXED_HEADERS:
        return _FIXED_HEADERS[h]
    m = _MEASURE_HEADER.match(h)
    if m:
        period = "apr" if m.group(2) == "apl" else m.group(2)
        return f"{m.group(1)}_{period}"
    return None


def read_rows(data: bytes, file: str) -> tuple[pl.DataFrame, dict[str, str]]:
    """All rows as strings with canonical column names and a `line` column; and canonical -> header."""
    text = decode(data, file)
    if not text.strip():
        raise ReleaseFileError(SOURCE, file, "empty file", row=1)
    try:
        raw = pl.read_csv(io.BytesIO(text), infer_schema=False, has_header=True, quote_char='"')
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError) as e:
        line, fields, expected = _ragged_line(text)
        if line is not None:
            raise ReleaseFileError(SOURCE, file, f"row has {fields} fields, the header has {expected}",
                                   row=line) from None
        raise ReleaseFileError(SOURCE, file, f"not a readable CSV: {str(e).splitlines()[0]}") from None
    names: dict[str, str] = {}
    unknown = []
    for header in raw.columns:
        if not header.strip() or header.startswith("_duplicated_"):
            if header.startswith("_duplicated_"):
                raise ReleaseFileError(SOURCE, file, "duplicated column header", row=1)
            if raw[header].drop_nulls().str.strip_chars().str.len_chars().sum() == 0:
                continue  # a trailing comma: empty, unnamed column
        canon = canonical_header(header)
        if canon is None:
            unknown.append(header)
        elif canon in names:
            raise ReleaseFileError(SOURCE, file, f"column {header!r} given twice (as {names[canon]!r})", row=1)
        else:
            names[canon] = header
    missing = [c for c in REQUIRED if c not in names]
    if unknown or missing:
        problems = []
        if missing:
            shown = ", ".join(_display(c) for c in missing[:6])
            more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
            problems.append(f"missing columns {shown}{more}")
        if unknown:
            problems.append("unrecognised columns " + ", ".join(repr(u) for u in unknown))
        raise ReleaseFileError(SOURCE, file, "not the 品別国別表 layout: " + "; ".join(problems), row=1)
    frame = raw.select([pl.col(h).alias(c) for c, h in names.items()]).with_row_index("line", offset=2)
    return frame.with_columns(pl.col("line").cast(pl.Int64)), names


def _ragged_line(text: bytes) -> tuple[int | None, int, int]:
    """First line whose field count differs from the header's (slow path, only after a read error)."""
    reader = csv.reader(io.StringIO(text.decode("utf-8"), newline=""))
    expected = len(next(reader, []))
    for cells in reader:
        if cells and len(cells) != expected:
            return reader.line_num, len(cells), expected
    return None, 0, expected


def _display(canon: str) -> str:
    for header, c in _FIXED_HEADERS.items():
        if c == canon:
            return {"flow_code": "'Exp or Imp'", "hs9": "'HS'", "country_code": "'Country'"}.get(c, repr(header.title()))
    m, p = canon.split("_")
    return repr(f"{m.title()}-{p.title()}")


def parse_release(ref: ReleaseFile, data: bytes, sha256: str, catalogue: Catalogue, *, check: bool = True) -> Parsed:
    """Parse one release file to clean rows of `schemas.japan_customs.JapanCustomsTrade`.

    With `check` (one file on its own), the wide-row checks run here; the pipeline passes
    `check=False` and runs them once for its whole batch (`check_release_rows`)."""
    frame, names = read_rows(data, ref.name)
    parsed = rows_to_parsed(frame, names, ref, sha256, catalogue)
    return with_row_checks(parsed) if check else parsed


def with_row_checks(parsed: Parsed) -> Parsed:
    """A parsed file with its wide-row check failures added (and no clean rows if any)."""
    failures = check_release_rows([parsed])[0]
    if failures.is_empty():
        return parsed
    return replace(parsed, frame=pl.DataFrame(), rows=None,
                   failures=pl.concat([parsed.failures, failures]).sort("line", "column"))


def rows_to_parsed(frame: pl.DataFrame, names: dict[str, str], ref: ReleaseFile, sha256: str,
                   catalogue: Catalogue, *, nulls_allowed: bool = False) -> Parsed:
    """Release rows (strings, canonical column names, `line`) to clean rows; shared by the CSV
    files and the e-Stat API route. With `nulls_allowed`, a measure may be null (the API's
    non-numeric tokens `-`, `X`, `…`: unknown, never zero).

    Fast on purpose (a release is ~110,000 rows, ~1.5 % of them in the catalogue): one pass over
    every row for the file-wide facts (summary rows, months carried), then only the catalogue's
    rows are typed. Their wide-row checks (`release_rows_schema`, pandera) run once per batch of
    files (`check_release_rows`, the source's `check_rows`), not once per file.
    """
    frame = frame.with_columns(pl.col(c).fill_null("").str.strip_chars(" '\"") for c in ("hs9", "country_code"))

    # Summary rows (S-TOTAL and the like): HS or Country not made of digits.
    is_code = pl.col("hs9").str.contains(r"^\d+$") & pl.col("country_code").str.contains(r"^\d+$")
    facts = frame.select((~is_code).sum().alias("summary_rows"), is_code.sum().alias("codes"),
                         pl.col("year").filter(is_code).str.strip_chars().unique().implode().alias("years")).row(0, named=True)
    skipped = {"summary_rows": facts["summary_rows"]}
    # Months carried: 1..last month with any non-zero figure in the whole file (docs/sources.md §1.2),
    # told by the Value columns (a month traded has values somewhere in a file of thousands of
    # rows) holding a digit other than 0, looked for from December back: a complete year costs
    # one column, not a cast of all 36 measures of every row.
    last_month = next((i + 1 for i in range(11, -1, -1)
                       if frame.select(pl.col(f"value_{MONTH_NAMES[i]}").str.contains("[1-9]").any()).item()), 0)
    if not last_month:
        raise ReleaseFileError(SOURCE, ref.name, "no month carries any figure (empty release?)")

    kept = frame.filter(is_code & catalogue.keeps(pl.col("hs9")))
    skipped["outside_catalogue"] = facts["codes"] - kept.height
    if kept.is_empty():  # a chapter block without catalogue codes (most of a release's ~22)
        year = _year_of(facts["years"], ref)
        vintage, stages = file_stages(year, last_month, ref.published, dict(ref.stages))
        return Parsed(frame=pl.DataFrame(), failures=no_failures(), vintage=vintage, release=stages[last_month],
                      months=[Month(year, m) for m in range(1, last_month + 1)], skipped=skipped, stages=stages)
    kept = kept.with_columns(
        pl.when(pl.col("country_code").str.len_chars() <= 3).then(pl.col("country_code").str.zfill(3))
        .otherwise(pl.col("country_code")),
        *[pl.col(u).str.strip_chars().replace("", None) for u in ("unit1", "unit2")],
        *[pl.col(c).str.strip_chars() for c in MEASURE_COLS],
        pl.col("year").str.strip_chars(), pl.col("flow_code").str.strip_chars(),
    )

    # Type the numbers; a cell that is not a whole number is a failure naming line and column.
    int_cols = [*MEASURE_COLS, "year"]
    typed = kept.with_columns([_as_int(pl.col(c)).alias(c) for c in int_cols])
    cast_fail = _cast_failures(kept, typed, int_cols, names, nulls_allowed)
    if cast_fail.height:
        typed = typed.filter(~pl.col("line").is_in(cast_fail["line"].unique().implode()))

    years = typed["year"].unique().to_list()
    if len(years) > 1:
        raise ReleaseFileError(SOURCE, ref.name, f"one file must hold one year, found {sorted(years)}")
    year = years[0] if years else _year_of(facts["years"], ref)
    # Each month carries its own stage (one file holds Jan-Jun detailed and Jul provisional).
    vintage, stages = file_stages(year, last_month, ref.published, dict(ref.stages))
    clean = to_long(typed, last_month, ref, sha256, vintage, stages) if cast_fail.is_empty() else None
    return Parsed(
        frame=clean if clean is not None else pl.DataFrame(),
        failures=cast_fail.sort("line", "column"),
        vintage=vintage,
        release=stages[last_month],
        months=[Month(year, m) for m in range(1, last_month + 1)],
        skipped=skipped,
        stages=stages,
        rows=WideRows(typed, names, nulls_allowed) if clean is not None and typed.height else None,
    )


@dataclass(frozen=True)
class WideRows:
    """A file's typed rows in its wide layout, for `check_release_rows` (once per batch)."""

    frame: pl.DataFrame
    names: dict[str, str]  # canonical column -> the file's header
    nulls_allowed: bool


def _cast_failures(raw: pl.DataFrame, typed: pl.DataFrame, cols: list[str], names: dict[str, str],
                   nulls_allowed: bool) -> pl.DataFrame:
    """(line, column, check, value) of every cell that is not a whole number (or blank where not allowed)."""
    raw_nulls, typed_nulls = raw.select(cols).null_count().row(0), typed.select(cols).null_count().row(0)
    if raw_nulls == typed_nulls and (nulls_allowed and raw_nulls[cols.index("year")] == 0 or not any(raw_nulls)):
        return no_failures()  # every cell typed, no blank where one is refused: nothing to look for
    both = raw.select("line", *cols).hstack(typed.select(pl.col(c).alias(f"_t_{c}") for c in cols))
    flag = {c: (pl.col(c).is_null() & (not nulls_allowed or c == "year"))
            | (pl.col(c).is_not_null() & pl.col(f"_t_{c}").is_null()) for c in cols}
    bad = both.filter(pl.any_horizontal(list(flag.values())))
    if bad.is_empty():
        return no_failures()
    flags = bad.select("line", *[e.alias(c) for c, e in flag.items()]).unpivot(
        index="line", variable_name="canon", value_name="bad").filter("bad")
    values = bad.select("line", *cols).unpivot(index="line", variable_name="canon", value_name="value")
    return flags.join(values, on=["line", "canon"]).select(
        "line", pl.col("canon").replace_strict(names, return_dtype=pl.String).alias("column"),
        pl.lit("whole number").alias("check"), pl.col("value").fill_null("<blank>"))


def check_release_rows(items: list[Parsed]) -> list[pl.DataFrame]:
    """The wide-row checks (`release_rows_schema`) of a batch of files, run once per kind of file
    (CSV, API) over all their rows; failures per item, in order, named by each file's headers."""
    out = [no_failures() for _ in items]
    for nulls_allowed in (False, True):
        picked = [(i, p.rows) for i, p in enumerate(items)
                  if isinstance(p.rows, WideRows) and p.rows.nulls_allowed == nulls_allowed]
        if not picked:
            continue
        frames = [w.frame.select(_WIDE_COLS + (["customs_office"] if "customs_office" in w.frame.columns else []))
                  for _, w in picked]
        batch = pl.concat(frames, how="diagonal_relaxed")
        try:
            release_rows_schema(nulls_allowed).validate(batch, lazy=True)
        except pandera.errors.SchemaErrors as e:
            ends = list(itertools.accumulate(f.height for f in frames))
            lines = batch["line"]
            per: dict[int, list[dict]] = {}
            for r in e.failure_cases.iter_rows(named=True):
                idx = r["index"]
                k = bisect.bisect_right(ends, idx) if idx is not None else 0
                item, wide = picked[min(k, len(picked) - 1)]
                check, column = str(r["check"]), r["column"]
                if r["schema_context"] == "DataFrameSchema":  # an annual-sum check: name the Year column
                    measure = next((m for m in MEASURES if check.startswith(f"{m} for the year")), "value")
                    column = wide.names.get(f"{measure}_year", column)
                else:
                    column = wide.names.get(column, column)
                line = int(lines[idx]) if idx is not None and idx < len(lines) else None
                per.setdefault(item, []).append({"line": line, "column": column, "check": check,
                                                 "value": str(r["failure_case"])[:200]})
            for item, rows in per.items():
                out[item] = pl.DataFrame(rows, schema=FAILURE_SCHEMA).sort("line", "column")
    return out


_WIDE_COLS = ["line", "flow_code", "year", "hs9", "country_code", "unit1", "unit2", *MEASURE_COLS]


def _year_of(years: list[str], ref: ReleaseFile) -> int:
    """The year of a file none of whose rows is in the catalogue (a chapter block of other goods)."""
    if len(years) == 1 and str(years[0]).isdigit():
        return int(years[0])
    raise ReleaseFileError(SOURCE, ref.name, f"cannot tell the file's year (Year column holds {sorted(map(str, years))[:5]})",
                           column="Year")


def _as_int(expr: pl.Expr) -> pl.Expr:
    """Whole numbers; a quoted figure with thousands separators ("1,234") reads as 1234."""
    return expr.str.strip_chars().str.replace_all(",", "", literal=True).cast(pl.Int64, strict=False)


def to_long(typed: pl.DataFrame, last_month: int, ref: ReleaseFile, sha256: str, vintage: dt.date,
            stages: dict[int, str]) -> pl.DataFrame:
    """Wide rows to one row per month carried; all-zero months dropped; offices summed."""
    base = ["line", "flow_code", "year", "hs9", "country_code", "unit1", "unit2"]
    if "customs_office" in typed.columns:
        base.append("customs_office")
    months = MONTH_NAMES[:last_month]
    # one explode of the three measures' month lists (not one select per month)
    long = typed.select(
        *base, pl.lit(list(range(1, last_month + 1)), dtype=pl.List(pl.Int64)).alias("month"),
        *[pl.concat_list([pl.col(f"{m}_{p}") for p in months]).alias(m) for m in MEASURES],
    ).explode(["month", *MEASURES]).filter(pl.any_horizontal([(pl.col(m) != 0) | pl.col(m).is_null() for m in MEASURES]))
    keys = ["flow_code", "year", "month", "hs9", "country_code", "unit1", "unit2"]
    if "customs_office" in long.columns:  # by-office variant: national rows (docs/sources.md §1.2)
        long = long.group_by(keys).agg(pl.col("line").min(), *[pl.col(m).sum() for m in MEASURES])
    factor2 = pl.col("unit2").replace_strict(MASS_UNITS_KG, default=None, return_dtype=pl.Float64)
    factor1 = pl.col("unit1").replace_strict(MASS_UNITS_KG, default=None, return_dtype=pl.Float64)
    return long.select(
        pl.col("flow_code").replace_strict(FLOW_CODES, default=None, return_dtype=pl.String).alias("flow"),
        "year", "month",
        pl.date(pl.col("year"), pl.col("month"), 1).alias("period"),
        "hs9",
        pl.col("hs9").str.slice(0, 6).alias("hs6"),
        "country_code", "unit1", "unit2", "quantity1", "quantity2",
        pl.col("value").alias("value_jpy_thousand"),
        pl.when(factor2.is_not_null()).then(pl.col("quantity2") * factor2)
        .otherwise(pl.col("quantity1") * factor1).alias("net_mass_kg"),
        pl.lit(vintage, dtype=pl.Date).alias("vintage"),
        pl.col("month").replace_strict(stages, return_dtype=pl.String).alias("release"),
        pl.lit(ref.name).alias("source_file"),
        pl.lit(sha256).alias("sha256"),
        "line",
    ).sort("flow", "year", "month", "hs9", "country_code")
