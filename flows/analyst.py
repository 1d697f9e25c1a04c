"""Plain functions behind the analysts' commands (`rarewatch status | query | sql | ingest`):
they read the warehouse (never write it, but for `ingest`'s copy into the inbox) and start no
Prefect run, so they answer in a second."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl

from flows.errors import RarewatchError
from flows.settings import Settings
from flows.warehouse import PartitionSpec, Warehouse


def known_metals() -> list[str]:
    from flows.catalogue import Catalogue

    return sorted(Catalogue.load().metals)


def check_metal(metal: str) -> str:
    metals = known_metals()
    if metal not in metals:
        raise RarewatchError(f"unknown metal {metal!r}; known: {', '.join(metals)}")
    return metal


def where_from(settings: Settings, names: list[str] | None) -> tuple[list[str], list[str]]:
    """(sources read from the inbox, sources fetched from the network) for a refresh."""
    from flows.sources import inbox_files, registry

    inbox, network = [], []
    for name, source in registry().items():
        if names and name not in names:
            continue
        if settings.inbox is not None and inbox_files(source, Path(settings.inbox)):
            inbox.append(name)
        elif settings.inbox is None or names:
            network.append(name)
    return inbox, network


def status(settings: Settings) -> list[dict[str, object]]:
    """Per source: latest period and vintage, clean rows, last retrieval, quarantined rows."""
    from flows.sources import registry

    wh = Warehouse(settings.warehouse)
    out = []
    for name, source in registry().items():
        row: dict[str, object] = {"source": name, "dataset": source.dataset, "rows": 0, "latest": None,
                                  "vintage": None, "last_retrieved": None, "quarantined_rows": 0}
        files = wh.partition_files(source.spec)
        if files:
            scan = wh.scan_dataset(source.spec, files=files)
            names = scan.collect_schema().names()
            when = [c for c in ("period", "period_start", "year") if c in names][:1]
            got = scan.select(pl.len().alias("rows"), pl.col("vintage").max().alias("vintage"),
                              *[pl.col(c).max().alias("latest") for c in when]).collect().row(0, named=True)
            row.update(got)
            if isinstance(row["latest"], dt.date):
                row["latest"] = row["latest"].strftime("%Y-%m")
        manifest = wh.raw_manifest(name)
        if manifest is not None and manifest.height:
            row["last_retrieved"] = manifest["retrieved_at"].max()
        q = wh.list_files("quarantine", source.dataset, suffix=".parquet")
        row["quarantined_rows"] = sum(footer[1] for f in q if (footer := wh.parquet_footer(f)) is not None)
        out.append(row)
    return out


def alerts(settings: Settings, limit: int = 10) -> pl.DataFrame | None:
    frame = Warehouse(settings.warehouse).read_dataset(PartitionSpec("indicators/alerts"))
    return None if frame is None else frame.sort("period_end", descending=True).head(limit)


def query(settings: Settings, metal: str, *, freq: str = "12M", basis: str = "quantity",
          source: str = "japan_customs", periods: int = 12) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(China share, HHI and top supplier for the latest `periods`, the top partners of the latest period)."""
    from flows.indicators import IMPORT_DEPENDENCY, PARTNER_SHARES

    check_metal(metal)
    wh = Warehouse(settings.warehouse)
    where = {"source": source}
    dep = wh.read_dataset(IMPORT_DEPENDENCY, where)
    if dep is None or dep.is_empty():
        raise RarewatchError(f"no import_dependency for source {source} in {wh.root_url}: run `rarewatch refresh` first")
    rows = dep.filter((pl.col("metal") == metal) & (pl.col("freq") == freq) & (pl.col("basis") == basis))
    if rows.is_empty():
        raise RarewatchError(f"no {freq} {basis} figures for {metal} from {source} in {wh.root_url}")
    table = rows.sort("period_end").tail(periods).select(
        pl.col("period_start").dt.strftime("%Y-%m").alias("from"), pl.col("period_end").dt.strftime("%Y-%m").alias("to"),
        (100 * pl.col("china_share")).round(1).alias("China %"), pl.col("hhi").round(0).alias("HHI"),
        pl.col("partners"), pl.col("top_partner_name").alias("top supplier"),
        (100 * pl.col("top_partner_share")).round(1).alias("top %"), pl.col("total").alias(f"total ({rows['unit'][0]})"))
    last = rows["period_end"].max()
    shares = wh.read_dataset(PARTNER_SHARES, where)
    partners = pl.DataFrame()
    if shares is not None:
        partners = shares.filter((pl.col("metal") == metal) & (pl.col("freq") == freq) & (pl.col("basis") == basis)
                                 & (pl.col("period_end") == last)).sort("rank").head(10).select(
            "rank", pl.col("partner_name").alias("partner"), pl.col("partner_iso3").alias("ISO3"),
            (100 * pl.col("share")).round(1).alias("share %"), "amount")
    return table, partners


def coverage(settings: Settings, metal: str) -> dict | None:
    """The latest month of `reserve_coverage` for a metal (public figures only)."""
    frame = Warehouse(settings.warehouse).read_dataset(PartitionSpec("indicators/reserve_coverage"))
    if frame is None:
        return None
    rows = frame.filter(pl.col("metal") == metal).sort("period_end")
    return rows.row(-1, named=True) if rows.height else None


def sql(settings: Settings, text: str) -> pl.DataFrame:
    """A query over the warehouse's DuckDB catalogue (its views, paths relative to the warehouse)."""
    import duckdb

    wh = Warehouse(settings.warehouse)
    if not wh.root_url.startswith("file://"):
        raise RarewatchError("`rarewatch sql` reads a local warehouse; for an object store, query it with DuckDB's httpfs")
    root = Path(wh.root_url.removeprefix("file://"))
    catalogue = root / "rarewatch.duckdb"
    if not catalogue.exists():
        raise RarewatchError(f"no DuckDB catalogue at {catalogue}: run `rarewatch refresh` first")
    con = duckdb.connect(str(catalogue), read_only=True)
    try:
        con.execute(f"SET file_search_path = '{root}'")
        try:
            return con.sql(text).pl()
        except duckdb.Error as e:
            raise RarewatchError(f"DuckDB: {' '.join(str(e).split())}") from None
    finally:
        con.close()


def ingest_plan(files: list[Path]) -> dict[str, list[Path]]:
    """Which source each file belongs to, by its content (as the inbox root does)."""
    from flows.sources import registry

    sources = registry()
    plan: dict[str, list[Path]] = {}
    for f in files:
        if not f.is_file():
            raise RarewatchError(f"{f}: not a file")
        with f.open("rb") as fh:
            head = fh.read(8192)
        takers = [s for s in sources.values() if s.recognises(head, f.name)]
        if not takers:
            raise RarewatchError(f"{f} is not recognised as any source's release (looked for a Japan Customs 品別国別表 "
                                 "header, a China Customs release title, a Comtrade answer, a METI workbook)")
        folder = takers[0].folder
        plan.setdefault(folder, []).append(f)
    return plan


def copy_into_inbox(inbox: Path, plan: dict[str, list[Path]]) -> list[Path]:
    out = []
    for folder, files in plan.items():
        target = inbox / folder
        target.mkdir(parents=True, exist_ok=True)
        for f in files:
            dest = target / f.name
            if not dest.exists() or dest.read_bytes() != f.read_bytes():
                shutil.copyfile(f, dest)
            out.append(dest)
    return out
