"""UN Comtrade: requests, throttling, 429, secrets, not-reported answers, and the real 2022 records."""

from __future__ import annotations

import json
import logging

import polars as pl
import pytest
from werkzeug import Request, Response

from comtrade_server import ComtradeStandIn, load_records
from flows.catalogue import Catalogue, comtrade_partners
from flows.errors import FetchError, ReleaseFileError
from flows.httpclient import session
from flows.periods import Month, Year
from flows.sources import ReleaseFile
from flows.sources.comtrade import Comtrade, api
from flows.sources.comtrade.parse import parse_answer

COMTRADE = Comtrade()


def answer(records: list[dict], count: int | None = None, error: str = "") -> bytes:
    return json.dumps({"elapsedTime": "0.2 secs", "count": len(records) if count is None else count,
                       "data": records, "error": error}).encode()


def record(**kw) -> dict:
    base = {"freqCode": "A", "refYear": 2022, "refMonth": 52, "reporterCode": 392, "flowCode": "M",
            "partnerCode": 156, "partner2Code": 0, "cmdCode": "850511", "customsCode": "C00", "motCode": 0,
            "qtyUnitCode": 8, "qty": 10.0, "netWgt": 10.0, "primaryValue": 100.0}
    return {**base, **kw}


def ref(name="a.json"):
    return ReleaseFile("comtrade", name, "http://127.0.0.1/x?period=2022", published=None)


def test_partner_codes_from_the_versioned_table(shared_fixtures):
    table = comtrade_partners()
    iso = dict(zip(table["code"], table["iso3"]))
    assert (iso[251], iso[842], iso[699], iso[490], iso[156], iso[392]) == ("FRA", "USA", "IND", "S19", "CHN", "JPN")
    import csv
    with open(shared_fixtures / "comtrade" / "country_codes_m49.csv", newline="") as f:
        for r in csv.DictReader(f):
            assert iso[int(r["country_code"])] == (r["country_iso3"] or None)


def test_exact_duplicates_removed_and_count_zero_is_not_reported():
    p = parse_answer(ref(), answer([record(), record(), record(partnerCode=704, netWgt=5.0)]))
    assert p.frame.height == 2 and p.skipped["exact_duplicates"] == 1
    assert p.frame.filter(pl.col("partner_code") == 156)["partner_iso3"].to_list() == ["CHN"]
    empty = parse_answer(ref(), answer([], count=0))
    assert empty.frame.is_empty() and empty.skipped["not_reported"] == 1


@pytest.mark.parametrize("body,problem", [
    (b"<html>", "not JSON"),
    (b'{"x": 1}', "no 'data' member"),
    (answer([], error="Invalid period"), "Comtrade answered with an error: Invalid period"),
])
def test_bad_answers(body, problem):
    with pytest.raises(ReleaseFileError, match=problem):
        parse_answer(ref(), body)


def test_record_missing_fields_is_a_failure():
    rec = record()
    del rec["netWgt"]
    p = parse_answer(ref(), answer([rec]))
    assert p.failures.row(0, named=True)["column"] == "netWgt"


def test_plan_uses_preview_without_key_and_data_endpoint_with_key(settings_env):
    s = settings_env(comtrade_base_url="http://127.0.0.1:1")
    refs = api.plan(s, Year(2024), Catalogue.load().hs6_entries)
    assert refs[0].url.startswith("http://127.0.0.1:1/public/v1/preview/C/A/HS?reporterCode=392&period=2024")
    assert {r.name.split("_")[3] for r in refs} == {"r392-M", "r156-X", "p392-X"}
    assert all(len(r.url.split("cmdCode=")[1].split("&")[0].split("%2C")) <= 5 for r in refs)
    assert all("maxRecords=500" in r.url for r in refs)
    keyed = settings_env(comtrade_api_key="s3cret-key")
    monthly = api.plan(keyed, Month(2024, 7), Catalogue.load().hs6_entries)
    assert "/data/v1/get/C/M/HS?" in monthly[0].url and "period=202407" in monthly[0].url
    assert all("s3cret" not in r.url for r in monthly)


