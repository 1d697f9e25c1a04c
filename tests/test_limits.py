"""Limits, deadlines, secrets and inbox rules (issue 10, findings 3-8), against local servers.

Each test reproduces a finding of the hostile trial: before the change the download, the wait
or the file was accepted; now it is refused with a message naming the source, the URL or file
and the setting that changes it.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile

import polars as pl
import pytest
from werkzeug import Request, Response

from builders import csv_bytes, row
from flows.catalogue import Catalogue
from flows.errors import FetchError, LimitExceeded, RarewatchError, ReleaseFileError, SourceFailed
from flows.httpclient import get, session
from flows.pipeline import Fetched, land
from flows.settings import SettingsError, load_settings
from flows.sources import ReleaseFile, inbox_files
from flows.sources.japan_customs import JapanCustoms, estat_files

JC = JapanCustoms()
CAT = Catalogue.load()


def _settings(settings_env, **kw):
    return settings_env(http_retries=kw.pop("http_retries", 0), **kw)


# ---------------------------------------------------------------- size of answers (finding 3)
def test_an_answer_declared_too_large_is_refused_before_reading(httpserver, settings_env):
    httpserver.expect_request("/big").respond_with_data(b"x" * 3 * 2**20)
    s = _settings(settings_env, max_download_mb=1)
    with pytest.raises(LimitExceeded) as e:
        get(session(s, "japan_customs"), httpserver.url_for("/big"), source="japan_customs")
    assert "max_download_mb=1" in str(e.value) and "RAREWATCH_MAX_DOWNLOAD_MB" in str(e.value)
    assert httpserver.url_for("/big") in str(e.value)


def test_a_streamed_answer_is_stopped_once_past_the_limit(httpserver, settings_env):
    """No Content-Length (chunked): counted while it arrives, stopped at the limit, not read whole."""
    sent = []

    def chunks():
        for _ in range(64):  # 64 MiB offered
            sent.append(1)
            yield b"y" * 2**20

    httpserver.expect_request("/stream").respond_with_handler(lambda r: Response(chunks(), direct_passthrough=True))
    s = _settings(settings_env, max_download_mb=2)
    with pytest.raises(LimitExceeded, match="passed max_download_mb=2"):
        get(session(s, "comtrade"), httpserver.url_for("/stream"), source="comtrade")
    assert len(sent) < 16


def test_a_gzip_bomb_over_http_is_counted_after_decoding(httpserver, settings_env):
    import gzip

    body = gzip.compress(b"\0" * 8 * 2**20)
    httpserver.expect_request("/gz").respond_with_data(body, headers={"Content-Encoding": "gzip"})
    s = _settings(settings_env, max_download_mb=1)
    with pytest.raises(LimitExceeded):
        get(session(s, "comtrade"), httpserver.url_for("/gz"), source="comtrade")


# ---------------------------------------------------------------- deadlines (finding 4)
def test_a_body_sent_byte_by_byte_is_stopped_at_the_request_deadline(httpserver, settings_env):
    def slow():
        for _ in range(100):
            time.sleep(0.1)
            yield b"a"

    httpserver.expect_request("/slow").respond_with_handler(lambda r: Response(slow(), direct_passthrough=True))
    s = _settings(settings_env, request_deadline=1, http_timeout=5)
    start = time.monotonic()
    with pytest.raises(LimitExceeded, match="request_deadline=1") as e:
        get(session(s, "japan_customs"), httpserver.url_for("/slow"), source="japan_customs")
    assert time.monotonic() - start < 4
    assert "RAREWATCH_REQUEST_DEADLINE" in str(e.value)


def test_retry_after_is_capped(httpserver, settings_env):
    """A server asking for 6 hours is asked again after retry_after_cap seconds."""
    httpserver.expect_ordered_request("/r").respond_with_data("busy", status=429, headers={"Retry-After": "21600"})
    httpserver.expect_ordered_request("/r").respond_with_data("ok")
    s = settings_env(http_retries=2, retry_after_cap=0.5)
    start = time.monotonic()
    assert get(session(s, "comtrade"), httpserver.url_for("/r"), source="comtrade").content == b"ok"
    assert time.monotonic() - start < 5


def test_a_retry_that_would_end_after_the_deadline_stops_at_once(httpserver, settings_env):
    httpserver.expect_request("/r").respond_with_data("busy", status=503, headers={"Retry-After": "60"})
    s = settings_env(http_retries=3, retry_after_cap=60, request_deadline=5)
    start = time.monotonic()
    with pytest.raises(LimitExceeded, match="would end after the deadline"):
        get(session(s, "comtrade"), httpserver.url_for("/r"), source="comtrade")
    assert time.monotonic() - start < 3


def test_a_source_past_its_run_deadline_requests_nothing_more(httpserver, settings_env):
    httpserver.expect_request("/p").respond_with_data("ok")
    s = _settings(settings_env, source_limits=json.dumps({"japan_customs": {"source_deadline": 0.3}}))
    http = session(s, "japan_customs")
    assert get(http, httpserver.url_for("/p"), source="japan_customs").content == b"ok"
    time.sleep(0.4)
    with pytest.raises(LimitExceeded, match="source_deadline"):
        get(http, httpserver.url_for("/p"), source="japan_customs")
    assert len(httpserver.log) == 1
    assert session(s, "gacc").limits.source_deadline == 3600  # other sources keep the default


def test_limits_are_never_retried_by_the_task():
    from flows.monthly import _retry_fetch_errors_only

    class State:
        def __init__(self, e):
            self.e = e

        def result(self):
            raise self.e

    assert _retry_fetch_errors_only(None, None, State(FetchError("gacc", "u", "reset")))
    assert not _retry_fetch_errors_only(None, None, State(LimitExceeded("gacc", "u", "big", setting="X")))


# ---------------------------------------------------------------- archives (finding 3)
def _zip(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, data)
    return buf.getvalue()


def test_a_zip_bomb_is_refused_by_its_ratio(httpserver, settings_env):
    bomb = _zip("a.csv", b"0," * 16 * 2**20)  # 32 MiB of "0," in ~32 KB
    httpserver.expect_request("/file-download").respond_with_data(bomb)
    s = _settings(settings_env, estat_base_url=httpserver.url_for("").rstrip("/"))
    ref = ReleaseFile("japan_customs", "f.csv", httpserver.url_for("/file-download") + "?statInfId=1&fileKind=1")
    with pytest.raises(LimitExceeded, match="max_inflate_ratio"):
        estat_files.fetch(s, session(s, "japan_customs"), ref)


def test_a_zip_member_larger_than_the_limit_is_refused(settings_env):
    s = _settings(settings_env, max_inflated_mb=1, max_inflate_ratio=10_000)
    with pytest.raises(LimitExceeded, match="max_inflated_mb=1"):
        estat_files.unzip_one_csv(s, "http://x/f", _zip("a.csv", os.urandom(2**19) * 4))


def test_a_zip_understating_its_size_is_stopped_while_inflating(settings_env):
    s = _settings(settings_env, max_inflated_mb=1, max_inflate_ratio=10_000)
    data = bytearray(_zip("a.csv", b"1" * 3 * 2**20))
    # forge the stated size (central directory and local header) to 100 bytes
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (100).to_bytes(4, "little")
    data[22:26] = (100).to_bytes(4, "little")
    with pytest.raises((LimitExceeded, FetchError)):
        estat_files.unzip_one_csv(s, "http://x/f", bytes(data))


# ---------------------------------------------------------------- files (finding 3)
GOOD = [row("280530000", 105, {1: (1000, 500)}), row("280530000", 110, {1: (300, 100)})]


def _drop(settings_env, name: str, data: bytes):
    folder = settings_env.inbox / "japan_customs"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)


def _land(settings):
    return land(settings, JC, [Fetched(r) for r in inbox_files(JC, settings.inbox)], CAT)


def test_an_inbox_file_over_the_size_limit_is_refused(settings_env):
    _drop(settings_env, "2020_imp.csv", csv_bytes(GOOD) + b"\n" * 2**20)
    s = _settings(settings_env, max_inbox_file_mb=0.5)
    with pytest.raises(LimitExceeded, match="max_inbox_file_mb=0.5"):
        _land(s)
    assert not (settings_env.warehouse / "clean").exists()


def test_a_huge_cell_refuses_the_file_naming_line_and_column(settings_env):
    bad = row("280530000", 117, {1: (5, 9)}, unit2="KG" + "Z" * 10_000)
    _drop(settings_env, "2020_imp.csv", csv_bytes([*GOOD, bad]))
    s = _settings(settings_env)
    with pytest.raises(SourceFailed) as e:
        _land(s)
    (err,) = e.value.errors
    assert isinstance(err, ReleaseFileError) and err.row == 4 and err.column == "unit2"
    assert "max_cell_chars=4096" in str(err)
    assert not (settings_env.warehouse / "clean").exists()


def test_junk_lines_are_a_layout_error_not_summary_rows(settings_env):
    junk = [["x"] * 45 for _ in range(200)]
    _drop(settings_env, "2020_imp.csv", csv_bytes([*GOOD, *junk]))
    with pytest.raises(SourceFailed, match="max_summary_rows=64"):
        _land(_settings(settings_env))


# ---------------------------------------------------------------- inbox rules (findings 5, 8)
def test_an_inbox_symlink_is_refused(settings_env, tmp_path):
    secret = tmp_path / "stocks.csv"
    secret.write_text("metal,as_of,tonnes\nrare_earths,2020-06-30,1234.5\n")
    folder = settings_env.inbox / "japan_customs"
    folder.mkdir()
    (folder / "2020_imp.csv").symlink_to(secret)
    with pytest.raises(RarewatchError, match="symbolic link"):
        inbox_files(JC, settings_env.inbox)
    (settings_env.inbox / "answer.json").symlink_to(secret)
    (folder / "2020_imp.csv").unlink()
    with pytest.raises(RarewatchError, match="symbolic link"):
        inbox_files(JC, settings_env.inbox)


def test_a_linked_source_folder_is_refused(settings_env, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (settings_env.inbox / "japan_customs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RarewatchError, match="symbolic link"):
        inbox_files(JC, settings_env.inbox)


def test_a_hidden_inbox_file_is_refused_not_skipped(settings_env):
    """Skipped, it left the folder empty and the run fetched live instead."""
    _drop(settings_env, ".2020_imp.csv", csv_bytes(GOOD))
    with pytest.raises(RarewatchError, match="hidden"):
        inbox_files(JC, settings_env.inbox)


def test_os_junk_is_ignored_and_foreign_files_refused(settings_env):
    _drop(settings_env, ".DS_Store", b"\0\0")
    _drop(settings_env, "2020_imp.csv", csv_bytes(GOOD))
    assert [r.name for r in inbox_files(JC, settings_env.inbox)] == ["2020_imp.csv"]
    _drop(settings_env, "notes.pdf", b"%PDF-1.4")
    with pytest.raises(RarewatchError, match=r"notes.pdf \(not .csv or .txt or .json\)"):
        inbox_files(JC, settings_env.inbox)


def test_an_upper_case_vintage_tag_is_read(settings_env):
    _drop(settings_env, "2020_imp_V20200919.csv", csv_bytes(GOOD))
    (ref,) = inbox_files(JC, settings_env.inbox)
    assert str(ref.published) == "2020-09-19"


def test_an_impossible_vintage_tag_is_a_message(settings_env):
    _drop(settings_env, "2020_imp_v20200231.csv", csv_bytes(GOOD))
    with pytest.raises(RarewatchError, match="not a date"):
        inbox_files(JC, settings_env.inbox)


def test_the_same_bytes_under_a_new_name_are_skipped_with_a_note(settings_env):
    _drop(settings_env, "2020_imp_v20200831.csv", csv_bytes(GOOD))
    s = _settings(settings_env)
    first = _land(s)
    assert first.rows_written == 2
    _drop(settings_env, "copy_of_2020_imp_v20200831.csv", csv_bytes(GOOD))
    second = _land(s)
    assert any("same bytes as 2020_imp_v20200831.csv" in x for x in second.skipped_files)
    clean = pl.read_parquet(settings_env.warehouse / "clean" / "japan_customs_trade", hive_partitioning=False)
    assert clean.height == 2


# ---------------------------------------------------------------- confidential figures (finding 5)
@pytest.mark.parametrize("where", ["{warehouse}/indicators", "{warehouse}", "{inbox}/r"])
def test_a_restricted_root_inside_a_public_folder_is_refused(settings_env, where):
    target = where.format(warehouse=settings_env.warehouse, inbox=settings_env.inbox)
    with pytest.raises(SettingsError, match="RAREWATCH_RESTRICTED_DIR") as e:
        load_settings(restricted_dir=target)
    assert "may not lie inside" in str(e.value)


def test_the_default_restricted_root_is_beside_the_warehouse(settings_env):
    s = settings_env()
    assert s.restricted_root() == str(settings_env.warehouse.parent / "restricted")


def test_a_stock_file_inside_the_inbox_is_refused(settings_env):
    with pytest.raises(SettingsError, match="RAREWATCH_STOCK_POSITIONS"):
        load_settings(stock_positions=str(settings_env.inbox / "stocks.csv"))


# ---------------------------------------------------------------- hosts (finding 8)
@pytest.mark.parametrize("source,setting", [("meti", "meti_base_url"), ("gacc", "gacc_base_url")])
def test_a_redirect_to_another_host_is_refused(httpserver, settings_env, source, setting):
    httpserver.expect_request("/page").respond_with_data("", status=302,
                                                         headers={"Location": "http://127.0.0.2:9/elsewhere"})
    base = httpserver.url_for("").rstrip("/")
    s = _settings(settings_env, **{setting: base})
    with pytest.raises(FetchError, match="redirected to another host"):
        get(session(s, source), httpserver.url_for("/page"), source=source)
    with pytest.raises(FetchError, match="fetches only from"):
        get(session(s, source), "http://127.0.0.2:9/x", source=source)


def test_china_customs_defaults_to_https(settings_env):
    assert settings_env().gacc_base_url.startswith("https://")


# ---------------------------------------------------------------- echoed secrets (finding 6)
def test_an_estat_error_echoing_the_app_id_is_redacted(httpserver, settings_env):
    from flows.sources.japan_customs import estat_api

    key = "CANARY-appid-5f1e2d3c4b"
    doc = {"GET_STATS_LIST": {"RESULT": {"STATUS": 100, "ERROR_MSG": f"認証に失敗しました。appId={key} は無効です ({key})"}}}
    httpserver.expect_request("/rest/3.0/app/json/getStatsList").respond_with_json(doc)
    s = _settings(settings_env, estat_app_id=key,
                  estat_api_base_url=httpserver.url_for("/rest/3.0/app/json"))
    with pytest.raises(FetchError) as e:
        estat_api.find_table(s, session(s, "japan_customs"), "import", 2020)
    assert key not in str(e.value) and "***" in str(e.value)


def test_a_comtrade_error_echoing_the_key_is_redacted(httpserver, settings_env):
    from flows.sources.comtrade import api

    key = "CANARY-ct-key-0a9b8c7d6e"
    httpserver.expect_request("/data/v1/get/C/A/HS").respond_with_json(
        {"count": 0, "data": None, "error": f"Invalid subscription key {key}"})
    s = _settings(settings_env, comtrade_api_key=key, comtrade_base_url=httpserver.url_for("").rstrip("/"),
                  comtrade_min_interval=0)
    ref = ReleaseFile("comtrade", "a.json", httpserver.url_for("/data/v1/get/C/A/HS") + "?period=2022")
    with pytest.raises(FetchError) as e:
        api.fetch(s, session(s, "comtrade"), ref)
    assert key not in str(e.value) and "***" in str(e.value)


# ---------------------------------------------------------------- Comtrade answers (finding 8)
def test_a_rate_limit_answer_in_http_200_is_waited_out(httpserver, settings_env):
    from flows.sources.comtrade import api

    httpserver.expect_ordered_request("/public/v1/preview/C/A/HS").respond_with_json(
        {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."})
    httpserver.expect_ordered_request("/public/v1/preview/C/A/HS").respond_with_json(
        {"count": 0, "data": [], "error": ""})
    s = settings_env(http_retries=2, http_backoff=0.1, comtrade_min_interval=0,
                     comtrade_base_url=httpserver.url_for("").rstrip("/"))
    ref = ReleaseFile("comtrade", "a.json", httpserver.url_for("/public/v1/preview/C/A/HS") + "?period=2022")
    assert json.loads(api.fetch(s, session(s, "comtrade"), ref))["count"] == 0
    assert len(httpserver.log) == 2


def test_a_count_without_data_is_refused(httpserver, settings_env):
    from flows.sources.comtrade import api

    httpserver.expect_request("/public/v1/preview/C/A/HS").respond_with_json({"count": 3, "data": None, "error": ""})
    s = _settings(settings_env, comtrade_min_interval=0, comtrade_base_url=httpserver.url_for("").rstrip("/"))
    ref = ReleaseFile("comtrade", "a.json", httpserver.url_for("/public/v1/preview/C/A/HS") + "?period=2022")
    with pytest.raises(FetchError, match="count 3 but holds 0"):
        api.fetch(s, session(s, "comtrade"), ref)


# ---------------------------------------------------------------- messages (finding 7)
@pytest.mark.parametrize("env,expected", [
    ({"RAREWATCH_HTTP_TIMEOUT": "abc"}, "RAREWATCH_HTTP_TIMEOUT"),
    ({"RAREWATCH_SOURCE_LIMITS": "{bad"}, "RAREWATCH_SOURCE_LIMITS is not valid JSON"),
    ({"RAREWATCH_SOURCE_LIMITS": '{"gacc": {"max_cells": 3}}'}, "unknown limit"),
    ({"RAREWATCH_RESTRICTED_DIR": "{warehouse}/indicators"}, "may not lie inside"),
])
def test_invalid_settings_are_one_paragraph_and_exit_2(settings_env, monkeypatch, capsys, tmp_path, env, expected):
    from flows import prefect_api
    from flows.cli import main

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v.replace("{warehouse}", str(settings_env.warehouse)))
    assert main(["refresh"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert prefect_api.recorded() is None  # told before any Prefect server is started


def test_an_unexpected_error_keeps_its_traceback_in_a_file(monkeypatch, capsys):
    from flows import cli

    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero in a place nobody foresaw")

    monkeypatch.setattr(cli, "_prefect", boom)
    assert cli.main(["refresh"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "rarewatch bug" in err
    kept = err.split("kept in ")[1].split(" ")[0]
    assert "ZeroDivisionError" in open(kept).read()
    os.unlink(kept)


def test_an_unwritable_warehouse_is_a_message():
    from flows.cli import describe

    e = PermissionError(13, "Permission denied", "/srv/warehouse/raw")
    text = describe(e)
    assert "/srv/warehouse/raw" in text and "RAREWATCH_WAREHOUSE" in text


def test_an_api_page_of_another_shape_names_the_file(settings_env):
    from flows.sources.japan_customs import estat_api

    ref = ReleaseFile("japan_customs", "api_import_2020.json", "https://api/x")
    doc = {"flow": "import", "statsDataId": "1", "meta": {"GET_META_INFO": {"METADATA_INF": {"CLASS_INF": {
        "CLASS_OBJ": [{"@id": "cat02", "CLASS": [{"@code": "140", "@name": "合計_金額"}]}]}}}},
           "pages": [{"GET_META_INFO": {}}]}
    with pytest.raises(ReleaseFileError) as e:
        estat_api.to_rows(ref, json.dumps(doc).encode())
    assert "api_import_2020.json" in str(e.value)


def test_a_page_without_a_header_charset_is_read_by_its_meta_charset(httpserver, settings_env):
    from flows.httpclient import page_text

    body = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"></head>' \
           '<body>品別国別表</body></html>'
    httpserver.expect_request("/p").respond_with_data(body.encode("cp932"), content_type="text/html")
    s = _settings(settings_env)
    assert "品別国別表" in page_text(get(session(s, "japan_customs"), httpserver.url_for("/p"), source="japan_customs"))
