"""`rarewatch sources check` against local servers serving pages in the live sites' shapes.

e-Stat: tests/fixtures/estat (navigation and month pages, see test_estat_files); China Customs:
an index page with table (5) and (6) rows as the real index has them (../shared/fixtures/gacc
follows the same markup) and release pages built by test_gacc; Comtrade: the API envelope; METI:
a results page linking a workbook.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from werkzeug import Response

from conftest import SAMPLES
from flows.checks import check_sources
from flows.cli import main
from test_estat_files import serve_estat
from test_gacc import imports_page, page

NOW = dt.datetime(2020, 9, 5, tzinfo=dt.UTC)


def gacc_index() -> str:
    """The preliminary index's markup: one row per table and currency, month links to Statics/<uuid>.html."""
    rows = []
    for n, what in ((5, "Exports"), (6, "Imports")):
        for cur in ("CNY", "USD"):
            rows.append(f"<tr><td>({n}) China's Major {what} by Quantity and Value (in {cur})</td>"
                        f"<td><a href='/Statics/t{n}-{cur}-7.html'>Jul.</a></td></tr>")
    return ('<html><body><select id="preliminarysel"><option value="2020" selected>2020</option>'
            f'<option value="2019">2019</option></select><table>{"".join(rows)}</table></body></html>')


@pytest.fixture
def live(httpserver, settings_env):
    serve_estat(httpserver)
    httpserver.expect_request("/statics/report/preliminary2020.html").respond_with_data(
        gacc_index(), content_type="text/html; charset=utf-8")
    may = "(5) China's Major Exports by Quantity and Value, July 2020 (in CNY)"
    for cur in ("CNY", "USD"):
        httpserver.expect_request(f"/Statics/t5-{cur}-7.html").respond_with_data(
            page(title=may.replace("CNY", cur), banner=f"Value Unit: {cur} 100 Million",
                 groups=("July", "Jan-Jul in Total", "Jan-Jul 2019 in Total", "Year-on-Year ±%")),
            content_type="text/html")
        httpserver.expect_request(f"/Statics/t6-{cur}-7.html").respond_with_data(
            imports_page("July"), content_type="text/html")
    httpserver.expect_request("/data/v1/get/C/A/HS").respond_with_data(
        json.dumps({"elapsedTime": "0.1 secs", "count": 0, "data": [], "error": ""}), content_type="application/json")
    workbook = next((SAMPLES / "meti").glob("*.xlsx"))
    httpserver.expect_request("/statistics/coal_and_minerals/cm002/results.html").respond_with_data(
        "<html><a href='/statistics/coal_and_minerals/cm002/r02.html'>令和2年</a></html>",
        content_type="text/html; charset=utf-8")
    httpserver.expect_request("/statistics/coal_and_minerals/cm002/r02.html").respond_with_data(
        "<html><a href='/statistics/coal_and_minerals/cm002/xls/hitetsu_2020.xlsx'>令和2年12月分</a></html>",
        content_type="text/html; charset=utf-8")
    httpserver.expect_request("/statistics/coal_and_minerals/cm002/xls/hitetsu_2020.xlsx").respond_with_data(
        workbook.read_bytes(), content_type="application/vnd.ms-excel")
    base = httpserver.url_for("").rstrip("/")
    return settings_env(estat_base_url=base, gacc_base_url=base, comtrade_base_url=base, comtrade_api_key="k",
                        comtrade_min_interval="0", meti_base_url=base, inbox=None, http_retries=0)


def test_every_source_recognised(live, settings_env):
    checks = {c.source: c for c in check_sources(live, now=NOW)}
    assert all(c.ok for c in checks.values()), {n: c.problem for n, c in checks.items() if not c.ok}
    jc = checks["japan_customs"]
    assert (jc.latest, jc.published, jc.due_next, jc.files) == ("2020-07", "2020-08-31", "2020-08", 44)
    assert checks["gacc"].latest == "2020-07" and checks["gacc_imports"].latest == "2020-07"
    assert checks["comtrade"].latest == "2019"
    assert not (settings_env.warehouse).exists()  # writes nothing


def test_changed_page_names_the_source_and_what_was_missing(httpserver, live, settings_env, capsys, monkeypatch):
    monkeypatch.setattr("flows.checks.dt.datetime", type("D", (dt.datetime,), {"now": classmethod(lambda cls, tz=None: NOW)}))
    assert main(["sources", "check", "--source", "japan_customs", "--source", "gacc"]) == 0
    assert "| japan_customs | yes | yes | 2020-07 |" in capsys.readouterr().out
    httpserver.clear()
    serve_estat(httpserver, {("import", "23070907"): "<html><body><table><tr><td>2020年7月</td></tr></table></body></html>"})
    assert main(["sources", "check", "--source", "japan_customs"]) == 1
    err = capsys.readouterr().err
    assert "japan_customs: layout not recognised" in err and "looked for file articles" in err
    assert not (settings_env.warehouse / "quarantine").exists()  # a check keeps nothing
