"""The e-Stat API route for Japan Customs against a local server: same clean rows as the CSV route."""

from __future__ import annotations

import json
import logging

import polars as pl
import pytest
from werkzeug import Request, Response

from builders import MONTHS, csv_bytes, row
from flows.catalogue import Catalogue
from flows.errors import FetchError, ReleaseFileError
from flows.httpclient import session
from flows.periods import Month
from flows.sources import ReleaseFile
from flows.sources.japan_customs import JapanCustoms, estat_api
from flows.warehouse import sha256_bytes

CAT = Catalogue.load()
JC = JapanCustoms()
APP_ID = "app-id-0123456789"

# (hs9, country, unit1, unit2, {month: (q1, q2, value)})
TRADE = [
    ("280530000", 105, "", "KG", {1: (0, 1000, 500), 4: (0, 2000, 900), 7: (0, 1620, 3000)}),
    ("280530000", 110, "", "KG", {2: (0, 300, 100)}),
    ("284690100", 210, "", "KG", {3: (0, 0, 7), 7: (0, 50, 60)}),
    ("261000000", 551, "", "MT", {5: (0, 3, 9)}),
    ("850511000", 117, "NO", "KG", {6: (4, 50, 9)}),
    ("010121000", 304, "", "NO", {1: (0, 3, 900)}),  # outside the catalogue
]


def item_names() -> list[tuple[str, str]]:
    """cat02 items: codes as REFERENCE 1.3 says ([S]), names in e-Stat's Japanese style."""
    items = [("100", "単位1"), ("110", "単位2"), ("120", "数量1(年計)"), ("130", "数量2(年計)"), ("140", "金額(年計)")]
    for i in range(12):
        base = 150 + 30 * i
        items += [(str(base), f"数量1({i + 1}月)"), (str(base + 10), f"数量2({i + 1}月)"), (str(base + 20), f"金額({i + 1}月)")]
    return items


def meta(cat01: list[str]) -> dict:
    return {"GET_META_INFO": {"RESULT": {"STATUS": 0, "ERROR_MSG": "正常に終了しました。"},
                              "METADATA_INF": {"CLASS_INF": {"CLASS_OBJ": [
                                  {"@id": "cat01", "@name": "品目", "CLASS": [{"@code": c, "@name": c} for c in cat01]},
                                  {"@id": "cat02", "@name": "表章", "CLASS": [{"@code": c, "@name": n}
                                                                           for c, n in item_names()]},
                                  {"@id": "area", "@name": "国", "CLASS": {"@code": "50105", "@name": "中華人民共和国"}},
                              ]}}}}


def values(flow_tables: list, year: int = 2020, last_month: int = 7) -> list[dict]:
    out = []
    codes = {n: c for c, n in item_names()}
    for hs9, country, unit1, unit2, months in flow_tables:
        area = f"5{country:04d}"
        time = f"{year}000000"
        if unit1:
            out.append({"@cat01": hs9, "@cat02": codes["単位1"], "@area": area, "@time": time, "$": unit1})
        out.append({"@cat01": hs9, "@cat02": codes["単位2"], "@area": area, "@time": time, "$": unit2})
        totals = [0, 0, 0]
        for m in range(1, last_month + 1):
            q1, q2, v = months.get(m, (0, 0, 0))
            for name, x in ((f"数量1({m}月)", q1), (f"数量2({m}月)", q2), (f"金額({m}月)", v)):
                if x:  # e-Stat leaves out empty cells
                    out.append({"@cat01": hs9, "@cat02": codes[name], "@area": area, "@time": time, "$": str(x)})
            totals = [totals[0] + q1, totals[1] + q2, totals[2] + v]
        for name, x in zip(("数量1(年計)", "数量2(年計)", "金額(年計)"), totals):
            out.append({"@cat01": hs9, "@cat02": codes[name], "@area": area, "@time": time, "$": str(x)})
    return out


class EstatApiStandIn:
    """getMetaInfo / getStatsData with appId check, cdCat01 filter and NEXT_KEY paging."""

    def __init__(self, records: dict[str, list[dict]], page_size: int = 25, status: int = 0):
        self.records, self.page_size, self.status, self.calls = records, page_size, status, []

    def __call__(self, request: Request) -> Response:
        self.calls.append(request)
        a = request.args
        if a.get("appId") != APP_ID:
            body = {"GET_STATS_DATA": {"RESULT": {"STATUS": 100, "ERROR_MSG": "認証に失敗しました。"}}}
            return Response(json.dumps(body), content_type="application/json")
        table = self.records[a["statsDataId"]]
        if request.path.endswith("getMetaInfo"):
            return Response(json.dumps(meta(sorted({r["@cat01"] for r in table} | {"999999999"}))),
                            content_type="application/json")
        if self.status:
            body = {"GET_STATS_DATA": {"RESULT": {"STATUS": self.status, "ERROR_MSG": "パラメータが不正です。"}}}
            return Response(json.dumps(body), content_type="application/json")
        wanted = set(a["cdCat01"].split(","))
        hits = [r for r in table if r["@cat01"] in wanted and r["@time"] == a["cdTime"]]
        start = int(a.get("startPosition", 1))
        page = hits[start - 1:start - 1 + self.page_size]
        result_inf = {"TOTAL_NUMBER": len(hits), "FROM_NUMBER": start, "TO_NUMBER": start + len(page) - 1}
        if start - 1 + self.page_size < len(hits):
            result_inf["NEXT_KEY"] = start + self.page_size
        value = page[0] if len(page) == 1 else page  # a single VALUE comes as an object
        body = {"GET_STATS_DATA": {"RESULT": {"STATUS": 0, "ERROR_MSG": "正常に終了しました。"},
                                   "STATISTICAL_DATA": {"RESULT_INF": result_inf, "DATA_INF": {"VALUE": value}}}}
        return Response(json.dumps(body, ensure_ascii=False), content_type="application/json")


