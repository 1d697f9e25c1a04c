"""Vintages: every one kept, `latest` and `as of` views, revisions between vintages."""

from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import polars as pl
import pytest

from conftest import SAMPLES
from flows.monthly import monthly_refresh

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def landed(settings_env):
    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    monthly_refresh()
    return settings_env.warehouse


def test_newer_vintage_keeps_older_and_latest_shows_the_new(landed):
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{landed}'")  # the views' paths are relative to the warehouse
    con.execute((landed / "views.sql").read_text())
    q = ("select vintage, sum(value_jpy_thousand) from {} where year = 2020 and month = 3 and flow = 'import' "
         "group by vintage order by vintage")
    every = con.execute(q.format("japan_customs_trade")).fetchall()
    assert [v for v, _ in every] == [dt.date(2020, 8, 31), dt.date(2021, 3, 31)]
    latest = con.execute(q.format("japan_customs_trade_latest")).fetchall()
    assert latest == [every[1]]
    as_of = con.execute(q.format("japan_customs_trade_as_of(DATE '2020-12-31')")).fetchall()
    assert as_of == [every[0]]
    assert con.execute("select typeof(month) from japan_customs_trade limit 1").fetchone()[0] == "INTEGER"
    assert con.execute("select count(*) from import_dependency").fetchone()[0] > 0


def test_revisions_list_the_differences(landed):
    rev = pl.scan_parquet(landed / "indicators" / "revisions", hive_partitioning=True).collect()
    assert set(rev["period_start"].dt.month()) <= set(range(1, 8)) and rev["period_start"].dt.year().unique().to_list() == [2020]
    # each month's own stage: the 2020-08-31 file held Jan-Jun as detailed and July as 9-digit provisional
    stages = dict(rev.select(pl.col("period_start").dt.month(), "old_release").unique().iter_rows())
    assert stages == {m: ("provisional_9digit" if m == 7 else "detailed") for m in stages} and 7 in stages
    assert set(rev["new_release"]) == {"revised"}
    r = rev.filter((pl.col("basis") == "value") & (pl.col("flow") == "import")).row(0, named=True)
    clean = pl.scan_parquet(landed / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    from flows.catalogue import Catalogue
    rows = Catalogue.load().assign_metal(clean.filter(
        (pl.col("flow") == "import") & (pl.col("period") == r["period_start"])
        & (pl.col("country_code") == r["partner_code"])), code="hs9", period="period").filter(
        pl.col("metal") == r["metal"])
    old = rows.filter(pl.col("vintage") == r["old_vintage"])["value_jpy_thousand"].sum()
    new = rows.filter(pl.col("vintage") == r["new_vintage"])["value_jpy_thousand"].sum()
    assert (r["old"], r["new"], r["difference"]) == (old, new, new - old) and old != new
