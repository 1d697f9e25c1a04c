"""The warehouse module: atomic publish, partition layout, raw zone, readers."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pytest

from flows.warehouse import PartitionSpec, Warehouse

SPEC = PartitionSpec("clean/demo", ("year", "month"), (("month", 2),))


def frame() -> pl.DataFrame:
    return pl.DataFrame({"year": [2020, 2020, 2020], "month": [7, 7, 12], "x": [3.0, 1.0, 2.0]})


def test_partitions_one_file_each_keys_in_path_only(tmp_path):
    wh = Warehouse(str(tmp_path))
    wh.write_partitions(SPEC, frame(), sort_by=["x"])
    assert wh.partition_files(SPEC) == ["clean/demo/year=2020/month=07/part-0.parquet",
                                        "clean/demo/year=2020/month=12/part-0.parquet"]
    body = pl.read_parquet(tmp_path / "clean/demo/year=2020/month=07/part-0.parquet")
    assert body.columns == ["x"] and body["x"].to_list() == [1.0, 3.0]
    back = wh.read_dataset(SPEC)
    assert back.sort("month", "x").to_dicts() == frame().sort("month", "x").to_dicts()
    assert wh.read_dataset(SPEC, where={"year": 2020, "month": 12})["x"].to_list() == [2.0]
    # every reader the analysts use
    assert pl.scan_parquet(tmp_path / "clean/demo", hive_partitioning=True).collect().height == 3
    assert duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/clean/demo/**/*.parquet', "
                      "hive_partitioning=true)").fetchall() == [(3,)]
    assert len(pd.read_parquet(tmp_path / "clean/demo")) == 3


def test_rewrite_replaces_only_its_partition_and_is_byte_identical(tmp_path):
    wh = Warehouse(str(tmp_path))
    wh.write_partitions(SPEC, frame())
    dec = (tmp_path / "clean/demo/year=2020/month=12/part-0.parquet").read_bytes()
    wh.write_partitions(SPEC, pl.DataFrame({"year": [2020], "month": [7], "x": [9.0]}))
    assert wh.read_dataset(SPEC, where={"month": 7})["x"].to_list() == [9.0]
    assert (tmp_path / "clean/demo/year=2020/month=12/part-0.parquet").read_bytes() == dec
    wh.write_partitions(SPEC, frame())
    again = (tmp_path / "clean/demo/year=2020/month=12/part-0.parquet").read_bytes()
    assert again == dec


def test_replace_all_deletes_partitions_no_longer_present(tmp_path):
    wh = Warehouse(str(tmp_path))
    wh.write_partitions(SPEC, frame())
    wh.write_partitions(SPEC, frame().filter(pl.col("month") == 7), replace_all=True)
    assert wh.partition_files(SPEC) == ["clean/demo/year=2020/month=07/part-0.parquet"]


def test_a_failure_while_preparing_publishes_nothing(tmp_path, monkeypatch):
    wh = Warehouse(str(tmp_path))
    wh.write_partitions(SPEC, frame())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
    calls = {"n": 0}
    real = Warehouse.parquet_bytes

    def fail_on_second(df, metadata=None, descriptions=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(df, metadata, descriptions)

    monkeypatch.setattr(Warehouse, "parquet_bytes", staticmethod(fail_on_second))
    changed = pl.DataFrame({"year": [2020, 2021], "month": [7, 1], "x": [5.0, 6.0]})
    with pytest.raises(OSError, match="disk full"):
        wh.write_partitions(SPEC, changed)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")} == before
    assert not (tmp_path / "clean/demo/year=2021").exists()
    assert not [p for p in (tmp_path / "_staging").rglob("*") if p.is_file()]


def test_raw_zone_is_content_addressed_and_idempotent(tmp_path):
    wh = Warehouse(str(tmp_path))
    sha, url = wh.put_raw("japan_customs", "../evil name.csv", b"abc")
    assert sha == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert url.endswith(f"raw/japan_customs/files/{sha}/evil_name.csv")
    assert wh.put_raw("japan_customs", "../evil name.csv", b"abc") == (sha, url)
    assert wh.read_bytes(f"raw/japan_customs/files/{sha}/evil_name.csv") == b"abc"


def test_root_may_be_a_url(tmp_path):
    wh = Warehouse(tmp_path.as_uri())
    wh.write_partitions(SPEC, frame())
    assert wh.url("clean") == f"{tmp_path.as_uri()}/clean"
    assert Warehouse(str(tmp_path)).read_dataset(SPEC).height == 3


def test_staged_files_of_dead_runs_are_removed_when_the_lock_is_taken(tmp_path):
    wh = Warehouse(str(tmp_path))
    left = tmp_path / "_staging" / "0123-dead" / "clean" / "x" / "part-0.parquet.staged.ab"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"x")
    with wh.writer("test"):
        assert not left.exists()