@pytest.fixture
def api(httpserver, settings_env):
    exports = [("850511000", 304, "", "KG", {1: (0, 5, 10)})]
    stand_in = EstatApiStandIn({"0003313966": values(TRADE), "0003313965": values(exports)})
    httpserver.expect_request("/rest/3.0/app/json/getMetaInfo").respond_with_handler(stand_in)
    httpserver.expect_request("/rest/3.0/app/json/getStatsData").respond_with_handler(stand_in)
    settings = settings_env(estat_api_base_url=httpserver.url_for("/rest/3.0/app/json"), estat_app_id=APP_ID,
                            inbox=None)
    return settings, stand_in


def csv_route() -> pl.DataFrame:
    rows = []
    for hs9, country, unit1, unit2, months in TRADE:
        rows.append(row(hs9, country, months, unit1=unit1, unit2=unit2))
    data = csv_bytes(rows)
    p = JC.parse(ReleaseFile("japan_customs", "imports.csv", "file:///x"), data, sha256_bytes(data), CAT)
    assert p.failures.is_empty()
    return p.frame


PROVENANCE = ["source_file", "sha256", "line"]


def test_api_route_gives_the_same_clean_rows_as_the_csv_route(api):
    settings, stand_in = api
    http = session(settings)
    refs = JC.discover(settings, http, Month(2020, 7))
    assert [r.name for r in refs] == ["estat_api_import_2020_0003313966.json", "estat_api_export_2020_0003313965.json"]
    data = JC.fetch(settings, http, refs[0])
    assert APP_ID not in data.decode() and APP_ID not in refs[0].url
    parsed = JC.parse(refs[0], data, sha256_bytes(data), CAT)
    assert parsed.failures.is_empty()
    api_rows = parsed.frame.drop(PROVENANCE).sort("hs9", "country_code", "month")
    csv_rows = csv_route().drop(PROVENANCE).sort("hs9", "country_code", "month")
    assert api_rows.equals(csv_rows), (api_rows, csv_rows)
    assert parsed.months[-1] == Month(2020, 7)
    # paged: more than one getStatsData call, each restricted to catalogue codes
    data_calls = [c for c in stand_in.calls if c.path.endswith("getStatsData")]
    assert len(data_calls) > 1 and any("startPosition" in c.args for c in data_calls)
    assert all("010121000" not in c.args["cdCat01"] and "999999999" not in c.args["cdCat01"] for c in data_calls)


def test_non_numeric_tokens_are_null_never_zero(api):
    settings, stand_in = api
    table = stand_in.records["0003313966"]
    codes = {n: c for c, n in item_names()}
    for r in table:
        if r["@cat01"] == "280530000" and r["@area"] == "50105" and r["@cat02"] == codes["金額(7月)"]:
            r["$"] = "X"
        if r["@cat01"] == "280530000" and r["@area"] == "50105" and r["@cat02"] == codes["金額(年計)"]:
            r["$"] = "***"
    http = session(settings)
    ref = JC.discover(settings, http, Month(2020, 7))[0]
    data = JC.fetch(settings, http, ref)
    p = JC.parse(ref, data, sha256_bytes(data), CAT)
    assert p.failures.is_empty()
    july = p.frame.filter((pl.col("hs9") == "280530000") & (pl.col("country_code") == "105") & (pl.col("month") == 7))
    assert july["value_jpy_thousand"].to_list() == [None] and july["quantity2"].to_list() == [1620]


def test_status_not_zero_is_a_clear_error_without_the_app_id(api, caplog):
    settings, stand_in = api
    stand_in.status = 100
    caplog.set_level(logging.DEBUG)
    http = session(settings)
    ref = JC.discover(settings, http, Month(2020, 7))[0]
    with pytest.raises(FetchError, match="STATUS 100: パラメータが不正です") as err:
        JC.fetch(settings, http, ref)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))  # werkzeug: the test server
    assert APP_ID not in str(err.value) and APP_ID not in ours and "appId=***" in ours


def test_wrong_app_id_is_reported(api, settings_env):
    settings = settings_env(estat_app_id="wrong")
    ref = JC.discover(settings, session(settings), Month(2020, 7))[0]
    with pytest.raises(FetchError, match="STATUS 100"):
        JC.fetch(settings, session(settings), ref)


def test_cat02_items_are_resolved_by_name_not_code():
    assert estat_api.classify_item("数量1(1月)") == "quantity1_jan"
    assert estat_api.classify_item("数量２（１２月）") == "quantity2_dec"
    assert estat_api.classify_item("金額(年計)") == "value_year"
    assert estat_api.classify_item("Value-Apr") == "value_apr"
    assert estat_api.classify_item("単位2") == "unit2"
    assert estat_api.classify_item("備考") is None
    odd = {"GET_META_INFO": {"METADATA_INF": {"CLASS_INF": {"CLASS_OBJ": {
        "@id": "cat02", "CLASS": {"@code": "100", "@name": "単位"}}}}}}
    with pytest.raises(ReleaseFileError, match="cannot resolve cat02 items"):
        estat_api.resolve_items(odd, "x.json")


def test_tables_cover_years():
    assert estat_api.table_id("import", 2020) == "0003313966"
    assert estat_api.table_id("import", 2024) == "0003425294"
    assert estat_api.table_id("export", 2026) == "0004049306"
    with pytest.raises(FetchError, match="start in 2016"):
        estat_api.table_id("import", 2010)


def test_month_names_cover_the_csv_layout():
    assert [m.lower() for m in MONTHS] == list(estat_api.MONTH_NAMES)
