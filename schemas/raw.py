"""The raw zone's manifest: every original file ever fetched or dropped in the inbox."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa


class RawManifest(pa.DataFrameModel):
    """`raw/<source>/manifest.parquet`: one row per original file (sha256) and where it came from."""

    source: str = pa.Field(description="source name, e.g. japan_customs")
    file: str = pa.Field(description="file name as published")
    url: str = pa.Field(description="where the bytes came from (http(s) URL, or file URI in the inbox)")
    sha256: str = pa.Field(str_matches=r"^[0-9a-f]{64}$", description="sha256 of the bytes")
    size: int = pa.Field(ge=0, description="bytes")
    raw_path: str = pa.Field(description="URL of the copy kept in the raw zone")
    retrieved_at: dt.datetime = pa.Field(description="when rarewatch first saw these bytes (UTC)")
    vintage: dt.date = pa.Field(nullable=True, description="publication date of the release")
    release: str = pa.Field(nullable=True, description="kind of release")
    status: str = pa.Field(isin=["published", "rejected", "skipped"],
                           description="outcome of the latest ingestion (skipped: recognised, not read by this source; see note)")
    rows: int = pa.Field(nullable=True, ge=0, description="clean rows the file gave (0: nothing reported, e.g. Comtrade count 0)")
    note: str = pa.Field(nullable=True, description="what was left out and why (summary rows, duplicates, not reported ...)")
    months: str = pa.Field(nullable=True, description="months the file carries, YYYY-MM..YYYY-MM (null: none, or "
                           "recorded before rarewatch kept them)")

    class Config:
        strict = True
        unique = ["sha256", "url"]