def test_throttle_429_and_secret_never_in_errors(httpserver, settings_env, caplog):
    calls = []

    def handler(request: Request) -> Response:
        calls.append(request)
        if len(calls) == 1:
            return Response("Rate limit is exceeded. Try again in 2 seconds.", status=429, headers={"Retry-After": "0"})
        if len(calls) == 2:
            return Response(answer([record()]), content_type="application/json")
        return Response("boom", status=500)

    httpserver.expect_request("/data/v1/get/C/A/HS").respond_with_handler(handler)
    s = settings_env(comtrade_base_url=httpserver.url_for("").rstrip("/"), comtrade_api_key="s3cret-key",
                     comtrade_min_interval="0.2", http_retries=1)
    http = session(s, "comtrade")
    refs = api.plan(s, Year(2022), ["850511"])
    caplog.set_level(logging.DEBUG)
    data = api.fetch(s, http, refs[0])
    assert json.loads(data)["count"] == 1 and len(calls) == 2
    assert calls[1].headers["Ocp-Apim-Subscription-Key"] == "s3cret-key"
    with pytest.raises(FetchError) as err:
        api.fetch(s, http, refs[1])
    assert "s3cret" not in str(err.value) and "s3cret" not in caplog.text
    assert "s3cret" not in repr(s)


def test_answer_cut_at_the_preview_limit_is_refused(httpserver, settings_env):
    httpserver.expect_request("/public/v1/preview/C/A/HS").respond_with_data(
        answer([record(partnerCode=p) for p in range(500)]), content_type="application/json")
    s = settings_env(comtrade_base_url=httpserver.url_for("").rstrip("/"), comtrade_min_interval="0")
    ref = api.plan(s, Year(2022), ["850511"])[0]
    with pytest.raises(FetchError, match="500 records, the limit of a call"):
        api.fetch(s, session(s, "comtrade"), ref)


def test_throttle_spaces_calls(monkeypatch):
    from flows import ratelimit

    slept = []
    clock = iter([0.0, 0.0, 0.5, 0.5, 3.0, 3.0])
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(ratelimit.time, "sleep", slept.append)
    t = ratelimit.Throttle(1.5)
    t.last = -10.0
    t.wait()  # first call: no wait
    t.wait()  # 0.5 s after: waits 1.0 s
    t.wait()  # 3.0 s after: no wait
    assert slept == [1.0]


# ----------------------------------------------------------------------------- the real records
@pytest.fixture
def comtrade_api(shared_fixtures, httpserver, settings_env):
    stand_in = ComtradeStandIn(load_records(shared_fixtures / "comtrade" / "comtrade_2022.csv.gz"), key="k")
    httpserver.expect_request("/data/v1/get/C/A/HS").respond_with_handler(stand_in)
    httpserver.expect_request("/public/v1/preview/C/A/HS").respond_with_handler(stand_in)
    settings_env(comtrade_base_url=httpserver.url_for("").rstrip("/"), comtrade_api_key="k",
                 comtrade_min_interval="0", inbox=None)
    return stand_in


@pytest.mark.usefixtures("prefect_harness")
def test_real_2022_records_give_published_magnet_shares_and_mirror_gap(comtrade_api, settings_env):
    from flows.monthly import monthly_refresh

    result = monthly_refresh(period="2022", sources=["comtrade"])
    assert result["comtrade"]["status"] == "ok"
    wh = settings_env.warehouse
    shares = pl.scan_parquet(wh / "indicators" / "partner_shares", hive_partitioning=True).filter(
        (pl.col("source") == "comtrade") & (pl.col("metal") == "rare_earth_magnets") & (pl.col("freq") == "A")
        & (pl.col("basis") == "quantity")).collect().sort("rank")
    top = {r["partner_iso3"]: round(100 * r["share"], 1) for r in shares.head(5).iter_rows(named=True)}
    assert top == {"PHL": 39.9, "CHN": 36.9, "VNM": 13.4, "THA": 3.2, "MYS": 3.2}
    dep = pl.scan_parquet(wh / "indicators" / "import_dependency", hive_partitioning=True).filter(
        (pl.col("source") == "comtrade") & (pl.col("metal") == "rare_earth_magnets") & (pl.col("freq") == "A")
        & (pl.col("basis") == "quantity")).collect()
    assert dep["total"].item() == pytest.approx(10_149_590, rel=1e-3)  # 10,149.6 t (docs/sources.md §8)
    assert dep["china_share"].item() == pytest.approx(0.369, abs=5e-4)
    value = pl.scan_parquet(wh / "indicators" / "import_dependency", hive_partitioning=True).filter(
        (pl.col("source") == "comtrade") & (pl.col("metal") == "rare_earth_magnets") & (pl.col("basis") == "value")
    ).collect()
    assert value["total"].item() == pytest.approx(847.9e6, rel=1e-3) and value["unit"].item() == "USD"

    gaps = pl.read_parquet(wh / "indicators" / "mirror_gaps" / "part-0.parquet").filter(
        (pl.col("metal") == "rare_earth_magnets") & (pl.col("partner_iso3") == "CHN")
        & (pl.col("japan_source") == "comtrade") & (pl.col("freq") == "A"))
    g = gaps.row(0, named=True)
    assert round(g["partner_quantity_kg"] / 1000, 1) == 6091.7 and round(g["japan_quantity_kg"] / 1000, 1) == 3743.8
    assert g["quantity_ratio"] == pytest.approx(6091.7 / 3743.8, rel=1e-3)
    # duplicates as delivered were removed: one record per key
    clean = pl.scan_parquet(wh / "clean" / "comtrade_trade", hive_partitioning=True).collect()
    assert clean.select("reporter_code", "flow", "partner_code", "cmd_code").is_duplicated().sum() == 0


