"""The data dictionary, the reference tables and the DuckDB catalogue an analyst reads (issue 11)."""

from __future__ import annotations

import json
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import REPO, SAMPLES
from flows.dictionary import columns, datasets, dictionary_markdown


def test_the_committed_dictionary_matches_the_models():
    """docs/data_dictionary.md is generated from the pandera models: a model changed without
    regenerating it (python -m flows.dictionary > docs/data_dictionary.md) fails here."""
    assert (REPO / "docs" / "data_dictionary.md").read_text() == dictionary_markdown()


def test_every_column_is_described_and_every_dataset_has_its_facts():
    for d in datasets():
        assert d.grain and d.sources and d.cadence and d.vintages and d.summary, d.name
        for c in columns(d):
            assert c["description"], f"{d.name}.{c['column']} has no description"
    enumerated = {(c["dataset"], c["column"]): c["allowed_values"] for d in datasets() for c in columns(d)}
    assert enumerated[("import_dependency", "freq")] == "M, 12M, A"
    assert enumerated[("import_dependency", "basis")] == "value, quantity"
    assert enumerated[("japan_customs_trade", "flow")] == "import, export"
    assert "provisional_9digit" in enumerated[("japan_customs_trade", "release")]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, prefect_harness):
    import os

    root = tmp_path_factory.mktemp("dict")
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAREWATCH_")}
    os.environ.update(RAREWATCH_WAREHOUSE=str(root / "warehouse"), RAREWATCH_INBOX=str(SAMPLES),
                      RAREWATCH_TASK_RETRIES="0")
    try:
        from flows.monthly import monthly_refresh

        monthly_refresh(sources=["japan_customs", "gacc", "meti"])
    finally:
        for k in [k for k in os.environ if k.startswith("RAREWATCH_")]:
            del os.environ[k]
        os.environ.update(saved)
    return root / "warehouse"


def test_each_run_writes_the_dictionary_readme_and_reference_tables(warehouse):
    doc = json.loads((warehouse / "data_dictionary.json").read_text())
    names = {d["dataset"] for d in doc["datasets"]}
    assert {"japan_customs_trade", "import_dependency", "reserve_coverage", "metals", "countries"} <= names
    readme = (warehouse / "README.md").read_text()
    assert "import_dependency_latest" in readme and 'dtype_backend="pyarrow"' in readme
    for name in ("metals", "countries", "comtrade_partners", "stockpile_policy", "consumption_baseline"):
        assert list((warehouse / "reference" / name).glob("*.parquet")), name
    field = pq.read_schema(next((warehouse / "indicators" / "import_dependency").rglob("*.parquet"))).field("hhi")
    assert field.metadata[b"description"].startswith(b"Herfindahl")


def test_the_duckdb_catalogue_works_after_the_warehouse_is_copied(warehouse, tmp_path):
    """Paths in the catalogue are relative to the warehouse: a copy answers from its own files
    (the original is moved away, so nothing can be read from it)."""
    copy = tmp_path / "elsewhere" / "warehouse"
    shutil.copytree(warehouse, copy)
    hidden = warehouse.with_name("moved-away")
    warehouse.rename(hidden)
    try:
        con = duckdb.connect(str(copy / "rarewatch.duckdb"), read_only=True)
        con.execute(f"SET file_search_path = '{copy}'")
        china, stock = con.execute(
            "SELECT round(100 * d.china_share, 1), round(r.required_stock_180d_t) FROM import_dependency_latest d "
            "JOIN reserve_coverage_latest r USING (metal) WHERE d.source = 'japan_customs' "
            "AND d.metal = 'rare_earths' AND d.freq = 'A' AND d.basis = 'quantity'").fetchone()
        assert 0 < china < 100 and stock > 0
        assert con.execute("SELECT typeof(month) FROM japan_customs_trade LIMIT 1").fetchone()[0] == "INTEGER"
        assert con.execute("SELECT typeof(period_start) FROM china_rare_earth_exports LIMIT 1").fetchone()[0] == "DATE"
        assert con.execute("SELECT count(*) FROM japan_customs_trade_as_of(DATE '2020-12-31')").fetchone()[0] > 0
        comment = con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'import_dependency' "
                              "AND column_name = 'china_share'").fetchone()[0]
        assert "China" in comment
        con.close()
    finally:
        hidden.rename(warehouse)
