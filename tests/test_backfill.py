"""The backfill flow: parallel months, progress artifact, unchanged months skipped, failures isolated."""

from __future__ import annotations

import hashlib
import shutil

import polars as pl
import pytest

from conftest import SAMPLES
from flows.backfill import backfill

pytestmark = pytest.mark.usefixtures("prefect_harness")


def snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def samples(settings_env):
    for source in ("japan_customs", "gacc"):
        shutil.copytree(SAMPLES / source, settings_env.inbox / source)
    return settings_env


def latest_artifact(key):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                     sort=ArtifactSort.CREATED_DESC, limit=1)[0]


def test_backfill_on_samples_then_again_changes_nothing(samples):
    result = backfill(start="2019-01", end="2020-12", sources=["japan_customs", "gacc"])
    statuses = {(j["month"], j["source"]): j["status"] for j in result["jobs"]}
    assert statuses[("2019-01", "japan_customs")] == "landed" and statuses[("2020-01", "japan_customs")] == "landed"
    # one file carries the whole year: it is landed once, and every month says how many rows it gave
    assert statuses[("2019-06", "japan_customs")] == "landed"
    jc = [r for r in result["releases"]["japan_customs"] if r["status"] == "landed"]
    assert [r["release"] for r in jc] == ["2019", "2020"]
    assert latest_artifact("backfill-progress").data == 100.0
    summary = latest_artifact("backfill-summary")
    assert "2020-12" in str(summary.data)
    wh = samples.warehouse
    clean = pl.scan_parquet(wh / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    assert clean.select("year", "month").unique().height == 24
    before = snapshot(wh)
    again = backfill(start="2019-01", end="2020-12", sources=["japan_customs", "gacc"])
    assert {j["status"] for j in again["jobs"]} == {"unchanged"}
    assert snapshot(wh) == before


def test_a_failed_month_does_not_lose_the_others_and_rerun_does_only_what_failed(samples):
    bad = samples.inbox / "japan_customs" / "2021_imp_bad.csv"
    bad.write_text("Exp or Imp,Year\n2,2021\n")
    with pytest.raises(Exception) as err:
        backfill(start="2019-11", end="2020-02", sources=["japan_customs"])
    assert "2021_imp_bad.csv" in str(err.value)
    # the unreadable file fails on its own; the 2019 and 2020 releases landed whole
    clean = pl.scan_parquet(samples.warehouse / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    assert clean.select("year").unique().sort("year")["year"].to_list() == [2019, 2020]
    assert clean.filter(pl.col("year") == 2019).select("month").n_unique() == 12
    bad.unlink()
    result = backfill(start="2019-11", end="2020-02", sources=["japan_customs"])
    assert {j["status"] for j in result["jobs"]} == {"unchanged"}  # only what failed was left to do


def test_force_lands_unchanged_months_again(samples):
    backfill(start="2020-01", end="2020-01", sources=["japan_customs"])
    again = backfill(start="2020-01", end="2020-01", sources=["japan_customs"], force=True)
    assert again["jobs"][0]["status"] == "landed"


def test_a_backfill_reads_each_inbox_file_once(samples, monkeypatch):
    from flows import pipeline

    reads: dict[str, int] = {}
    real = pipeline.read_inbox_file

    def counting(ref, max_bytes=None):
        reads[ref.name] = reads.get(ref.name, 0) + 1
        return real(ref, max_bytes)

    monkeypatch.setattr(pipeline, "read_inbox_file", counting)
    result = backfill(start="2019-01", end="2020-12", sources=["japan_customs"])
    files = sorted(p.name for p in (samples.inbox / "japan_customs").iterdir())
    assert sorted(reads) == files and set(reads.values()) == {1}  # 24 months, each file read once
    rows = {j["month"]: j for j in result["jobs"]}
    assert rows["2019-03"]["files"] == len([f for f in files if f.startswith("2019")])
    assert "rows landed from" in rows["2019-03"]["detail"]
    reads.clear()
    again = backfill(start="2019-01", end="2020-12", sources=["japan_customs"])
    assert set(reads.values()) == {1} and {j["status"] for j in again["jobs"]} == {"unchanged"}
    assert rows["2019-03"]["files"] == again["jobs"][2]["unchanged"]  # months of unchanged files from the manifest


def test_backfill_on_a_local_dask_cluster(samples):
    samples(dask_local="true")
    result = backfill(start="2020-06", end="2020-07", sources=["japan_customs", "gacc"], max_parallel=2)
    assert {j["status"] for j in result["jobs"]} <= {"landed", "unchanged", "nothing new"}
    assert (samples.warehouse / "clean" / "china_customs_exports" / "year=2020" / "month=07").exists()


def test_default_sources_offline_are_those_with_inbox_files(samples):
    result = backfill(start="2020-07", end="2020-07")
    assert {j["source"] for j in result["jobs"]} == {"japan_customs", "gacc", "gacc_imports"}  # gacc_imports reads inbox/gacc too


def test_bad_range_is_refused(samples):
    with pytest.raises(ValueError, match="before start"):
        backfill(start="2020-05", end="2020-01")


def test_backfill_on_a_dask_cluster_by_address(samples):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        samples(dask_address=cluster.scheduler_address)
        result = backfill(start="2020-01", end="2020-02", sources=["japan_customs"])
    assert result["jobs"][0]["status"] == "landed"


def test_a_live_backfill_fetches_each_release_once(httpserver, settings_env):
    """Months 2020-03..2020-07 of Japan Customs come in one release (the July files carry January
    to July): one month page and 44 downloads, not five of each (e-Stat pages of tests/fixtures/estat)."""
    from test_estat_files import serve_estat

    seen = serve_estat(httpserver)
    settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    result = backfill(start="2020-03", end="2020-07", sources=["japan_customs"], max_parallel=2)
    downloads = [r for r in seen if r.path.endswith("file-download")]
    assert len(downloads) == 44 and len({r.args["statInfId"] for r in downloads}) == 44
    month_pages = {r.args.get("month") for r in seen if r.path.endswith("/files") and r.args.get("month")}
    assert month_pages == {"23070907"}
    assert {j["month"]: j["status"] for j in result["jobs"]} == {f"2020-0{m}": "landed" for m in range(3, 8)}
    assert [r["release"] for r in result["releases"]["japan_customs"]] == ["2020"]


@pytest.mark.usefixtures("prefect_harness")
def test_the_run_an_operator_starts_shows_progress_and_summary_and_no_settings_travel(settings_env):
    """Issue 12: the backfill's progress and summary artifacts are on the run one starts, and the
    child run's parameters hold no settings (Prefect stores parameters; secrets must not be there)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterParentFlowRunId

    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    settings_env(comtrade_api_key="CANARY-ct-key-in-params")
    state = backfill(start="2019-01", end="2019-06", sources=["japan_customs"], return_state=True)
    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[parent])))
        run = client.read_flow_run(parent)
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])))
    keys = {a.key for a in artifacts}
    assert {"backfill-progress", "backfill-summary"} <= keys
    assert run.name == "backfill 2019-01..2019-06"
    assert children and children[0].name == "backfill months 2019-01..2019-06"
    for child in children:
        assert "settings" not in child.parameters
        assert "CANARY" not in str(child.parameters)


def test_a_forced_live_backfill_lands_each_file_once_and_the_graph_links_fetch_to_land(httpserver, settings_env,
                                                                                     monkeypatch):
    """Issue 12: with `force`, a release carrying several months is fetched and landed once, not
    once per month (the old code landed one year's file six times); the run's graph shows
    fetch -> land (the land task's inputs name the fetch task run), one pair per release, each
    task named with the months it serves (e-Stat pages of tests/fixtures/estat)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, TaskRunFilter, TaskRunFilterFlowRunId

    from flows import pipeline
    from test_estat_files import serve_estat

    seen = serve_estat(httpserver)
    settings_env(estat_base_url=httpserver.url_for("").rstrip("/"), inbox=None)
    backfill(start="2020-03", end="2020-07", sources=["japan_customs"], max_parallel=2)
    clean_before = pl.scan_parquet(settings_env.warehouse / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    seen.clear()
    published: list[list[str]] = []
    real_publish = pipeline.publish_files

    def counting(settings, source, files):
        published.append([f.ref.name for f in files])
        return real_publish(settings, source, files)

    monkeypatch.setattr(pipeline, "publish_files", counting)
    state = backfill(start="2020-03", end="2020-07", sources=["japan_customs"], force=True, max_parallel=2,
                     return_state=True)
    result = state.result()
    downloads = [r for r in seen if r.path.endswith("file-download")]
    assert len(downloads) == 44 and len({r.args["statInfId"] for r in downloads}) == 44
    # landed once: the 44 files published together once, one release, the same clean rows (no duplicates)
    assert len(published) == 1 and len(published[0]) == len(set(published[0])) == 44
    assert [(r["release"], r["files"]) for r in result["releases"]["japan_customs"]] == [("2020", 44)]
    clean_after = pl.scan_parquet(settings_env.warehouse / "clean" / "japan_customs_trade", hive_partitioning=True).collect()
    assert clean_after.height == clean_before.height
    assert {j["month"]: j["status"] for j in result["jobs"]} == {f"2020-0{m}": "landed" for m in range(3, 8)}

    with get_client(sync_client=True) as client:
        child = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])))[0]
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[child.id])))
    by_name = {t.name: t for t in tasks}
    fetch = by_name["fetch japan_customs 2020-07 for 2020-03..2020-07"]
    land = by_name["land japan_customs 2020-07 for 2020-03..2020-07"]
    assert [i.id for i in land.task_inputs["fetched"]] == [fetch.id]
    assert sum(t.name.startswith("land ") for t in tasks) == 1
