"""METI/ANRE 需給総括 workbooks (.xlsx and .xls, read with calamine) and the survey's archive pages.

Workbooks and pages are built here in the shape public descriptions of the survey give
(docs/sources.md, "METI"): the results page links one page per year (令和2年 ... 平成24年), the
workbooks sit on those pages, one per month (「平成31年5月分」) plus annual ones; in 「(1)需給総括」
items are rows under the survey's own names, the month is in the title, 受入 / 払出 head their parts.
"""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import polars as pl
import pytest
import xlwt

from flows.errors import FetchError, LayoutError, ReleaseFileError
from flows.httpclient import session
from flows.periods import Month, Year
from flows.sources import ReleaseFile
from flows.sources.meti import Meti
from flows.sources.meti.parse import metal_monthly, parse_workbook, period_in

HEAD1 = ["区分", "月初在庫", "受入", None, None, None, "払出", None, None, None, "月末在庫"]
HEAD2 = [None, None, "生産", "輸入", "その他", "計", "消費", "輸出", "その他", "計", None]
ROWS = [["ニッケル", 100.0, 40.0, 60.0, 0.0, 100.0, 90.0, 5.0, 0.0, 95.0, 105.0],
        ["うち販売業者", 10.0, None, None, None, None, None, None, None, None, 12.0],
        ["タングステン鉱", 50.0, 0.0, 20.0, 0.0, 20.0, 18.0, 0.0, 0.0, 18.0, 52.0],
        ["ニッケルの故又はくず", 30.0, 0.0, 10.0, 0.0, 10.0, 9.0, 0.0, 0.0, 9.0, 31.0]]


def sheet_rows(title="非鉄金属等需給動態統計 平成31年4月分 (1)需給総括", unit="単位：t", head=(HEAD1, HEAD2), rows=ROWS):
    return [[title], [unit], *head, *rows, ["(注) 数値は速報値"]]


def xlsx(rows, sheet="(1)需給総括") -> bytes:
    wb = openpyxl.Workbook()
    wb.active.title = "目次"
    ws = wb.create_sheet(sheet)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def xls(rows, sheet="(1)需給総括") -> bytes:
    """The old Excel format (BIFF8) some years' workbooks come in."""
    wb = xlwt.Workbook()
    wb.add_sheet("目次")
    ws = wb.add_sheet(sheet)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            if v is not None:
                ws.write(i, j, v)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def parse(data, name="w.xlsx"):
    return parse_workbook(ReleaseFile("meti", name, f"file:///{name}", published=dt.date(2019, 6, 28)), data)


@pytest.mark.parametrize("make", [xlsx, xls])
def test_items_as_rows_month_from_the_title(make):
    p = parse(make(sheet_rows()), "w.xls" if make is xls else "w.xlsx")
    assert p.failures.is_empty() and p.months == [Month(2019, 4)] and p.skipped == {"breakdown_rows": 1}
    by_item = {r["item"]: r for r in p.frame.iter_rows(named=True)}
    assert set(by_item) == {"ニッケル", "タングステン鉱", "ニッケルの故又はくず"}  # ore, metal, scrap kept apart
    ni = by_item["ニッケル"]
    assert (ni["metal"], ni["form"], ni["production_t"], ni["imports_t"], ni["consumption_t"], ni["exports_t"],
            ni["opening_stock_t"], ni["closing_stock_t"], ni["receipts_total_t"]) == \
        ("nickel", "metal", 40.0, 60.0, 90.0, 5.0, 100.0, 105.0, 100.0)
    assert by_item["タングステン鉱"]["form"] == "ore" and by_item["タングステン鉱"]["metal_content"] is None


def test_metal_sums_only_items_with_known_content():
    totals = metal_monthly(parse(xlsx(sheet_rows())).frame)
    assert totals["metal"].to_list() == ["nickel"]  # scrap (content unknown) not added; tungsten ore neither
    assert totals.row(0, named=True)["consumption_t"] == 90.0 and totals.row(0, named=True)["stocks_t"] == 105.0


