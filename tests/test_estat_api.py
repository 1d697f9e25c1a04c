"""The e-Stat API route for Japan Customs against a local server: same clean rows as the CSV route."""

from __future__ import annotations

import datetime as dt
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
    """cat02 items as the real tables' metadata names them (docs/sources.md, "e-Stat API": `単位1`,
    `単位2`, `合計_数量1`, `合計_数量2`, `合計_金額`, `1月_数量1` ... `12月_金額`; codes 150 + 30 (m - 1)
    for quantity 1, +10 quantity 2, +20 value)."""
    items = [("100", "単位1"), ("110", "単位2"), ("120", "合計_数量1"), ("130", "合計_数量2"), ("140", "合計_金額")]
    for i in range(12):
        base = 150 + 30 * i
        items += [(str(base), f"{i + 1}月_数量1"), (str(base + 10), f"{i + 1}月_数量2"), (str(base + 20), f"{i + 1}月_金額")]
    return items


def full_width(text: str) -> str:
    """`KG` -> `ＫＧ`: the API gives unit values in full-width letters (docs/sources.md)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


TABLE_INF = {"@id": "0003313966", "STAT_NAME": {"@code": "00350300", "$": "貿易統計"},
             "TITLE": {"@no": "1", "$": "品別国別表 輸入 2016年～2020年"}, "UPDATED_DATE": "2020-08-31",
             "DESCRIPTION": ""}


def meta(cat01: list[str], table_inf: dict | None = None) -> dict:
    return {"GET_META_INFO": {"RESULT": {"STATUS": 0, "ERROR_MSG": "正常に終了しました。"},
                              "METADATA_INF": {"TABLE_INF": table_inf or TABLE_INF, "CLASS_INF": {"CLASS_OBJ": [
                                  {"@id": "cat01", "@name": "品目", "CLASS": [{"@code": c, "@name": c} for c in cat01]},
                                  {"@id": "cat02", "@name": "表章", "CLASS": [{"@code": c, "@name": n}
                                                                           for c, n in item_names()]},
                                  {"@id": "area", "@name": "国", "CLASS": {"@code": "50105", "@name": "105_中華人民共和国"}},
                              ]}}}}


def values(flow_tables: list, year: int = 2020, last_month: int = 7) -> list[dict]:
    out = []
    codes = {n: c for c, n in item_names()}
    for hs9, country, unit1, unit2, months in flow_tables:
        area = f"5{country:04d}"
        time = f"{year}000000"
        if unit1:
            out.append({"@cat01": hs9, "@cat02": codes["単位1"], "@area": area, "@time": time, "$": full_width(unit1)})
        out.append({"@cat01": hs9, "@cat02": codes["単位2"], "@area": area, "@time": time, "$": full_width(unit2)})
        totals = [0, 0, 0]
        for m in range(1, last_month + 1):
            q1, q2, v = months.get(m, (0, 0, 0))
            for name, x in ((f"{m}月_数量1", q1), (f"{m}月_数量2", q2), (f"{m}月_金額", v)):
                if x:  # e-Stat leaves out empty cells
                    out.append({"@cat01": hs9, "@cat02": codes[name], "@area": area, "@time": time, "$": str(x)})
            totals = [totals[0] + q1, totals[1] + q2, totals[2] + v]
        for name, x in zip(("合計_数量1", "合計_数量2", "合計_金額"), totals):
            out.append({"@cat01": hs9, "@cat02": codes[name], "@area": area, "@time": time, "$": str(x)})
    return out


class EstatApiStandIn:
    """getMetaInfo / getStatsData with appId check, cdCat01 filter and NEXT_KEY paging."""

    def __init__(self, records: dict[str, list[dict]], page_size: int = 25, status: int = 0,
                 tables: dict[str, dict] | None = None):
        self.records, self.page_size, self.status, self.calls = records, page_size, status, []
        self.tables = tables or {}

    def __call__(self, request: Request) -> Response:
        self.calls.append(request)
        a = request.args
        if a.get("appId") != APP_ID:
            body = {"GET_STATS_DATA": {"RESULT": {"STATUS": 100, "ERROR_MSG": "認証に失敗しました。"}}}
            return Response(json.dumps(body), content_type="application/json")
        if request.path.endswith("getStatsList"):  # every table of the statistics, as e-Stat lists them
            listed = [{"@id": tid, **inf} for tid, inf in self.tables.items()]
            body = {"GET_STATS_LIST": {"RESULT": {"STATUS": 0, "ERROR_MSG": "正常に終了しました。"},
                                       "DATALIST_INF": {"NUMBER": len(listed), "TABLE_INF": listed}}}
            return Response(json.dumps(body, ensure_ascii=False), content_type="application/json")
        table = self.records[a["statsDataId"]]
        if request.path.endswith("getMetaInfo"):
            inf = {**TABLE_INF, **self.tables.get(a["statsDataId"], {}), "@id": a["statsDataId"]}
            return Response(json.dumps(meta(sorted({r["@cat01"] for r in table} | {"999999999"}), inf),
                                       ensure_ascii=False), content_type="application/json")
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
    httpserver.expect_request("/rest/3.0/app/json/getStatsList").respond_with_handler(stand_in)
    settings = settings_env(estat_api_base_url=httpserver.url_for("/rest/3.0/app/json"), estat_app_id=APP_ID,
                            inbox=None)
    return settings, stand_in


def csv_route() -> pl.DataFrame:
    """The same month through the file route: the e-Stat CSV of the table's publication day."""
    rows = []
    for hs9, country, unit1, unit2, months in TRADE:
        rows.append(row(hs9, country, months, unit1=unit1, unit2=unit2))
    data = csv_bytes(rows)
    ref = ReleaseFile("japan_customs", "imports.csv", "file:///x", published=dt.date(2020, 8, 31))
    p = JC.parse(ref, data, sha256_bytes(data), CAT)
    assert p.failures.is_empty()
    return p.frame


