"""The 品別国別表 parser on every quirk of docs/sources.md §1.2."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from builders import csv_bytes, header, row
from flows.catalogue import Catalogue
from flows.errors import ReleaseFileError
from flows.periods import Month
from flows.sources import ReleaseFile
from flows.sources.japan_customs.parse import parse_release
from flows.warehouse import sha256_bytes

CAT = Catalogue.load()


def parse(data: bytes, name: str = "test.csv", published: dt.date | None = None):
    ref = ReleaseFile("japan_customs", name, f"file:///inbox/{name}", published=published)
    return parse_release(ref, data, sha256_bytes(data), CAT)


def test_quoted_hs_apl_blank_unit1_and_months_carried():
    data = csv_bytes([
        row("280530000", 105, {1: (1000, 500), 4: (2000, 900)}, year=2008),
        row("284690100", 110, {2: (0, 7)}, year=2008),  # quantity 0 with value > 0 is legal
    ], apl=True)
    p = parse(data)
    assert p.failures.is_empty()
    f = p.frame
    assert f.height == 3
    apr = f.filter((pl.col("hs9") == "280530000") & (pl.col("month") == 4)).row(0, named=True)
    assert apr["quantity2"] == 2000 and apr["value_jpy_thousand"] == 900 and apr["unit1"] is None
    assert apr["country_code"] == "105" and apr["hs6"] == "280530" and apr["flow"] == "import"
    assert apr["line"] == 2
    zero_q = f.filter(pl.col("hs9") == "284690100").row(0, named=True)
    assert zero_q["quantity2"] == 0 and zero_q["value_jpy_thousand"] == 7
    # carries Jan..Apr (last non-zero month anywhere), later months are not yet published
    assert p.months == [Month(2008, m) for m in range(1, 5)]


def test_real_export_row_example():
    # docs/sources.md §1.2: `1,2008,'051199000',312,,KG,0,62,5063,0,0,432,...` (outside the catalogue)
    cells = ["1", "2008", "'051199000'", "312", "", "KG", "0", "62", "5063", "0", "0", "432"] + ["0"] * 33
    cells[-3:] = ["0", "62", "4631"]
    keep = row("850511000", 304, {1: (5, 10)}, flow=1, year=2008)
    p = parse(csv_bytes([cells, keep]))
    assert p.failures.is_empty()
    assert p.frame["hs9"].to_list() == ["850511000"]
    assert p.frame["flow"].to_list() == ["export"]
    assert p.skipped["outside_catalogue"] == 1
    assert p.months[-1] == Month(2008, 12)


def test_summary_rows_are_recognised_and_skipped():
    rows = [
        row("280530000", 105, {1: (10, 20)}),
        ["2", "2020", "'280530000'", "S-TOTAL", "", "KG", "0", "10", "20", "0", "10", "20"] + ["0"] * 33,
        ["2", "2020", "S-TOTAL", "", "", "", "0", "10", "20", "0", "10", "20"] + ["0"] * 33,
        ["2", "2020", "", "", "", "", "0", "0", "0"] + ["0"] * 36,
    ]
    p = parse(csv_bytes(rows))
    assert p.failures.is_empty()
    assert p.frame.height == 1
    assert p.skipped["summary_rows"] == 3


@pytest.mark.parametrize("encoding,bom,crlf", [("utf-8", True, False), ("cp932", False, True), ("utf-8", False, True)])
def test_encodings_and_line_ends(encoding, bom, crlf):
    rows = [row("280530000", 105, {7: (1620, 3000)}),
            ["2", "2020", "合計", "", "", "", "0", "0", "0"] + ["0"] * 36]  # a non-ASCII summary row
    p = parse(csv_bytes(rows, encoding=encoding, bom=bom, crlf=crlf))
    assert p.failures.is_empty()
    assert p.frame["quantity2"].to_list() == [1620]
    assert p.frame["unit2"].to_list() == ["KG"]  # no stray \r from CRLF


def test_unit1_of_spaces_is_blank_and_units_convert_to_kg():
    p = parse(csv_bytes([
        row("280530000", 105, {1: (100, 1)}, unit1="   "),
        row("261000000", 551, {1: (3, 9)}, unit2="MT"),
        row("711011000", 551, {1: (2500, 8)}, unit2="GR"),
        row("850511000", 117, {1: (4, 50, 9)}, unit1="NO", unit2="KG"),
        row("850511000", 105, {1: (7, 0, 9)}, unit1="NO", unit2=""),  # no mass unit at all
    ]))
    assert p.failures.is_empty()
    kg = dict(zip(p.frame["hs9"] + "/" + p.frame["country_code"], p.frame["net_mass_kg"]))
    assert kg["280530000/105"] == 100.0
    assert kg["261000000/551"] == 3000.0
    assert kg["711011000/551"] == pytest.approx(2.5)
    assert kg["850511000/117"] == 50.0
    assert kg["850511000/105"] is None
    assert p.frame.filter(pl.col("country_code") == "105", pl.col("hs9") == "280530000")["unit1"].to_list() == [None]


def test_headers_are_read_by_name_not_position():
    cols = header()
    r = row("280530000", 105, {3: (5, 6)})
    order = list(reversed(range(len(cols))))
    data = csv_bytes([[r[i] for i in order]], head=[cols[i] for i in order])
    p = parse(data)
    assert p.failures.is_empty()
    assert p.frame.select("month", "quantity2", "value_jpy_thousand").row(0) == (3, 5, 6)


def test_by_customs_office_variant_is_summed_to_national_rows():
    rows = [
        row("280530000", 105, {1: (10, 100)}, custom="100"),
        row("280530000", 105, {1: (5, 50), 2: (1, 1)}, custom="200"),
        row("284610000", 210, {1: (3, 30)}, custom="200"),
    ]
    p = parse(csv_bytes(rows, custom=True))
    assert p.failures.is_empty()
    jan = p.frame.filter((pl.col("hs9") == "280530000") & (pl.col("month") == 1)).row(0, named=True)
    assert (jan["quantity2"], jan["value_jpy_thousand"], jan["line"]) == (15, 150, 2)
    assert p.frame.height == 3


def test_country_written_without_leading_zeros_is_padded():
    p = parse(csv_bytes([row("280530000", "0105", {1: (1, 1)}), row("280530000", 5, {1: (1, 1)})]))
    # "0105" is four digits: not a 3-digit code; 5 pads to 005
    assert p.failures.filter(pl.col("column") == "Country").height == 1
    assert p.failures["line"].to_list() == [2]


def test_vintage_from_name_and_kind():
    data = csv_bytes([row("280530000", 105, {m: (1, 1) for m in range(1, 13)}, year=2019)])
    assert (parse(data, published=dt.date(2020, 11, 27)).release) == "fixed"
    assert (parse(data, published=dt.date(2020, 3, 31)).release) == "revised"
    assert (parse(data, published=dt.date(2020, 1, 30)).release) == "provisional_9digit"
    p = parse(data)
    assert (p.vintage, p.release) == (dt.date(2020, 1, 31), "provisional_9digit")
    partial = csv_bytes([row("280530000", 105, {m: (1, 1) for m in range(1, 8)}, year=2020)])
    assert parse(partial, published=dt.date(2020, 9, 30)).release == "detailed"
    assert parse(partial).vintage == dt.date(2020, 8, 31)


# ----------------------------------------------------------------------------- malformed input
def failures_of(data: bytes) -> pl.DataFrame:
    p = parse(data)
    assert not p.failures.is_empty(), "expected failures"
    return p.failures


def test_non_numeric_cell_names_line_and_column():
    f = failures_of(csv_bytes([row("280530000", 105, {1: (1, 1)}), row("284610000", 210, {1: (1, 1)})])
                    .replace(b"'284610000',210,,KG,0,1,1,0,1,1", b"'284610000',210,,KG,0,1,1,0,1,1x"))
    r = f.row(0, named=True)
    assert (r["line"], r["column"], r["value"]) == (3, "Value-Jan", "1x")


def test_negative_amount_fails():
    f = failures_of(csv_bytes([row("280530000", 105, {1: (1, -5)}, year_totals=(0, 1, -5))]))
    assert ("Value-Jan" in f["column"].to_list()) and f["line"].to_list()[0] == 2


def test_year_total_must_equal_sum_of_months():
    f = failures_of(csv_bytes([row("280530000", 105, {1: (10, 10), 2: (5, 5)}, year_totals=(0, 15, 16))]))
    assert f.row(0, named=True)["column"] == "Value-Year"
    assert f.row(0, named=True)["line"] == 2


def test_malformed_code_in_a_catalogue_heading_fails():
    f = failures_of(csv_bytes([row("28053000", 105, {1: (1, 1)})]))
    assert f.row(0, named=True)["column"] == "HS"


def test_bad_flow_code_fails():
    f = failures_of(csv_bytes([row("280530000", 105, {1: (1, 1)}, flow=3)]))
    assert f.row(0, named=True)["column"] == "Exp or Imp"


def test_missing_column_is_a_clear_error():
    head = [c for c in header() if c != "Value-Jul"]
    r = row("280530000", 105, {1: (1, 1)})
    del r[header().index("Value-Jul")]
    with pytest.raises(ReleaseFileError, match=r"test.csv, line 1: .*missing columns 'Value-Jul'"):
        parse(csv_bytes([r], head=head))


def test_unknown_column_is_a_clear_error():
    head = header() + ["Remarks"]
    with pytest.raises(ReleaseFileError, match="unrecognised columns 'Remarks'"):
        parse(csv_bytes([row("280530000", 105, {1: (1, 1)}) + ["x"]], head=head))


def test_long_row_is_a_clear_error():
    data = csv_bytes([row("280530000", 105, {1: (1, 1)})]) + b"2,2020,'280530000',110,,KG" + b",0" * 40 + b"\n"
    with pytest.raises(ReleaseFileError, match=r"test.csv, line 3: row has 46 fields, the header has 45"):
        parse(data)


def test_short_row_names_its_line():
    data = csv_bytes([row("280530000", 105, {1: (1, 1)})]) + b"2,2020,'280530000',110,,KG,1,2\n"
    f = failures_of(data)
    assert set(f["line"].to_list()) == {3}
    assert "Value-Dec" in f["column"].to_list()


@pytest.mark.parametrize("data,problem", [
    (b"", "empty file"),
    (b"<!DOCTYPE html><html><body>maintenance</body></html>\n", "not the"),
    (b"\x81\x00\xff\xfe\x80", "neither UTF-8 nor CP932"),
])
def test_unusable_files(data, problem):
    with pytest.raises(ReleaseFileError, match=problem):
        parse(data)


def test_file_mixing_years_is_rejected():
    with pytest.raises(ReleaseFileError, match="one year"):
        parse(csv_bytes([row("280530000", 105, {1: (1, 1)}, year=2019), row("280530000", 110, {1: (1, 1)}, year=2020)]))


def test_release_with_no_figures_is_rejected():
    with pytest.raises(ReleaseFileError, match="no month carries any figure"):
        parse(csv_bytes([row("280530000", 105, {})]))


def test_chapter_block_without_catalogue_codes_lands_nothing():
    """e-Stat splits a release into ~22 chapter blocks; most hold none of our codes (docs/sources.md §1.3)."""
    p = parse(csv_bytes([row("010121000", 304, {1: (3, 900), 2: (1, 300)})]))
    assert p.failures.is_empty() and p.frame.is_empty()
    assert p.months == [Month(2020, 1), Month(2020, 2)]
    assert p.skipped["outside_catalogue"] == 1


def test_quoted_figures_with_thousands_separators():
    cells = row("280530000", 105, {1: (1234, 5678)})
    cells = [f'"{int(c):,}"' if c.isdigit() and int(c) >= 1000 else c for c in cells]
    p = parse(csv_bytes([cells]))
    assert p.failures.is_empty()
    assert p.frame.select("quantity2", "value_jpy_thousand").row(0) == (1234, 5678)