def test_month_from_the_file_name_and_annual_workbooks():
    p = parse(xlsx(sheet_rows(title="(1)需給総括")), "hitetsu_201811.xlsx")
    assert p.months == [Month(2018, 11)]
    annual = parse(xlsx(sheet_rows(title="非鉄金属等需給動態統計 令和元年分 (1)需給総括")))
    assert set(annual.frame["freq"]) == {"A"} and annual.frame["year"][0] == 2019
    assert metal_monthly(annual.frame).is_empty()  # annual totals never double the months
    assert period_in("令和2年12月分") == (2020, 12) and period_in("平成24年") == (2012, None)


def test_kg_statement_converts_to_tonnes():
    assert parse(xlsx(sheet_rows(unit="単位：kg"))).frame["production_t"][0] == pytest.approx(0.04)


@pytest.mark.parametrize("data,problem", [
    (xlsx([["(2)品目別"], ["単位：t"]], sheet="Sheet9"), "no sheet titled"),
    (xlsx(sheet_rows(head=(["品目", "A", "B"], ["x", "y", "z"]))), "no header row found; looked for"),
    (xlsx(sheet_rows(unit="注記")), "no unit statement"),
    (xlsx(sheet_rows(title="(1)需給総括")), "no survey month"),
    (b"plain text", "unreadable workbook"),
])
def test_other_layouts_are_refused_with_what_was_looked_for(data, problem):
    with pytest.raises(ReleaseFileError, match=problem):
        parse(data)


def test_unknown_items_and_months_after_the_survey_fail():
    p = parse(xlsx(sheet_rows(rows=[ROWS[0], ["ウラン", 1.0, 1.0, 1.0, 0.0, 2.0, 1.0, 0.0, 0.0, 1.0, 1.0]])))
    assert p.failures.row(0, named=True)["check"] == "item named in flows/reference/meti_items.csv"
    with pytest.raises(ReleaseFileError, match="survey ended in December 2020"):
        parse(xlsx(sheet_rows(title="令和3年1月分 (1)需給総括")))


# ----------------------------------------------------------------------------- the archive pages
RESULTS = """<html><body><h2>統計表一覧</h2><ul>
<li><a href="/statistics/coal_and_minerals/cm002/results/r02.html">令和2年</a></li>
<li><a href="results/h31.html">令和元年</a></li>
<li><a href="https://elsewhere.example/statistics/h30.html">平成30年</a></li>
<li><a href="/statistics/coal_and_minerals/cm002/pdf/seigo.xlsx">正誤表</a></li></ul></body></html>"""
YEAR_2019 = """<html><body><ul>
<li><a href="/statistics/coal_and_minerals/cm002/xls/201904.xlsx">平成31年4月分</a></li>
<li><a href="/statistics/coal_and_minerals/cm002/xls/201905.xls">令和元年5月分</a></li>
<li><a href="/statistics/coal_and_minerals/cm002/xls/2019nen.xlsx">令和元年分（年報）</a></li></ul></body></html>"""


@pytest.fixture
def meti_site(httpserver, settings_env):
    base = "/statistics/coal_and_minerals/cm002"
    httpserver.expect_request(f"{base}/results.html").respond_with_data(RESULTS, content_type="text/html; charset=utf-8")
    httpserver.expect_request(f"{base}/results/h31.html").respond_with_data(YEAR_2019, content_type="text/html")
    httpserver.expect_request(f"{base}/results/r02.html").respond_with_data("<html><p>準備中</p></html>",
                                                                          content_type="text/html")
    return settings_env(meti_base_url=httpserver.url_for("").rstrip("/"), inbox=None, http_retries=0)


def test_discovery_through_the_year_pages(meti_site):
    http = session(meti_site, "meti")
    may = Meti().discover(meti_site, http, Month(2019, 5))
    assert [r.name for r in may] == ["201905.xls"] and may[0].note == "令和元年5月分"
    assert [r.name for r in Meti().discover(meti_site, http, Year(2019))] == ["201904.xlsx", "201905.xls", "2019nen.xlsx"]
    with pytest.raises(FetchError, match=r"no page for 2018 linked \(years: \[2019, 2020\]\)"):  # other hosts ignored
        Meti().discover(meti_site, http, Month(2018, 5))
    with pytest.raises(LayoutError, match="workbook links"):
        Meti().discover(meti_site, http, Month(2020, 5))


def test_discovery_refuses_periods_after_2020(settings_env):
    s = settings_env(meti_base_url="http://127.0.0.1:9")
    with pytest.raises(FetchError, match="abolished in December 2020"):
        Meti().discover(s, session(s, "meti"), Month(2021, 3))