PROVENANCE = ["source_file", "sha256", "line"]


def test_api_route_gives_the_same_clean_rows_as_the_csv_route(api):
    settings, stand_in = api
    http = session(settings, "japan_customs")
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
    # full-width units read as mass: every row has its kg, as from the CSV file
    assert api_rows.filter(pl.col("unit2") == "KG")["net_mass_kg"].null_count() == 0
    assert parsed.vintage == dt.date(2020, 8, 31)  # the table's UPDATED_DATE
    assert set(api_rows.filter(pl.col("month") == 7)["release"]) == {"provisional_9digit"}
    assert set(api_rows.filter(pl.col("month") < 7)["release"]) == {"detailed"}
    # paged: more than one getStatsData call, each restricted to catalogue codes
    data_calls = [c for c in stand_in.calls if c.path.endswith("getStatsData")]
    assert len(data_calls) > 1 and any("startPosition" in c.args for c in data_calls)
    assert all("010121000" not in c.args["cdCat01"] and "999999999" not in c.args["cdCat01"] for c in data_calls)


def test_non_numeric_tokens_are_null_never_zero(api):
    settings, stand_in = api
    table = stand_in.records["0003313966"]
    codes = {n: c for c, n in item_names()}
    for r in table:
        if r["@cat01"] == "280530000" and r["@area"] == "50105" and r["@cat02"] == codes["7月_金額"]:
            r["$"] = "X"
        if r["@cat01"] == "280530000" and r["@area"] == "50105" and r["@cat02"] == codes["合計_金額"]:
            r["$"] = "***"
    http = session(settings, "japan_customs")
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
    http = session(settings, "japan_customs")
    ref = JC.discover(settings, http, Month(2020, 7))[0]
    with pytest.raises(FetchError, match="STATUS 100: パラメータが不正です") as err:
        JC.fetch(settings, http, ref)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug"))  # werkzeug: the test server
    assert APP_ID not in str(err.value) and APP_ID not in ours and "appId=***" in ours


def test_wrong_app_id_is_reported(api, settings_env):
    settings = settings_env(estat_app_id="wrong")
    ref = JC.discover(settings, session(settings, "japan_customs"), Month(2020, 7))[0]
    with pytest.raises(FetchError, match="STATUS 100"):
        JC.fetch(settings, session(settings, "japan_customs"), ref)


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


