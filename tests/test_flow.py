"""The monthly_refresh flow end to end under a Prefect test harness, into a temporary warehouse."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from builders import csv_bytes, row
from conftest import SAMPLES
from flows.errors import SourceFailed
from flows.monthly import due_period, monthly_refresh
from flows.periods import Month

pytestmark = pytest.mark.usefixtures("prefect_harness")


def snapshot(root: Path, zone: str) -> dict[str, str]:
    """sha256 of every file under a zone, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / zone).rglob("*")) if p.is_file()}


@pytest.fixture
def sample_inbox(settings_env):
    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    return settings_env


def test_refresh_on_sample_releases(sample_inbox):
    wh = sample_inbox.warehouse
    result = monthly_refresh()
    jc = result["japan_customs"]
    assert jc["status"] == "ok" and jc["focus"] == "2020-12"
    assert jc["months"][0] == "2019-01" and len(jc["months"]) == 24

    # clean: one zstd file per month partition; every vintage kept
    parts = sorted((wh / "clean" / "japan_customs_trade").rglob("*.parquet"))
    assert len(parts) == 24
    assert parts[0].relative_to(wh).as_posix() == "clean/japan_customs_trade/year=2019/month=01/part-0.parquet"
    import pyarrow.parquet as pq
    assert pq.ParquetFile(parts[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    clean = pl.scan_parquet(wh / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    vintages = clean.filter(pl.col("year") == 2020).group_by("month").agg(pl.col("vintage").n_unique())
    assert dict(vintages.iter_rows()) == {**{m: 2 for m in range(1, 8)}, **{m: 1 for m in range(8, 13)}}
    assert set(clean["release"].unique()) == {"fixed", "detailed", "provisional_9digit", "revised"}

    # the acceptance query, through DuckDB, polars and pandas
    q = ("select period_start, china_share, hhi from read_parquet("
         f"'{wh}/indicators/import_dependency/**/*.parquet', hive_partitioning=true) "
         "where metal='rare_earths' and freq='A' and basis='quantity' order by 1")
    yearly = duckdb.sql(q).fetchall()
    assert [r[0] for r in yearly] == [dt.date(2019, 1, 1), dt.date(2020, 1, 1)]
    assert all(0 < r[1] < 1 and 0 < r[2] <= 10_000 for r in yearly)
    dep = pl.scan_parquet(wh / "indicators" / "import_dependency", hive_partitioning=True).collect()
    assert dep["source"].unique().to_list() == ["japan_customs"]
    pdf = pd.read_parquet(wh / "indicators" / "partner_shares")
    assert {"metal", "partner_iso3", "share", "source"} <= set(pdf.columns)
    assert len(pd.read_parquet(wh / "clean" / "japan_customs_trade")) == clean.height

    # indicators use the newest vintage: 2020-03 China quantity from the revised file only
    revised = clean.filter((pl.col("year") == 2020) & (pl.col("month") == 3) & (pl.col("release") == "revised")
                           & pl.col("hs6").is_in(["280530", "284610", "284690"]) & (pl.col("flow") == "import")
                           & ~pl.col("country_code").is_in(["701", "702", "703"]))
    china = revised.filter(pl.col("country_code") == "105")["net_mass_kg"].sum() / revised["net_mass_kg"].sum()
    m = dep.filter((pl.col("metal") == "rare_earths") & (pl.col("freq") == "M") & (pl.col("basis") == "quantity")
                   & (pl.col("period_start") == dt.date(2020, 3, 1)))
    assert m["china_share"].item() == pytest.approx(china)

    # raw zone keeps every original file with its sha256 and manifest
    manifest = pl.read_parquet(wh / "raw" / "japan_customs" / "manifest.parquet")
    assert manifest.height == 18 and set(manifest["status"]) == {"published"}
    for r in manifest.iter_rows(named=True):
        kept = wh / "raw" / "japan_customs" / "files" / r["sha256"] / r["file"]
        assert hashlib.sha256(kept.read_bytes()).hexdigest() == r["sha256"]
    assert not list(wh.rglob("*.tmp"))

    # artifacts: a Markdown summary of the month and a table of rows written / rejected
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        def latest(key):
            return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                         sort=ArtifactSort.CREATED_DESC, limit=1)[0]
        summary = latest("month-summary")
        assert summary.type == "markdown" and "| rare_earths | 12M |" in summary.data
        table = latest("rows-written")
        assert table.type == "table" and f'"rows_written": {clean.height}' in str(table.data).replace("'", '"')


def test_rerun_leaves_identical_parquet(sample_inbox):
    wh = sample_inbox.warehouse
    monthly_refresh()
    first = {z: snapshot(wh, z) for z in ("clean", "indicators", "raw")}
    monthly_refresh()
    assert {z: snapshot(wh, z) for z in ("clean", "indicators", "raw")} == first
    monthly_refresh(period="2020-07")  # only the 2020 files carry July: same bytes again
    assert snapshot(wh, "clean") == first["clean"]


def test_malformed_file_fails_the_run_and_leaves_clean_unchanged(sample_inbox):
    wh = sample_inbox.warehouse
    monthly_refresh()
    before = snapshot(wh, "clean"), snapshot(wh, "indicators")
    bad = csv_bytes([row("280530000", 105, {1: (10, 10)}, year=2021),
                     row("284610000", 210, {1: (10, 10)}, year=2021, year_totals=(0, 10, 99))])
    (sample_inbox.inbox / "japan_customs" / "2021_imp_bad.csv").write_bytes(bad)
    with pytest.raises(SourceFailed) as err:
        monthly_refresh()
    message = str(err.value)
    assert "2021_imp_bad.csv" in message and "line 3" in message and "'Value-Year'" in message
    assert (snapshot(wh, "clean"), snapshot(wh, "indicators")) == before
    quarantined = list((wh / "quarantine" / "japan_customs_trade").glob("*2021_imp_bad.csv.parquet"))
    assert len(quarantined) == 1
    q = pl.read_parquet(quarantined[0])
    assert q["line"].to_list() == [3] and q["row_text"][0].startswith("2,2021,'284610000',210")
    manifest = pl.read_parquet(wh / "raw" / "japan_customs" / "manifest.parquet")
    assert manifest.filter(pl.col("file") == "2021_imp_bad.csv")["status"].to_list() == ["rejected"]


def test_unreadable_file_names_file_and_problem(settings_env):
    folder = settings_env.inbox / "japan_customs"
    folder.mkdir()
    (folder / "2020_imp.csv").write_bytes(b"Exp or Imp,Year,HS\n2,2020,'280530000'\n")
    with pytest.raises(SourceFailed, match=r"2020_imp.csv, line 1: not the 品別国別表 layout: missing columns"):
        monthly_refresh()
    assert not (settings_env.warehouse / "clean").exists()


def test_live_refresh_from_estat(httpserver, settings_env):
    """Through the flow against e-Stat pages in the live shape (tests/fixtures/estat): navigation
    page, month page of 22 articles per flow, each month's stage from the file title."""
    from test_estat_files import serve_estat

    serve_estat(httpserver)
    settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    result = monthly_refresh(period="2020-07", sources=["japan_customs"])
    assert result["japan_customs"]["months"] == [f"2020-0{m}" for m in range(1, 8)]
    wh = settings_env.warehouse
    manifest = pl.read_parquet(wh / "raw" / "japan_customs" / "manifest.parquet")
    assert manifest.height == 44 and all(u.startswith("http://localhost") or u.startswith("http://127.0.0.1")
                                         for u in manifest["url"])
    assert set(manifest["vintage"]) == {dt.date(2020, 8, 31)}
    assert set(manifest["release"]) == {"1-6:detailed,7:provisional_9digit"}
    clean = pl.scan_parquet(wh / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    stages = dict(clean.group_by("month").agg(pl.col("release").unique().first()).iter_rows())
    assert stages == {**{m: "detailed" for m in range(1, 7)}, 7: "provisional_9digit"}
    assert clean.filter(pl.col("month") == 7).height == 4  # the 4 files holding catalogue codes, 1 row each


def test_due_period(settings_env):
    s = settings_env(inbox=None)
    assert due_period(s, "japan_customs", None, dt.datetime(2026, 11, 26, tzinfo=dt.UTC)) == Month(2026, 9)
    assert due_period(s, "japan_customs", None, dt.datetime(2026, 11, 30, tzinfo=dt.UTC)) == Month(2026, 10)
    assert due_period(s, "gacc", None, dt.datetime(2026, 11, 9, tzinfo=dt.UTC)) == Month(2026, 9)
    assert due_period(s, "gacc", None, dt.datetime(2026, 11, 10, tzinfo=dt.UTC)) == Month(2026, 10)
    assert due_period(s, "japan_customs", "2020-07", dt.datetime(2026, 11, 26)) == Month(2020, 7)
    (settings_env.inbox / "japan_customs").mkdir()
    (settings_env.inbox / "japan_customs" / "a.csv").write_text("x")
    s = settings_env(inbox=settings_env.inbox)
    assert due_period(s, "japan_customs", None, dt.datetime(2026, 1, 1)) is None
    assert due_period(s, "gacc", None, dt.datetime(2026, 1, 10)) == Month(2025, 12)


def test_one_source_failing_does_not_stop_the_others(sample_inbox, httpserver):
    """gacc's index answers 500; japan_customs still lands, and the run's final state names gacc."""
    httpserver.expect_request("/statics/report/preliminary2020.html").respond_with_data("down", status=500)
    httpserver.expect_request("/statics/report/preliminary.html").respond_with_data("down", status=500)
    sample_inbox(gacc_base_url=httpserver.url_for("").rstrip("/"), http_retries=0)
    state = monthly_refresh(period="2020-07", sources=["japan_customs", "gacc"], return_state=True)
    assert state.is_failed()
    assert "source gacc failed" in state.message and "HTTP 500" in state.message
    assert "japan_customs" not in state.message.split("gacc failed")[0]
    clean = pl.scan_parquet(sample_inbox.warehouse / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    assert clean.filter(pl.col("year") == 2020).height > 0


def test_files_at_the_inbox_root_are_recognised_by_content(settings_env):
    from builders import csv_bytes, row
    from flows.errors import RarewatchError
    from flows.sources import inbox_files, registry

    inbox = settings_env.inbox
    (inbox / "imports_2020.csv").write_bytes(csv_bytes([row("280530000", 105, {1: (10, 20)})]))
    (inbox / "answer.json").write_bytes(b'{"elapsedTime": "0.1 secs", "count": 0, "data": [], "error": ""}')
    (inbox / "release.html").write_bytes(b"<html><title>(5) China's Major Exports by Quantity and Value, "
                                         b"May 2020 (in CNY)</title></html>")
    sources = registry()
    assert [r.name for r in inbox_files(sources["japan_customs"], inbox)] == ["imports_2020.csv"]
    assert [r.name for r in inbox_files(sources["comtrade"], inbox)] == ["answer.json"]
    assert [r.name for r in inbox_files(sources["gacc"], inbox)] == ["release.html"]
    assert [r.name for r in inbox_files(sources["gacc_imports"], inbox)] == ["release.html"]
    (inbox / "notes.txt").write_text("shopping list")
    with pytest.raises(RarewatchError, match=r"notes.txt is not recognised .*japan_customs/"):
        inbox_files(sources["japan_customs"], inbox)


@pytest.mark.usefixtures("prefect_harness")
def test_a_release_not_out_yet_ends_the_run_completed_with_a_note(httpserver, settings_env):
    """Issue 12: a release not yet published is no failure (and is not retried): the run ends
    well and says when it tries again."""
    from test_sources_check import gacc_index

    httpserver.expect_request("/statics/report/preliminary2020.html").respond_with_data(
        gacc_index(), content_type="text/html; charset=utf-8")  # links July only
    settings_env(gacc_base_url=httpserver.url_for("").rstrip("/"), inbox=None, http_retries=0)
    from flows.monthly import monthly_refresh

    state = monthly_refresh(period="2020-08", sources=["gacc"], return_state=True)
    result = state.result()
    assert result["gacc"]["status"] == "not_published"
    assert "not published yet" in result["gacc"]["reason"] and "next try" in result["gacc"]["reason"]
    # the run's own state says so, where the UI shows it
    assert state.is_completed() and state.message.startswith("gacc: not published yet"), state.message
    assert "next try" in state.message


@pytest.mark.usefixtures("prefect_harness")
def test_runs_have_readable_names(settings_env):
    from prefect.client.orchestration import get_client

    from flows.monthly import monthly_refresh

    shutil.copytree(SAMPLES / "meti", settings_env.inbox / "meti")
    state = monthly_refresh(sources=["meti"], return_state=True)
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == "monthly due (meti)"
