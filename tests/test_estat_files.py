"""e-Stat discovery and download (REFERENCE 1.3) against a local HTTP server."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from werkzeug import Request, Response

from builders import csv_bytes, row
from flows.errors import FetchError
from flows.httpclient import session
from flows.periods import Month
from flows.sources.japan_customs import estat_files

IMPORTS, EXPORTS = estat_files.TCLASS2["import"], estat_files.TCLASS2["export"]


def item(sid: str, month: str, published: str, title: str) -> str:
    """One file entry as e-Stat's datalist layout shows it (CSV and Excel links)."""
    return f"""
    <li class="stat-dataset_list-item">
      <div class="stat-dataset_list-detail-item"><span>調査年月</span> {month}</div>
      <div class="stat-dataset_list-detail-item"><span>公開（更新）日</span> {published}</div>
      <a href="/stat-search/files?stat_infid={sid}" class="stat-title">{title}</a>
      <a href="/stat-search/file-download?statInfId={sid}&amp;fileKind=1" class="stat-dl_icon">CSV</a>
      <a href="/stat-search/file-download?statInfId={sid}&amp;fileKind=0" class="stat-dl_icon">EXCEL</a>
    </li>"""


def page(items: list[str], next_page: int | None = None) -> str:
    nav = f'<a href="/stat-search/files?page={next_page}&amp;layout=datalist">次へ</a>' if next_page else ""
    return f"<html><body><ul>{''.join(items)}</ul>{nav}</body></html>"


LISTS = {
    (IMPORTS, "1"): page([
        item("000031979321", "2020年 7月", "2020-08-31", "品別国別表 輸入 第28類～第38類"),
        item("000031979322", "2020年 7月", "2020-08-31", "品別国別表 輸入 第84類～第85類"),
        item("000031900001", "2020年 6月", "2020-07-30", "品別国別表 輸入 第28類～第38類"),
    ], next_page=2),
    (IMPORTS, "2"): page([item("000031979323", "2020年 7月", "2020-08-31", "品別国別表 輸入 第72類～第81類")]),
    (EXPORTS, "1"): page([item("000031979301", "2020年7月", "2020/08/31", "品別国別表 輸出 第28類～第38類")]),
}


@pytest.fixture
def estat(httpserver, settings_env):
    seen: list[Request] = []

    def lists(request: Request) -> Response:
        seen.append(request)
        key = (request.args["tclass2"], request.args.get("page", "1"))
        assert request.args["toukei"] == "00350300" and request.args["tclass1"] == "000001013180"
        assert request.args["year"] == "20200"
        return Response(LISTS.get(key, page([])), content_type="text/html; charset=utf-8")

    def download(request: Request) -> Response:
        seen.append(request)
        sid = request.args["statInfId"]
        assert request.args["fileKind"] == "1"
        return Response(csv_bytes([row("280530000", 105, {7: (1620, 3000)})]).replace(b"105", sid[-3:].encode()),
                        content_type="text/csv")

    httpserver.expect_request("/stat-search/files").respond_with_handler(lists)
    httpserver.expect_request("/stat-search/file-download").respond_with_handler(download)
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    return settings, seen


def test_discovers_the_months_import_and_export_files(estat):
    settings, seen = estat
    refs = estat_files.discover(settings, session(settings), Month(2020, 7))
    ids = [r.url.split("statInfId=")[1].split("&")[0] for r in refs]
    assert ids == ["000031979321", "000031979322", "000031979323", "000031979301"]  # June's file left out
    assert all(r.published == dt.date(2020, 8, 31) for r in refs)
    assert refs[0].name == "import_2020-07_000031979321.csv" and refs[-1].name.startswith("export_")
    assert all("rarewatch" in r.headers["User-Agent"] for r in seen)


def test_downloads_csv_bytes(estat):
    settings, _ = estat
    http = session(settings)
    ref = estat_files.discover(settings, http, Month(2020, 7))[0]
    data = estat_files.fetch(settings, http, ref)
    assert data.startswith(b"Exp or Imp,Year,HS") and b",321," in data


def test_no_files_for_the_month_is_an_error_naming_the_listed_months(estat):
    settings, _ = estat
    with pytest.raises(FetchError, match=r"no import files listed for 2020-05 \(listed months: 2020-06, 2020-07\)"):
        estat_files.discover(settings, session(settings), Month(2020, 5))


def test_page_without_file_links_is_an_error(httpserver, settings_env):
    httpserver.expect_request("/stat-search/files").respond_with_data("<html>メンテナンス中</html>",
                                                                        content_type="text/html")
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"))
    with pytest.raises(FetchError, match="no CSV file link"):
        estat_files.discover(settings, session(settings), Month(2020, 7))


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
    assert estat_files.fetch(settings, session(settings), ref) == b"Exp or Imp,Year\n"
    assert calls["n"] == 3


def test_gives_up_after_retries_with_a_clear_error(httpserver, settings_env):
    httpserver.expect_request("/stat-search/file-download").respond_with_data("gone", status=500)
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), http_retries=1)
    ref = estat_files.ReleaseFile("japan_customs", "f.csv", estat_files.download_url(settings, "000000000001"))
    with pytest.raises(FetchError, match=r"\[japan_customs\] .*statInfId=000000000001.*HTTP 500"):
        estat_files.fetch(settings, session(settings), ref)


def test_zip_archive_is_unpacked_and_html_is_refused(httpserver, settings_env):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.csv", b"Exp or Imp,Year\n")
    httpserver.expect_request("/stat-search/file-download", query_string="statInfId=000000000001&fileKind=1") \
        .respond_with_data(buf.getvalue(), content_type="application/zip")
    httpserver.expect_request("/stat-search/file-download", query_string="statInfId=000000000002&fileKind=1") \
        .respond_with_data("<!DOCTYPE html><html>login</html>", content_type="text/html")
    settings = settings_env(estat_base_url=httpserver.url_for("").rstrip("/"))
    http = session(settings)
    zipped = estat_files.ReleaseFile("japan_customs", "a.csv", estat_files.download_url(settings, "000000000001"))
    assert estat_files.fetch(settings, http, zipped) == b"Exp or Imp,Year\n"
    html = estat_files.ReleaseFile("japan_customs", "b.csv", estat_files.download_url(settings, "000000000002"))
    with pytest.raises(FetchError, match="HTML page instead of a CSV"):
        estat_files.fetch(settings, http, html)


def test_connection_refused_is_a_fetch_error(settings_env):
    settings = settings_env(estat_base_url="http://127.0.0.1:9", http_retries=0)
    with pytest.raises(FetchError, match="ConnectionError"):
        estat_files.discover(settings, session(settings), Month(2020, 7))