def test_tables_cover_years_from_2001():
    assert estat_api.table_id("import", 2001) == "0003228183"
    assert estat_api.table_id("export", 2010) == "0003228117"
    assert estat_api.table_id("import", 2020) == "0003313966"
    assert estat_api.table_id("import", 2024) == "0003425294"
    assert estat_api.table_id("export", 2026) == "0004049306"
    assert estat_api.table_id("import", 2031) is None  # not built in: found through getStatsList
    with pytest.raises(FetchError, match="start in 2001"):
        estat_api.table_id("import", 2000)


def test_quantity_indicators_are_identical_through_both_routes(api):
    """File route and API route (full-width units) give the same quantity-basis indicators."""
    from flows.indicators import dependency
    from flows.pipeline import available_months

    settings, _ = api
    http = session(settings, "japan_customs")
    ref = JC.discover(settings, http, Month(2020, 7))[0]
    data = JC.fetch(settings, http, ref)
    api_rows = JC.parse(ref, data, sha256_bytes(data), CAT).frame
    results = []
    for clean in (api_rows, csv_route()):
        shares, dep = dependency.compute(JC.trade(clean, CAT), dependency.windows(available_months(clean)),
                                         source="japan_customs", value_unit=JC.value_unit)
        results.append(dep.filter(pl.col("basis") == "quantity").sort("metal", "freq", "period_start"))
    api_dep, csv_dep = results
    assert api_dep.height > 0 and api_dep["total"].null_count() == 0
    assert api_dep.equals(csv_dep)
    july = api_dep.filter((pl.col("metal") == "rare_earths") & (pl.col("freq") == "M")
                          & (pl.col("period_start") == dt.date(2020, 7, 1))).row(0, named=True)
    assert july["total"] == 1670.0 and july["china_share"] == pytest.approx(1620 / 1670)


def test_years_beyond_the_built_in_tables_are_found_with_get_stats_list(httpserver, settings_env):
    later = {"0009999001": {"TITLE": {"@no": "1", "$": "品別国別表 輸入 2031年～2035年"}, "SURVEY_DATE": "203101-203512",
                            "UPDATED_DATE": "2031-08-29"},
             "0009999002": {"TITLE": {"@no": "1", "$": "品別国別表 輸出 2031年～2035年"}, "SURVEY_DATE": "203101-203512"},
             "0003313966": {"TITLE": {"@no": "1", "$": "品別国別表 輸入 2016年～2020年"}, "SURVEY_DATE": "201601-202012"}}
    stand_in = EstatApiStandIn({}, tables=later)
    httpserver.expect_request("/rest/3.0/app/json/getStatsList").respond_with_handler(stand_in)
    settings = settings_env(estat_api_base_url=httpserver.url_for("/rest/3.0/app/json"), estat_app_id=APP_ID,
                            inbox=None)
    refs = JC.discover(settings, session(settings, "japan_customs"), Month(2031, 7))
    assert [r.name for r in refs] == ["estat_api_import_2031_0009999001.json", "estat_api_export_2031_0009999002.json"]


def test_stage_from_the_tables_description_else_the_calendar():
    inf = {"DESCRIPTION": "2016年～2019年：確定、2020年：確々報、2021年1-6月：確報、7月：輸入9桁速報",
           "UPDATED_DATE": "2021-08-31"}
    assert set(estat_api.description_stages(inf, 2018).values()) == {"fixed"}
    assert set(estat_api.description_stages(inf, 2020).values()) == {"revised"}
    assert estat_api.description_stages(inf, 2021)[3] == "detailed"
    assert estat_api.description_stages({"DESCRIPTION": ""}, 2020) == {}
    assert estat_api.updated_date(inf) == dt.date(2021, 8, 31)


def test_description_stage_reaches_the_rows(api):
    settings, stand_in = api
    stand_in.tables["0003313966"] = {"UPDATED_DATE": "2021-03-31", "DESCRIPTION": "2020年：確々報"}
    http = session(settings, "japan_customs")
    ref = JC.discover(settings, http, Month(2020, 7))[0]
    data = JC.fetch(settings, http, ref)
    p = JC.parse(ref, data, sha256_bytes(data), CAT)
    assert p.vintage == dt.date(2021, 3, 31) and set(p.frame["release"]) == {"revised"}


def test_month_names_cover_the_csv_layout():
    assert [m.lower() for m in MONTHS] == list(estat_api.MONTH_NAMES)
