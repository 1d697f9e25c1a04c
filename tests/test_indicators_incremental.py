"""Indicators are updated, not recomputed, when months land: the windows a changed month belongs
to are recomputed and merged into the stored partner_shares and import_dependency, and the result
equals a full recompute, bit for bit (issue 9: "indicators recompute only the windows the landed
months touch")."""

from __future__ import annotations

import polars as pl
import pytest

from conftest import SAMPLES
from flows import pipeline
from flows.catalogue import Catalogue
from flows.indicators import IMPORT_DEPENDENCY, PARTNER_SHARES, dependency
from flows.periods import Month
from flows.settings import Settings
from flows.sources import inbox_files, registry
from flows.warehouse import Warehouse

SPECS = (PARTNER_SHARES, IMPORT_DEPENDENCY)


def _land(settings: Settings, keep) -> None:  # noqa: ANN001
    source = registry()["japan_customs"]
    refs = [r for r in inbox_files(source, SAMPLES) if keep(r.name)]
    assert refs
    pipeline.land(settings, source, [pipeline.Fetched(r) for r in refs], Catalogue.load())


def _indicators(settings: Settings) -> dict[str, pl.DataFrame]:
    wh = Warehouse(settings.warehouse)
    return {spec.path: wh.read_parquet(spec.partition_path({"source": "japan_customs"}) + "/part-0.parquet")
            for spec in SPECS}


@pytest.fixture
def spy(monkeypatch):
    """The windows each dependency.compute call was given (how many distinct periods)."""
    calls: list[int] = []
    real = dependency.compute

    def compute(trade, periods, **kw):  # noqa: ANN001, ANN202
        calls.append(periods.select("freq", "period_start").unique().height)
        return real(trade, periods, **kw)

    monkeypatch.setattr(dependency, "compute", compute)
    return calls


def test_landing_a_year_updates_only_its_windows_and_equals_a_full_recompute(settings_env, tmp_path, monkeypatch,
                                                                             spy):
    settings = settings_env()
    source, cat = registry()["japan_customs"], Catalogue.load()
    # 2019 first, its indicators computed; then the first 2020 vintage lands and they are updated
    _land(settings, lambda n: n.startswith("2019_"))
    pipeline.compute_indicators(settings, source, cat)
    _land(settings, lambda n: n.startswith("2020_") and "v20200831" in n)
    counts = pipeline.compute_indicators(settings, source, cat)
    updated = _indicators(settings)
    all_windows = dependency.windows(pipeline.available_months(
        pipeline.indicator_input(Warehouse(settings.warehouse), source, cat)))
    n_all = all_windows.select("freq", "period_start").unique().height
    touched = dependency.touching(all_windows, [Month(2020, k) for k in range(1, 9)])
    assert spy[1] == touched.select("freq", "period_start").unique().height < n_all, \
        "the update did not compute exactly the windows holding a landed month"

    # the same clean data recomputed whole, in another warehouse
    monkeypatch.setenv("RAREWATCH_WAREHOUSE", str(tmp_path / "whole"))
    whole = Settings()
    _land(whole, lambda n: n.startswith("2019_") or ("v20200831" in n))
    pipeline.compute_indicators(whole, source, cat, full=True)
    assert spy[-1] == n_all
    expected = _indicators(whole)
    for name, frame in expected.items():
        assert updated[name].equals(frame), f"{name}: the update differs from a full recompute"
    assert counts["partner_shares"] == expected[PARTNER_SHARES.path].height


def test_a_revised_vintage_updates_the_windows_of_its_months(settings_env, tmp_path, monkeypatch, spy):
    settings = settings_env()
    source, cat = registry()["japan_customs"], Catalogue.load()
    _land(settings, lambda n: "v20210331" not in n)
    pipeline.compute_indicators(settings, source, cat)
    _land(settings, lambda n: "v20210331" in n)  # 2020 revised: every 2020 month may have changed
    pipeline.compute_indicators(settings, source, cat)
    updated = _indicators(settings)

    monkeypatch.setenv("RAREWATCH_WAREHOUSE", str(tmp_path / "whole"))
    whole = Settings()
    _land(whole, lambda n: True)
    pipeline.compute_indicators(whole, source, cat, full=True)
    for name, frame in _indicators(whole).items():
        assert updated[name].equals(frame), name


def test_nothing_changed_writes_nothing(settings_env, spy):
    settings = settings_env()
    source, cat = registry()["japan_customs"], Catalogue.load()
    _land(settings, lambda n: n.startswith("2019_"))
    first = pipeline.compute_indicators(settings, source, cat)
    wh = Warehouse(settings.warehouse)
    files = [wh.path(spec.partition_path({"source": "japan_customs"}) + "/part-0.parquet") for spec in SPECS]
    before = [wh.fs.get_file_info(f).mtime_ns for f in files]
    again = pipeline.compute_indicators(settings, source, cat)
    assert len(spy) == 1, "indicators were computed again although no month changed"
    assert [wh.fs.get_file_info(f).mtime_ns for f in files] == before
    assert again["partner_shares"] == first["partner_shares"] and again["import_dependency"] == first["import_dependency"]


def test_files_without_a_state_are_recomputed_whole(settings_env, spy):
    """Indicators written by an older rarewatch (no state in their metadata) or by another polars
    version are not trusted for an update."""
    settings = settings_env()
    source, cat = registry()["japan_customs"], Catalogue.load()
    _land(settings, lambda n: n.startswith("2019_"))
    pipeline.compute_indicators(settings, source, cat)
    wh = Warehouse(settings.warehouse)
    for spec in SPECS:  # rewritten without metadata, as before this change
        rel = spec.partition_path({"source": "japan_customs"}) + "/part-0.parquet"
        wh.publish({rel: wh.read_parquet(rel)})
    pipeline.compute_indicators(settings, source, cat)
    assert spy[0] == spy[1]
    assert dependency.stored_state({dependency.STATE_KEY: '{"version": 0, "months": {}}'}) is None


def test_changed_months_and_touching_windows():
    old = {"2020-01": "a", "2020-02": "b", "2020-03": "c"}
    new = {"2020-01": "a", "2020-02": "B", "2020-04": "d"}
    assert dependency.changed_months(old, new) == [Month(2020, 2), Month(2020, 3), Month(2020, 4)]
    months = [Month(2019, k) for k in range(1, 13)] + [Month(2020, k) for k in range(1, 13)]
    windows = dependency.windows(months)
    touched = dependency.touching(windows, [Month(2020, 3)]).select("freq", "period_start", "period_end").unique()
    # M 2020-03, the 12M windows ending 2020-03..2020-12 (10 of them), A 2020
    assert touched.group_by("freq").len().sort("freq").rows() == [("12M", 10), ("A", 1), ("M", 1)]
