"""e-Stat discovery and download against a local HTTP server serving pages in the live site's shape.

The pages are tests/fixtures/estat/*.html (constructed; each says in a comment which documented
facts of the live pages it follows): the year's navigation page with month links, the month page
with 22 file articles whose titles mix release stages, links with raw `&` and with `&amp;`.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import polars as pl
import pytest
from werkzeug import Request, Response

from builders import csv_bytes, row
from flows.catalogue import Catalogue
from flows.errors import FetchError, LayoutError
from flows.httpclient import session
from flows.periods import Month
from flows.sources.japan_customs import estat_files
from flows.sources.japan_customs.parse import parse_release
from flows.sources.japan_customs.vintages import infer_stages, parse_title_stages

FIXTURES = Path(__file__).parent / "fixtures" / "estat"
IMPORTS, EXPORTS = estat_files.TCLASS2["import"], estat_files.TCLASS2["export"]
FLOW_OF = {IMPORTS: "import", EXPORTS: "export"}
# Files of the chapter blocks that hold catalogue codes: 28-38 (rare earths), 72-83, 84-85 (magnets).
RICH = {"000031979306": ("280530000", 105), "000031979315": ("810520000", 601), "000031979316": ("850511000", 117),
        "000031979406": ("280530000", 304)}
NOT_FOUND = ("<html><body><div class=\"stat-search_result\"><p>該当するデータがありません。</p>"
             "</div></body></html>")


def serve_estat(httpserver, pages: dict | None = None):
    """The e-Stat list and download pages; `pages` overrides (flow, month code or None) -> HTML."""
    seen: list[Request] = []
    pages = pages if pages is not None else {}

    def lists(request: Request) -> Response:
        seen.append(request)
        assert request.args["toukei"] == "00350300" and request.args["tclass1"] == "000001013180"
        flow = FLOW_OF[request.args["tclass2"]]
        code = request.args.get("month")
        key = (flow, code)
        if key in pages:
            body = pages[key]
        elif request.args["year"] != "20200":
            body = NOT_FOUND
        elif code is None:
            body = (FIXTURES / f"nav_{flow}_2020.html").read_text()
        elif code == "23070907":
            body = (FIXTURES / f"month_{flow}_2020-07.html").read_text()
        else:
            body = NOT_FOUND
        return Response(body, content_type="text/html; charset=utf-8")

    def download(request: Request) -> Response:
        seen.append(request)
        sid = request.args["statInfId"]
        assert request.args["fileKind"] == "1"
        hs, country = RICH.get(sid, ("010121000", 105))
        flow = 1 if sid.startswith("0000319794") else 2
        months = {m: (100 * m, 1000 * m) for m in range(1, 8)}
        return Response(csv_bytes([row(hs, country, months, flow=flow)]), content_type="text/csv")

    httpserver.expect_request("/stat-search/files").respond_with_handler(lists)
    httpserver.expect_request("/stat-search/file-download").respond_with_handler(download)
    return seen


@pytest.fixture
def estat(httpserver, settings_env):
    seen = serve_estat(httpserver)
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    return settings, seen


def test_month_code_follows_the_documented_codes():
    assert [estat_files.month_code(Month(2026, m)) for m in (7, 12, 1, 5)] == \
        ["23070907", "24101212", "11010301", "12040605"]


def test_title_stages_month_by_month():
    assert parse_title_stages("2026年7月分 品別国別表 (輸入 1-6月：確報、7月：輸入9桁速報)") == \
        {**{m: "detailed" for m in range(1, 7)}, 7: "provisional_9digit"}
    assert parse_title_stages("2025年分 品別国別表 (輸入 1-12月：確々報)") == {m: "revised" for m in range(1, 13)}
    assert parse_title_stages("2024年分 品別国別表（輸出 確定）") == {m: "fixed" for m in range(1, 13)}
    assert parse_title_stages("2026年2月分 品別国別表 (輸出 1月：確報、2月：速報) 第28-38類") == \
        {1: "detailed", 2: "provisional_9digit"}
    assert parse_title_stages("品別国別表") == {}


def test_calendar_gives_each_month_its_stage_without_a_title():
    vintage, stages = infer_stages(2020, 7, dt.date(2020, 8, 31))
    assert vintage == dt.date(2020, 8, 31)
    assert stages == {**{m: "detailed" for m in range(1, 7)}, 7: "provisional_9digit"}
    assert set(infer_stages(2020, 12, dt.date(2021, 3, 31))[1].values()) == {"revised"}
    assert set(infer_stages(2020, 12, dt.date(2021, 11, 26))[1].values()) == {"fixed"}
    assert infer_stages(2020, 3, None) == (dt.date(2020, 4, 30), {1: "detailed", 2: "detailed",
                                                                  3: "provisional_9digit"})


def test_discovery_follows_navigation_page_then_month_page(estat):
    settings, seen = estat
    refs = estat_files.discover(settings, session(settings, "japan_customs"), Month(2020, 7))
    imports = [r for r in refs if r.name.startswith("import_")]
    exports = [r for r in refs if r.name.startswith("export_")]
    assert len(imports) == 22 and len(exports) == 22  # every chapter block, raw & and &amp; links alike
    assert imports[5].name == "import_2020-07_ch28-38_000031979306.csv"
    assert imports[5].url.endswith("statInfId=000031979306&fileKind=1")
    assert all(r.published == dt.date(2020, 8, 31) for r in refs)
    assert dict(imports[5].stages) == {**{m: "detailed" for m in range(1, 7)}, 7: "provisional_9digit"}
    assert dict(exports[0].stages)[7] == "provisional_9digit"  # exports' first stage: 速報
    asked = [(r.args["tclass2"], r.args.get("month")) for r in seen]
    assert asked[0] == (IMPORTS, None) and asked[1] == (IMPORTS, "23070907")
    # July has no link on the exports navigation page: its month code is built (docs/sources.md)
    assert (EXPORTS, "23070907") in asked


def test_rows_carry_the_stage_of_their_own_month(estat):
    settings, _ = estat
    http = session(settings, "japan_customs")
    ref = next(r for r in estat_files.discover(settings, http, Month(2020, 7)) if "000031979306" in r.name)
    parsed = parse_release(ref, estat_files.fetch(settings, http, ref), "0" * 64, Catalogue.load())
    stages = dict(parsed.frame.group_by("month").agg(pl.col("release").unique()).sort("month")
                  .select("month", pl.col("release").list.first()).iter_rows())
    assert stages == {**{m: "detailed" for m in range(1, 7)}, 7: "provisional_9digit"}
    assert parsed.release_text == "1-6:detailed,7:provisional_9digit"


def test_month_not_published_yet_names_the_linked_months(estat):
    settings, _ = estat
    with pytest.raises(FetchError, match=r"no import files published for 2020-08 yet \(months linked: 2020-01, .*2020-07\)"):
        estat_files.discover(settings, session(settings, "japan_customs"), Month(2020, 8))


def test_unrecognised_navigation_page_says_what_was_looked_for_and_is_kept(httpserver, settings_env):
    serve_estat(httpserver, {("import", None): "<html><body><p>メンテナンス中です</p></body></html>"})
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    with pytest.raises(LayoutError, match=r"looked for month links .*stat-item_child.*or file links") as e:
        estat_files.discover(settings, session(settings, "japan_customs"), Month(2020, 7))
    kept = list((settings_env.warehouse / "quarantine" / "pages" / "japan_customs").iterdir())
    assert len(kept) == 1 and "メンテナンス中" in kept[0].read_text() and str(kept[0].name) in str(e.value)


def test_unrecognised_month_page_is_an_error_and_kept(httpserver, settings_env):
    redesigned = "<html><body><table><tr><td>2020年7月 第28-38類</td><td>CSV</td></tr></table></body></html>"
    serve_estat(httpserver, {("import", "23070907"): redesigned})
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    with pytest.raises(LayoutError, match=r"file articles .*調査年月.*fileKind=1"):
        estat_files.discover(settings, session(settings, "japan_customs"), Month(2020, 7))
    assert any((settings_env.warehouse / "quarantine" / "pages" / "japan_customs").iterdir())


def test_page_without_charset_is_read_as_utf8(httpserver, settings_env):
    body = (FIXTURES / "nav_import_2020.html").read_bytes()
    httpserver.expect_request("/stat-search/files").respond_with_data(body, content_type="text/html")
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    _, text, links = estat_files.year_months(settings, session(settings, "japan_customs"), "import", 2020)
    assert "品別国別表" in text and sorted(links) == list(range(1, 8))


def test_downloads_csv_bytes(estat):
    settings, _ = estat
    http = session(settings, "japan_customs")
    ref = estat_files.discover(settings, http, Month(2020, 7))[0]
    data = estat_files.fetch(settings, http, ref)
    assert data.startswith(b"Exp or Imp,Year,HS")


def test_retries_5xx_then_succeeds(httpserver, settings_env):
    calls = {"n": 0}

    def flaky(request: Request) -> Response:
        calls["n"] += 1
        if calls["n"] < 3:
            return Response("busy", status=503)
        return Response(b"Exp or Imp,Year\n", content_type="text/csv")

    httpserver.expect_request("/stat-search/file-download").respond_with_handler(flaky)
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), http_retries=3)
    ref = estat_files.ReleaseFile("japan_customs", "f.csv", estat_files.download_url(settings, "000000000001"))
    assert estat_files.fetch(settings, session(settings, "japan_customs"), ref) == b"Exp or Imp,Year\n"
    assert calls["n"] == 3


def test_gives_up_after_retries_with_a_clear_error(httpserver, settings_env):
    httpserver.expect_request("/stat-search/file-download").respond_with_data("gone", status=500)
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), http_retries=1)
    ref = estat_files.ReleaseFile("japan_customs", "f.csv", estat_files.download_url(settings, "000000000001"))
    with pytest.raises(FetchError, match=r"\[japan_customs\] .*statInfId=000000000001.*HTTP 500"):
        estat_files.fetch(settings, session(settings, "japan_customs"), ref)


def test_zip_archive_is_unpacked_and_html_is_refused(httpserver, settings_env):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.csv", b"Exp or Imp,Year\n")
    httpserver.expect_request("/stat-search/file-download", query_string="statInfId=000000000001&fileKind=1") \
        .respond_with_data(buf.getvalue(), content_type="application/zip")
    httpserver.expect_request("/stat-search/file-download", query_string="statInfId=000000000002&fileKind=1") \
        .respond_with_data("<!DOCTYPE html><html>login</html>", content_type="text/html")
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"))
    http = session(settings, "japan_customs")
    zipped = estat_files.ReleaseFile("japan_customs", "a.csv", estat_files.download_url(settings, "000000000001"))
    assert estat_files.fetch(settings, http, zipped) == b"Exp or Imp,Year\n"
    html = estat_files.ReleaseFile("japan_customs", "b.csv", estat_files.download_url(settings, "000000000002"))
    with pytest.raises(FetchError, match="HTML page instead of a CSV"):
        estat_files.fetch(settings, http, html)


def test_connection_refused_is_a_fetch_error(settings_env):
    settings = settings_env(estat_base_url="http://127.0.0.1:9", http_retries=0)
    with pytest.raises(FetchError, match="ConnectionError"):
        estat_files.discover(settings, session(settings, "japan_customs"), Month(2020, 7))