@pytest.mark.usefixtures("prefect_harness")
def test_not_reported_is_never_zero(httpserver, settings_env):
    httpserver.expect_request("/public/v1/preview/C/A/HS").respond_with_data(
        answer([], count=0), content_type="application/json")
    settings_env(comtrade_base_url=httpserver.url_for("").rstrip("/"), comtrade_min_interval="0", inbox=None)
    from flows.monthly import monthly_refresh

    result = monthly_refresh(period="2025", sources=["comtrade"])
    assert result["comtrade"]["rows_written"] == 0
    wh = settings_env.warehouse
    manifest = pl.read_parquet(wh / "raw" / "comtrade" / "manifest.parquet")
    assert set(manifest["rows"]) == {0} and all("not_reported=1" in n for n in manifest["note"])
    assert not (wh / "indicators" / "import_dependency").exists()


def test_zero_net_weight_beside_a_kg_quantity_is_unknown():
    p = parse_answer(ref(), answer([record(netWgt=0.0, qty=25.0), record(partnerCode=704, netWgt=0.0, qty=0.0),
                                    record(partnerCode=458, netWgt=0.0, qty=3.0, qtyUnitCode=5)]))
    weights = dict(p.frame.select("partner_code", "net_weight_kg").iter_rows())
    assert weights == {156: None, 704: 0.0, 458: 0.0}
    trade = COMTRADE.trade(p.frame, Catalogue.load())
    assert dict(trade.select(pl.col("partner_code"), "quantity").iter_rows())["156"] == 25.0  # the kg qty stands in


def test_records_that_contradict_each_other_are_quarantined_and_the_rest_lands(settings_env):
    from flows.pipeline import Fetched, land

    settings = settings_env()
    body = answer([record(), record(primaryValue=999.0), record(partnerCode=704)])
    p = parse_answer(ref(), body)
    assert p.frame["partner_code"].to_list() == [704] and p.skipped["conflicting_duplicates"] == 2
    assert p.rejected["line"].to_list() == [1, 2]
    report = land(settings, COMTRADE, [Fetched(ref("c.json"), body)], Catalogue.load())
    assert report.rows_written == 1 and report.rows_rejected == 2
    q = pl.read_parquet(next((settings_env.warehouse / "quarantine" / "comtrade_trade").glob("*.parquet")))
    assert q.height == 2 and q["reason"].str.contains("disagree").all()
    manifest = pl.read_parquet(settings_env.warehouse / "raw" / "comtrade" / "manifest.parquet")
    assert "conflicting_duplicates=2" in manifest["note"].item()


@pytest.mark.usefixtures("prefect_harness")
def test_parallel_backfill_never_calls_faster_than_the_spacing(httpserver, settings_env):
    """Four months fetched at once share one machine-wide limit (a Prefect global concurrency
    limit with slot decay, created on first use): the server sees calls at least `interval` apart."""
    import time

    from prefect.client.orchestration import get_client

    from flows.backfill import backfill

    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        return Response(answer([], count=0), content_type="application/json")

    httpserver.expect_request("/data/v1/get/C/M/HS").respond_with_handler(handler)
    interval = 0.4
    settings_env(comtrade_base_url=httpserver.url_for("").rstrip("/"), comtrade_api_key="k",
                 comtrade_min_interval=str(interval), inbox=None)
    backfill(start="2022-01", end="2022-04", sources=["comtrade"], max_parallel=4)
    calls = len(api.plan(settings_env(), Month(2022, 1), Catalogue.load().hs6_entries)) * 4
    assert len(times) == calls
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= interval - 0.05, sorted(gaps)[:5]
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(api.RATE_LIMIT)
    assert limit.limit == 1 and limit.slot_decay_per_second == pytest.approx(1 / interval)
