"""Shock alerts (issue 11): each rule on small frames, then a July-2020-like drop in the samples
raising an alert in indicators/alerts and a Prefect event."""

from __future__ import annotations

import datetime as dt
import shutil
import time

import polars as pl
import pytest

from conftest import SAMPLES
from flows.indicators import alerts


def month(y: int, m: int) -> tuple[dt.date, dt.date]:
    start = dt.date(y, m, 1)
    end = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1))
    return start, end


def test_a_fall_of_30_percent_or_more_is_an_export_drop():
    rows = []
    for m, yoy in ((6, -29.9), (7, -69.1)):
        s, e = month(2020, m)
        for cur in ("CNY", "USD"):
            rows.append({"commodity": "rare_earths", "currency": cur, "period_start": s, "period_end": e,
                         "quantity_t": 1620.3, "quantity_t_prior_year": 5240.0, "yoy_quantity_pct": yoy})
    out = alerts.china_export_drops(pl.DataFrame(rows), 30.0)
    assert out["period_end"].to_list() == [dt.date(2020, 7, 31)]  # once, not once per currency
    assert "-69.1%" in out["message"][0]


def test_china_share_moving_10_points_in_a_year_is_a_shift():
    rows = []
    for y, share in ((2019, 0.58), (2020, 0.47)):
        s, e = month(y, 7)
        rows.append({"source": "japan_customs", "metal": "rare_earths", "freq": "12M", "basis": "quantity",
                     "period_start": s.replace(year=y - 1, month=8), "period_end": e, "china_share": share})
    out = alerts.china_share_shifts(pl.DataFrame(rows), 10.0)
    assert out.height == 1 and round(out["change"][0], 1) == -11.0
    assert alerts.china_share_shifts(pl.DataFrame(rows), 12.0).is_empty()


def test_a_top_three_supplier_absent_from_the_month_is_gone():
    s6, e6 = month(2020, 6)
    s7, e7 = month(2020, 7)
    base = {"source": "japan_customs", "metal": "graphite", "basis": "quantity"}
    rows = [{**base, "freq": "12M", "period_start": s6, "period_end": e6, "partner_code": c, "partner_name": n,
             "share": sh, "rank": r} for c, n, sh, r in (("105", "China", 0.7, 1), ("551", "Mozambique", 0.1, 2),
                                                       ("601", "Brazil", 0.05, 3), ("302", "Canada", 0.01, 4))]
    rows += [{**base, "freq": "M", "period_start": s7, "period_end": e7, "partner_code": c, "partner_name": n,
              "share": 0.5, "rank": 1} for c, n in (("105", "China"), ("601", "Brazil"))]
    out = alerts.top_suppliers_gone(pl.DataFrame(rows))
    assert out["message"].to_list() == [
        "Mozambique (a top-3 supplier of Japan's graphite over the previous 12 months) supplied nothing in 2020-07"]


def test_a_target_stock_rise_is_judged_once_per_reference_year():
    rows = []
    for y in (2019, 2020):
        for m in range(1, 13):
            s, e = month(y, m)
            ref = y - 1 if m >= 7 else y - 2
            rows.append({"metal": "rare_earths", "period_start": s, "period_end": e, "reference_year": ref,
                         "required_stock_target_t": {2017: 6000.0, 2018: 6508.0, 2019: 9148.0}[ref]})
    out = alerts.target_stock_rises(pl.DataFrame(rows), 20.0)
    assert out["period_start"].to_list() == [dt.date(2020, 7, 1)]  # 2019 vs 2018: +40.6 %; 2018 vs 2017: +8.5 %


@pytest.mark.usefixtures("prefect_harness")
def test_the_july_2020_drop_in_the_samples_raises_an_alert_and_an_event(settings_env):
    from prefect.settings import get_current_settings
    import requests

    from flows.monthly import monthly_refresh

    shutil.copytree(SAMPLES / "gacc", settings_env.inbox / "gacc")
    result = monthly_refresh(sources=["gacc"])
    stored = pl.read_parquet(settings_env.warehouse / "indicators" / "alerts")
    july = stored.filter((pl.col("kind") == "china_export_drop") & (pl.col("period_end") == dt.date(2020, 7, 31)))
    assert july.height == 1 and july["subject"][0] == "rare_earths"
    assert any(a["period_end"] == dt.date(2020, 7, 31) for a in result["alerts"]["new"])
    url = get_current_settings().api.url
    deadline = time.monotonic() + 60
    while True:  # events are persisted by the server shortly after they are sent
        r = requests.post(f"{url}/events/filter", json={"filter": {"event": {"name": ["rarewatch.alert.china_export_drop"]},
                                                                  "any_resource": {"id": ["rarewatch.metal.rare_earths"]}},
                                                       "limit": 50}, timeout=10)
        events = r.json().get("events", []) if r.ok else []
        if any(e["payload"].get("period_end") == "2020-07-31" for e in events) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert any(e["payload"].get("period_end") == "2020-07-31" for e in events), r.text[:500]
    again = monthly_refresh(sources=["gacc"])
    assert again["alerts"]["new"] == []  # told once


def test_a_live_source_behind_its_calendar_is_overdue_and_an_inbox_never_is(tmp_path):
    from flows.pipeline import release_calendar
    from flows.warehouse import Warehouse

    wh = Warehouse(str(tmp_path))
    entry = {"source": "gacc", "file": "t5.html", "sha256": "0" * 64, "size": 1, "raw_path": "x",
             "retrieved_at": dt.datetime(2020, 9, 10), "vintage": dt.date(2020, 8, 9), "release": "preliminary",
             "status": "published", "rows": 3, "note": None, "months": "2020-07..2020-07"}
    now = dt.datetime(2020, 10, 20, tzinfo=dt.UTC)  # September's release is out since about the 10th
    wh.record_raw("gacc", pl.DataFrame([{**entry, "url": "file:///inbox/gacc/t5.html"}]))
    assert [r["source"] for r in release_calendar(wh, now)] == []
    wh.record_raw("gacc", pl.DataFrame([{**entry, "url": "https://english.customs.gov.cn/Statics/x.html"}]))
    out = alerts.releases_overdue(release_calendar(wh, now))
    assert out["message"].to_list() == ["gacc: the release of 2020-09 is out by its calendar, the newest landed is 2020-07"]
