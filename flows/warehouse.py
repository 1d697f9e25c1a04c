"""All warehouse I/O goes through here: paths as URLs, atomic publish, manifests.

The warehouse root is a local path or a URL that pyarrow's filesystems understand (file://,
s3://...). Zones under it:

- `raw/<source>/files/<sha256>/<name>`: original bytes, content-addressed; `raw/<source>/manifest.parquet`
  records url, sha256, retrieved_at, vintage and status of every file ever seen;
- `clean/<dataset>/<k=v>/.../part-0.parquet` and `indicators/<dataset>/...`: Hive-partitioned,
  zstd Parquet, one file per partition; partition columns live in the path only (a column in
  both the path and the file breaks pyarrow/pandas readers);
- `quarantine/<dataset>/<file>.parquet`: rows that failed validation, with the reason.

Publishing stages every file under `_staging/` (outside any dataset, with a `.tmp` suffix, so
no `**/*.parquet` glob ever sees a half-written file) and then renames each into place; on a
local filesystem a rename is atomic, so a reader sees the old or the new partition, never a mix.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

INT_KEYS = ("year", "month")  # Hive keys read as integers; any other key is text
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}


@dataclass(frozen=True)
class PartitionSpec:
    """How a dataset is laid out: its path under the root and its Hive partition keys."""

    path: str  # e.g. "clean/japan_customs_trade"
    partition_by: tuple[str, ...] = ()
    # zero-padding per key, so `month=07` sorts and reads as the issue's `month=MM`
    widths: tuple[tuple[str, int], ...] = ()

    def partition_path(self, key: Mapping[str, object]) -> str:
        widths = dict(self.widths)
        parts = []
        for name in self.partition_by:
            value = key[name]
            text = f"{int(value):0{widths[name]}d}" if name in widths else str(value)
            parts.append(f"{name}={text}")
        return "/".join([self.path, *parts])


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Warehouse:
    """The warehouse at `root` (path or URL)."""

    def __init__(self, root: str):
        if "://" not in root:
            root = Path(root).expanduser().resolve().as_uri()
        # Options ride in the query (s3://bucket/path?endpoint_override=...&region=...): they reach
        # pyarrow, never the URLs rarewatch prints or records (they may hold credentials).
        location, _, self._options = root.partition("?")
        self.root_url = location.rstrip("/")
        self.fs, self.base = pafs.FileSystem.from_uri(root)
        self.base = self.base.rstrip("/")

    # ---------------------------------------------------------------- paths
    def path(self, *parts: str) -> str:
        """Filesystem path (for self.fs) of a location under the root."""
        return "/".join([self.base, *[p.strip("/") for p in parts if p]])

    def url(self, *parts: str) -> str:
        """URL of a location under the root, for messages and manifests."""
        return "/".join([self.root_url, *[p.strip("/") for p in parts if p]])

    def exists(self, *parts: str) -> bool:
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def list_files(self, *parts: str, suffix: str = "") -> list[str]:
        """Files under a location (recursive), as paths relative to the root, sorted."""
        top = self.path(*parts)
        if self.fs.get_file_info(top).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(top, recursive=True))
        prefix = self.base + "/"
        return sorted(
            i.path[len(prefix):] for i in infos
            if i.type == pafs.FileType.File and i.path.endswith(suffix)
        )

    # ---------------------------------------------------------------- bytes
    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.read()

    def _stage(self, data: bytes) -> str:
        staging = self.path("_staging")
        self.fs.create_dir(staging, recursive=True)
        tmp = f"{staging}/{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        return tmp

    def sweep_staging(self, older_than_s: float = 3600.0) -> int:
        """Remove staged files left by a run that died before publishing (older than an hour:
        with one writer at a time, a younger file may belong to the run under way)."""
        top = self.path("_staging")
        if self.fs.get_file_info(top).type != pafs.FileType.Directory:
            return 0
        cutoff = time.time() - older_than_s
        stale = [i.path for i in self.fs.get_file_info(pafs.FileSelector(top, recursive=True))
                 if i.type == pafs.FileType.File and i.mtime is not None and i.mtime.timestamp() < cutoff]
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

    def _commit(self, tmp: str, final: str) -> None:
        parent = final.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        self.fs.move(tmp, final)  # atomic rename on a local filesystem

    def write_bytes_atomic(self, rel: str, data: bytes) -> str:
        """Write bytes to `rel` under the root: staged, then renamed into place."""
        self._commit(self._stage(data), self.path(rel))
        return self.url(rel)

    # ---------------------------------------------------------------- parquet
    @staticmethod
    def parquet_bytes(frame: pl.DataFrame, metadata: Mapping[str, str] | None = None) -> bytes:
        """Deterministic zstd Parquet: the same frame always gives the same bytes."""
        table = frame.to_arrow()
        if metadata:
            meta = dict(table.schema.metadata or {})
            meta.update({k.encode(): v.encode() for k, v in metadata.items()})
            table = table.replace_schema_metadata(meta)
        buf = io.BytesIO()
        # dictionary pages for text columns only: numbers rarely repeat, and encoding them costs
        # ~40 % of the writing time of a million-row indicator
        text = [f.name for f in table.schema if str(f.type) in ("string", "large_string", "string_view")]
        pq.write_table(table, buf, use_dictionary=text, **PARQUET_OPTIONS)
        return buf.getvalue()

    def parquet_footer(self, rel: str) -> tuple[dict[str, str], int] | None:
        """(key-value metadata, row count) of a Parquet file, from its footer alone; None when absent."""
        if not self.exists(rel):
            return None
        with self.fs.open_input_file(self.path(rel)) as f:
            meta = pq.read_metadata(f)
        kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if not k.startswith(b"ARROW:")}
        return kv, meta.num_rows

    def read_parquet(self, rel: str) -> pl.DataFrame:
        with self.fs.open_input_file(self.path(rel)) as f:
            return pl.from_arrow(pq.read_table(f))  # type: ignore[return-value]

    def publish(self, files: Mapping[str, pl.DataFrame], *, delete: Sequence[str] = (),
                metadata: Mapping[str, str] | None = None) -> list[str]:
        """Publish several Parquet files at once: stage them all, then rename each into place.

        Nothing reaches its final path until every file has been serialised and staged, so an
        error while preparing leaves the datasets as they were. `delete` lists files to remove
        after the new ones are in place (partitions that no longer exist).
        """
        staged: list[tuple[str, str]] = []
        try:
            for rel, df in files.items():
                staged.append((self._stage(self.parquet_bytes(df, metadata)), rel))
        except BaseException:
            for tmp, _ in staged:
                self.fs.delete_file(tmp)
            raise
        for tmp, rel in staged:
            self._commit(tmp, self.path(rel))
        for rel in delete:
            if rel not in files and self.exists(rel):
                self.fs.delete_file(self.path(rel))
        return [self.url(rel) for rel in files]

    # ---------------------------------------------------------------- partitioned datasets
    def read_dataset(self, spec: PartitionSpec, where: Mapping[str, object] | None = None) -> pl.DataFrame | None:
        """All partitions of a dataset (or those matching `where`), partition keys as columns."""
        frames = []
        if where and set(where) == set(spec.partition_by):  # one partition: read its path, list nothing
            rel = spec.partition_path(where) + "/part-0.parquet"
            files = [rel] if self.exists(rel) else []
        else:
            files = self.list_files(spec.path, suffix=".parquet")
        for rel in files:
            keys = _hive_keys(rel[len(spec.path) + 1:])
            if where and any(str(_typed(keys.get(k, ""))) != str(v) for k, v in where.items()):
                continue
            frames.append(self.read_parquet(rel).with_columns(
                pl.lit(value := _typed(keys[k]), dtype=pl.Int64 if isinstance(value, int) else pl.String).alias(k)
                for k in spec.partition_by))
        if not frames:
            return None
        return pl.concat(frames, how="vertical_relaxed")

    def scan_dataset(self, spec: PartitionSpec, columns: Sequence[str] | None = None, *,
                     files: Sequence[str] | None = None) -> pl.LazyFrame | None:
        """A lazy scan of a dataset (Hive partition keys as columns, typed), for projection and
        predicate pushdown: only the columns and row groups asked for are read. Any filesystem
        pyarrow knows (through `pyarrow.dataset`); None when the dataset has no file. `files`:
        its files when the caller has just listed them (`partition_files`)."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        files = self.partition_files(spec) if files is None else files
        if not files:
            return None
        if isinstance(self.fs, pafs.LocalFileSystem):  # polars' own reader: streaming, no Arrow copy
            lf = pl.scan_parquet([self.path(f) for f in files], hive_partitioning=bool(spec.partition_by),
                                 hive_schema={k: pl.Int64 if k in INT_KEYS else pl.String for k in spec.partition_by}
                                 or None)
            return lf.select(list(columns)) if columns is not None else lf
        keys = pa.schema([(k, pa.int64() if k in INT_KEYS else pa.string()) for k in spec.partition_by])
        dataset = ds.dataset([self.path(f) for f in files], filesystem=self.fs, format="parquet",
                             partitioning=ds.partitioning(keys, flavor="hive") if spec.partition_by else None,
                             partition_base_dir=self.path(spec.path))
        lf = pl.scan_pyarrow_dataset(dataset)
        return lf.select(list(columns)) if columns is not None else lf

    def partition_files(self, spec: PartitionSpec) -> list[str]:
        return self.list_files(spec.path, suffix=".parquet")

    def write_partitions(self, spec: PartitionSpec, frame: pl.DataFrame, *, replace_all: bool = False,
                         sort_by: Sequence[str] = (), metadata: Mapping[str, str] | None = None) -> list[str]:
        """Write `frame` as one file per partition (partition columns dropped from the files).

        Partitions present in `frame` are replaced whole; with `replace_all`, partitions absent
        from `frame` are deleted (a dataset recomputed from scratch).
        """
        files: dict[str, pl.DataFrame] = {}
        if spec.partition_by:
            for key, part in frame.partition_by(list(spec.partition_by), as_dict=True, maintain_order=True).items():
                rel = spec.partition_path(dict(zip(spec.partition_by, key))) + "/part-0.parquet"
                body = part.drop(list(spec.partition_by))
                files[rel] = body.sort(list(sort_by)) if sort_by else body
        else:
            files[f"{spec.path}/part-0.parquet"] = frame.sort(list(sort_by)) if sort_by else frame
        delete = [f for f in self.partition_files(spec) if f not in files] if replace_all else []
        return self.publish(files, delete=delete, metadata=metadata)

    # ---------------------------------------------------------------- raw zone
    def put_raw(self, source: str, name: str, data: bytes) -> tuple[str, str]:
        """Keep original bytes, content-addressed; idempotent. Returns (sha256, url)."""
        digest = sha256_bytes(data)
        rel = f"raw/{source}/files/{digest}/{_safe_name(name)}"
        if not self.exists(rel):
            self.write_bytes_atomic(rel, data)
        return digest, self.url(rel)

    def raw_manifest(self, source: str) -> pl.DataFrame | None:
        rel = f"raw/{source}/manifest.parquet"
        return self.read_parquet(rel) if self.exists(rel) else None

    def record_raw(self, source: str, entries: pl.DataFrame, key: Sequence[str] = ("sha256", "url")) -> None:
        """Add entries to a source's raw manifest. An entry already there takes the latest attempt's
        fields but keeps its first `retrieved_at`, so re-running changes nothing."""
        old = self.raw_manifest(source)
        if old is not None:
            first = old.select(*key, pl.col("retrieved_at").alias("_first"))
            entries = entries.join(first, on=list(key), how="left").with_columns(
                pl.coalesce("_first", "retrieved_at").alias("retrieved_at")).drop("_first")
            kept = old.join(entries.select(list(key)), on=list(key), how="anti")
            entries = pl.concat([kept, entries.select(kept.columns) if set(kept.columns) == set(entries.columns)
                                 else entries], how="diagonal_relaxed")
        self.publish({f"raw/{source}/manifest.parquet": entries.sort(list(key))})

    # ---------------------------------------------------------------- quarantine
    def keep_page(self, source: str, name: str, data: bytes) -> str:
        """Keep a page whose shape was not recognised, for inspection: `quarantine/pages/<source>/<name>`."""
        return self.write_bytes_atomic(f"quarantine/pages/{source}/{_safe_name(name)}", data)

    def quarantine(self, dataset: str, name: str, frame: pl.DataFrame) -> str:
        """Keep rejected rows with their reasons; one file per rejected input (idempotent)."""
        rel = f"quarantine/{dataset}/{_safe_name(name)}.parquet"
        self.publish({rel: frame})
        return self.url(rel)


def _safe_name(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")) or "file"
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in base)


def _hive_keys(rel: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in rel.split("/")[:-1] if "=" in p)


def _typed(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def join_root(root: str, *parts: str) -> str:
    """A location under a warehouse root given as a path or URL, keeping the URL's options."""
    location, sep, options = root.partition("?")
    return "/".join([location.rstrip("/"), *[p.strip("/") for p in parts]]) + (sep + options if sep else "")


__all__ = ["PartitionSpec", "Warehouse", "join_root", "sha256_bytes"]
