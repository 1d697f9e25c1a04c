"""The pipeline as plain functions: find -> fetch -> keep raw -> parse -> validate -> publish -> indicators.

Flows (flows/monthly.py) and the CLI call these; nothing here needs Prefect, so everything is
testable and importable on its own. Every function takes the Settings it needs as an argument.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import functools
import itertools
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandera.errors
import pandera.polars as pa
import polars as pl
import requests

from flows.catalogue import Catalogue
from flows.errors import (FetchError, LimitExceeded, RarewatchError, ReleaseFileError, SourceFailed,
                          ValidationFailed)
from flows.httpclient import session
from flows.indicators import IMPORT_DEPENDENCY, PARTNER_SHARES, dependency

from flows.periods import Month, MonthSpan, Period, covers, month_range
from flows.progress import step
from flows.settings import Settings
from flows.sources.meti.parse import metal_monthly
from flows.sources import FAILURE_SCHEMA, Parsed, ReleaseFile, Source, inbox_files, no_failures, skipped_file
from flows.warehouse import PartitionSpec, Warehouse, sha256_bytes
from schemas.indicators import ImportDependency, PartnerShares
from schemas.raw import RawManifest


@dataclass
class Fetched:
    """A release file to land. Its bytes travel only as far as they must: an inbox file is read when
    it is landed (`data` None, a `file:` URL), a downloaded file may already sit in the raw zone
    (`raw`, kept by the fetch so a backfill holds no bytes between fetching and landing)."""

    ref: ReleaseFile
    data: bytes | None = None
    raw: str | None = None  # URL of the bytes in the raw zone

    def load(self, wh: Warehouse, max_inbox_bytes: int | None = None) -> bytes:
        if self.data is not None:
            return self.data
        if self.raw is not None:
            return read_raw(wh, self.raw)
        return read_inbox_file(self.ref, max_inbox_bytes)


def read_inbox_file(ref: ReleaseFile, max_bytes: int | None = None) -> bytes:
    """The bytes of an inbox file (`file:` URL); every read of the inbox goes through here.

    Never through a symbolic link (opened with O_NOFOLLOW: a link placed after the listing is
    refused too), and never more than `max_bytes` (setting `max_inbox_file_mb`)."""
    path = Path(unquote(urlparse(ref.url).path))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        why = "it is a symbolic link (inbox files must be real files inside the inbox)" if path.is_symlink() \
            else e.strerror
        raise FetchError(ref.source, str(path), f"cannot read inbox file: {why}") from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is not None and size > max_bytes:
            raise LimitExceeded(ref.source, str(path), f"inbox file of {size:,} bytes is larger than "
                                f"max_inbox_file_mb={max_bytes / 2**20:.3g}", setting="RAREWATCH_MAX_INBOX_FILE_MB")
        data = f.read(max_bytes + 1 if max_bytes is not None else -1)
    if max_bytes is not None and len(data) > max_bytes:  # grew while read
        raise LimitExceeded(ref.source, str(path), f"inbox file grew past max_inbox_file_mb={max_bytes / 2**20:.3g} "
                            "while read", setting="RAREWATCH_MAX_INBOX_FILE_MB")
    return data


@dataclass
class LandReport:
    """What one source's ingestion did."""

    source: str
    files: list[dict] = field(default_factory=list)  # per file: name, sha256, vintage, release, rows, ...
    rows_written: int = 0
    rows_rejected: int = 0
    months: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # "name: reason" of files recognised and not read
    rows_by_month: dict[str, int] = field(default_factory=dict)  # clean rows landed per YYYY-MM (YYYY: annual)


# ----------------------------------------------------------------------------- find and fetch
def find_releases(settings: Settings, source: Source, period: Period | None,
                  http: requests.Session | None = None) -> list[ReleaseFile]:
    """Files to ingest: the inbox's when it holds any for this source, else the live release of `period`."""
    if settings.inbox is not None:
        files = inbox_files(source, Path(settings.inbox))
        if files:
            return files
    if period is None:
        raise FetchError(source.name, "-", "no period given and no files in the inbox "
                                           f"({settings.inbox or 'RAREWATCH_INBOX not set'})")
    return source.discover(settings, http or session(settings, source.name), period)


def fetch_release(settings: Settings, source: Source, ref: ReleaseFile,
                  http: requests.Session | None = None, *, keep_raw: bool = False) -> Fetched:
    """A release file ready to land: an inbox file as a reference (read when landed), a live one
    downloaded; with `keep_raw`, its bytes go to the raw zone at once and are not held."""
    if ref.url.startswith("file:"):
        return Fetched(ref)
    data = source.fetch(settings, http or session(settings, source.name), ref)
    if keep_raw:
        return Fetched(ref, raw=Warehouse(settings.warehouse).put_raw(source.name, ref.name, data)[1])
    return Fetched(ref, data)


# ----------------------------------------------------------------------------- land
@dataclass
class ReadFile:
    """One release file after reading: kept raw, parsed (or refused, skipped, unchanged)."""

    ref: ReleaseFile
    status: str  # "parsed", "failed", "skipped" (recognised, not read), "unchanged", "outside" (not the period)
    sha256: str = ""
    raw_url: str = ""
    size: int = 0
    parsed: Parsed | None = None
    error: Exception | None = None
    entry: dict | None = None  # its raw-manifest entry
    months_text: str | None = None  # months of an unchanged file, as its manifest entry gives them

    @property
    def years(self) -> set[int]:
        return {m.year for m in self.months}

    @property
    def months(self) -> list[Month]:
        """Months the file carries (of an unchanged file: from the raw manifest, when recorded)."""
        if self.parsed is not None:
            return list(self.parsed.months)
        if self.months_text:
            first, _, last = self.months_text.partition("..")
            return month_range(Month.parse(first), Month.parse(last or first))
        return []


def iter_read_files(settings: Settings, source: Source, fetched: Iterable[Fetched], catalogue: Catalogue,
                    period: Period | MonthSpan | None = None, *,
                    unchanged: Mapping[tuple[str, str], str | None] | None = None,
                    parallel: int = 1) -> Iterator[ReadFile]:
    """Read each file once: keep its bytes in the raw zone, parse it, quarantine a malformed one.

    Streaming: a file's bytes are dropped once it is parsed (only its clean rows are kept), and at
    most `parallel` files are in memory at once. A file whose (sha256, url) is in `unchanged` is
    not parsed. With `period`, a file not carrying that period is left out.
    """
    wh = Warehouse(settings.warehouse)
    retrieved_at = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    seen = first_seen(wh, source.name) if source.vintage_fallback == "first_seen" else {}
    limits = settings.limits(source.name)
    max_inbox = int(limits["max_inbox_file_mb"] * 2**20)

    def one(f: Fetched) -> ReadFile:
        data = f.load(wh, max_inbox)
        sha = sha256_bytes(data)
        if unchanged is not None and (sha, f.ref.url) in unchanged:
            return ReadFile(f.ref, "unchanged", sha, size=len(data), months_text=unchanged[(sha, f.ref.url)])
        sha, raw_url = wh.put_raw(source.name, f.ref.name, data)
        ref = f.ref
        if ref.published is None and source.vintage_fallback == "first_seen":
            # No publication date: the day these bytes were first seen, stable across re-runs.
            ref = replace(ref, published=seen.get(sha, retrieved_at.date()))
        entry = {"source": source.name, "file": ref.name, "url": ref.url, "sha256": sha, "size": len(data),
                 "raw_path": raw_url, "retrieved_at": retrieved_at, "vintage": None, "release": None,
                 "status": "rejected", "rows": None, "note": None, "months": None}
        out = ReadFile(ref, "failed", sha, raw_url, len(data), entry=entry)
        try:
            parsed = source.parse(ref, data, sha, catalogue)
            check_limits(source, ref, parsed, limits)
        except ReleaseFileError as e:
            if e.file == ref.name and not ref.url.startswith("file:"):
                e = ReleaseFileError(e.source, shown_name(ref), e.problem, row=e.row, column=e.column)
            out.error = e
            return out
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeError, pl.exceptions.PolarsError) as e:
            # a shape the parser did not foresee: the file is refused with its name, never a bare traceback
            out.error = ReleaseFileError(source.name, shown_name(ref), f"could not be read ({type(e).__name__}: "
                                         f"{str(e)[:300]}); the bytes are kept in {raw_url}")
            return out
        out.parsed = parsed
        if parsed.skip is not None:  # recognised, deliberately not read: noted, never a failure
            entry.update(status="skipped", rows=0, note=parsed.skip)
            out.status = "skipped"
            return out
        entry.update(vintage=parsed.vintage, release=parsed.release_text, rows=parsed.frame.height,
                     note=", ".join(f"{k}={v}" for k, v in sorted(parsed.skipped.items()) if v) or None,
                     months=f"{min(parsed.months)}..{max(parsed.months)}" if parsed.months else None)
        if period is not None and parsed.failures.is_empty() and parsed.months and not covers(period, parsed.months):
            out.status, out.entry, out.parsed = "outside", None, None
            return out
        if not parsed.failures.is_empty():
            out.error = _refuse(wh, source, ref, sha, data, parsed.failures)
            return out
        if parsed.rejected is not None and parsed.rejected.height:
            wh.quarantine(source.dataset, f"{sha[:12]}_{ref.name}_rejected",
                          _quarantine_frame(source, ref, sha, data, parsed.rejected))
        out.status = "parsed"
        return out

    todo = list(fetched)
    for i, f in enumerate(_bounded_map(one, todo, parallel), start=1):
        step(f"{source.name}: read {f.ref.name}", i, len(todo))
        yield f


def check_limits(source: Source, ref: ReleaseFile, parsed: Parsed, limits: Mapping[str, float]) -> None:
    """A parsed file within the limits of settings, else ReleaseFileError naming line and column:
    no text cell longer than `max_cell_chars`, no more than `max_summary_rows` rows that are not
    codes (a file of junk lines is a layout error, not a file of summary rows)."""
    summary = parsed.skipped.get("summary_rows", 0)
    if summary > limits["max_summary_rows"]:
        raise ReleaseFileError(source.name, ref.name, f"{summary:,} rows are neither codes nor known summary rows "
                               f"(more than max_summary_rows={limits['max_summary_rows']:g}): not a release in the "
                               "layout rarewatch reads (setting RAREWATCH_MAX_SUMMARY_ROWS)")
    frame, cap = parsed.frame, int(limits["max_cell_chars"])
    text = [c for c, t in frame.schema.items() if t == pl.String]
    if not text or frame.is_empty():
        return
    longest = frame.select(pl.max_horizontal(pl.col(c).str.len_chars().max() for c in text)).item()
    if longest is None or longest <= cap:
        return
    for c in text:
        over = frame.with_row_index("_i").filter(pl.col(c).str.len_chars() > cap)
        if over.height:
            first = over.row(0, named=True)
            line = first.get("line")
            raise ReleaseFileError(source.name, ref.name, f"a cell of {len(first[c]):,} characters, longer than "
                                   f"max_cell_chars={cap} (setting RAREWATCH_MAX_CELL_CHARS)",
                                   row=int(line) if line is not None else None, column=c)


def _bounded_map(fn, items: list, parallel: int):  # noqa: ANN001, ANN202
    """fn over items in order, `parallel` at a time, reading ahead no more than that: results are
    handed on as they come, so memory holds a few files, not all of them."""
    if parallel <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="read") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= parallel:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def publish_files(settings: Settings, source: Source, files: list[ReadFile]) -> LandReport:
    """Check a batch of read files together and publish them: all or nothing.

    The batch's own checks (`source.check_rows`) and the clean model run once over every file's
    rows; a failure names file, line and column and keeps the rows in quarantine. If any file of
    the batch is refused, every problem is raised together in a SourceFailed and no clean
    partition is touched.
    """
    wh = Warehouse(settings.warehouse)
    with wh.transaction(f"land {source.name}"):  # a savepoint within a run
        return _publish_files(wh, source, files)


def _skip_twins(wh: Warehouse, source: Source, files: list[ReadFile]) -> None:
    """A file with rows whose bytes are already landed under another name (renamed, or dropped
    twice) is skipped with a note naming the first: landing it again would only duplicate rows."""
    manifest = wh.raw_manifest(source.name)
    landed: dict[str, str] = {}
    if manifest is not None:
        for sha, url, name in manifest.filter(pl.col("status") == "published").select("sha256", "url", "file").iter_rows():
            landed.setdefault(sha, f"{name} ({url})")
    known = set(manifest.select("sha256", "url").iter_rows()) if manifest is not None else set()
    seen: dict[str, str] = {}
    for f in files:
        if f.status != "parsed" or not f.parsed.frame.height:  # type: ignore[union-attr]
            continue  # two empty answers (Comtrade: nothing reported for two queries) are no twins
        twin = seen.get(f.sha256) or (landed.get(f.sha256) if (f.sha256, f.ref.url) not in known else None)
        if twin is None:
            seen[f.sha256] = f.ref.name
            continue
        reason = f"same bytes as {twin}, already landed"
        f.status, f.parsed = "skipped", skipped_file(reason)
        if f.entry is not None:
            f.entry.update(status="skipped", rows=0, note=reason)


def _publish_files(wh: Warehouse, source: Source, files: list[ReadFile]) -> LandReport:
    report = LandReport(source.name)
    _skip_twins(wh, source, files)
    errors = [f.error for f in files if f.error is not None]
    good = [f for f in files if f.status == "parsed"]
    row_failures = source.check_rows([f.parsed for f in good])  # type: ignore[misc]
    with_rows = [f for f in good if f.parsed.frame.height]  # type: ignore[union-attr]
    model_fail = dict(zip(map(id, with_rows), batch_model_failures(source.model, [f.parsed.frame for f in with_rows])))  # type: ignore[union-attr]
    for f, rows in zip(good, row_failures):
        # the file's own row checks first: the clean model's failures would only repeat them
        failures = rows if rows.height else model_fail.get(id(f), no_failures())
        if failures.height:
            f.status = "failed"
            f.error = _refuse(wh, source, f.ref, f.sha256, read_raw(wh, f.raw_url), failures.sort("line", "column"))
            errors.append(f.error)
    for f in files:
        if f.status == "failed":
            report.rows_rejected += f.error.rows if isinstance(f.error, ValidationFailed) else 0
        if f.status == "skipped":
            report.files.append({"file": f.ref.name, "sha256": f.sha256, "status": f"skipped: {f.parsed.skip}"})  # type: ignore[union-attr]
            report.skipped_files.append(f"{f.ref.name}: {f.parsed.skip}")  # type: ignore[union-attr]
        elif f.status == "outside":
            report.files.append({"file": f.ref.name, "sha256": f.sha256, "status": "skipped: does not carry the period"})
        elif f.status == "unchanged":
            report.files.append({"file": f.ref.name, "sha256": f.sha256, "status": "unchanged"})
        elif f.status == "parsed":
            p = f.parsed
            if p.rejected is not None and p.rejected.height:  # type: ignore[union-attr]
                report.rows_rejected += p.rejected["line"].n_unique()  # type: ignore[union-attr]
            report.files.append({"file": f.ref.name, "sha256": f.sha256, "vintage": str(p.vintage),  # type: ignore[union-attr]
                                 "release": p.release_text, "rows": p.frame.height,  # type: ignore[union-attr]
                                 "months": f"{p.months[0]}..{p.months[-1]}" if p.months else "",  # type: ignore[union-attr]
                                 **{f"skipped_{k}": v for k, v in p.skipped.items()}, "status": "ok"})  # type: ignore[union-attr]
    entries = [f.entry for f in files if f.entry is not None]
    if errors:
        refused = [f.entry for f in files if f.status == "failed" and f.entry is not None]
        tx = wh.current_transaction()
        assert tx is not None
        # the refusal is recorded once what this batch staged is undone (the manifest says "rejected")
        tx.after_rollback(lambda: _record_manifest(wh, source, refused))
        raise SourceFailed(source.name, errors)

    frames = [f.parsed.frame for f in good if f.parsed.frame.height]  # type: ignore[union-attr]
    if frames:
        incoming = pl.concat(frames, how="vertical_relaxed")
        if source.overlapping_requests:
            # One record can answer two requests (China's exports to Japan are in "China's exports"
            # and in "exports to Japan"): identical but for provenance, it is one record.
            incoming = incoming.unique(subset=[c for c in incoming.columns if c not in ("source_file", "line")],
                                       keep="first", maintain_order=True)
    for e in entries:
        if e["status"] == "rejected":  # every file of the batch is sound: it is published now
            e["status"] = "published"
    # clean partitions and manifest together (within a run: part of the run's transaction)
    if frames:
        report.partitions = publish_clean(wh, source, incoming)
        report.rows_written = incoming.height
        report.rows_by_month = rows_by_month(incoming)
    _record_manifest(wh, source, entries)
    report.months = sorted({str(m) for f in good for m in f.parsed.months})  # type: ignore[union-attr]
    return report


def rows_by_month(frame: pl.DataFrame) -> dict[str, int]:
    """Rows per month (`YYYY-MM`; `YYYY` for annual records) of a clean frame."""
    month = next((c for c in ("month", "ref_month") if c in frame.columns), None)
    if "year" not in frame.columns or month is None:
        return {}
    counts = frame.group_by("year", month).len()
    return {(f"{y:04d}-{m:02d}" if m else f"{y:04d}"): n for y, m, n in counts.iter_rows()}


def land(settings: Settings, source: Source, fetched: Iterable[Fetched], catalogue: Catalogue,
         period: Period | None = None) -> LandReport:
    """Keep raw bytes, parse, validate and publish a batch of release files of one source.

    All or nothing: if any file is malformed, its failure cases go to quarantine, every problem
    is raised together in a SourceFailed, and no clean partition is touched. With `period`,
    only files carrying that month are landed (inbox files hold whole years).
    """
    return publish_files(settings, source, list(iter_read_files(settings, source, fetched, catalogue, period)))


def release_groups(files: list[ReadFile]) -> list[list[ReadFile]]:
    """Files that must land together: those sharing a year of data (a release's ~22 chapter files
    and its export and import halves), in order of their first year. A file with no months
    (refused, skipped, unchanged) is a group of its own."""
    groups: list[tuple[set[int], list[ReadFile]]] = []
    alone: list[list[ReadFile]] = []
    for f in files:
        years = f.years if f.status == "parsed" else set()
        if not years:
            alone.append([f])
            continue
        joined = [g for g in groups if g[0] & years]
        merged = (set(years), [f])
        for g in joined:
            merged[0].update(g[0])
            merged[1][:0] = g[1]
            groups.remove(g)
        groups.append(merged)
    return [g for _, g in sorted(groups, key=lambda g: min(g[0]))] + alone


def published_files(wh: Warehouse, source: str) -> dict[tuple[str, str], str | None]:
    """(sha256, url) of every file already published (or deliberately skipped) for a source, with
    the months it carries (`YYYY-MM..YYYY-MM`, when recorded) (raw manifest)."""
    manifest = wh.raw_manifest(source)
    if manifest is None:
        return {}
    if "months" not in manifest.columns:
        manifest = manifest.with_columns(pl.lit(None, dtype=pl.String).alias("months"))
    # a file skipped on purpose (another source's table) would be skipped again: done as well
    done = manifest.filter(pl.col("status").is_in(["published", "skipped"]))
    return {(sha, url): months for sha, url, months in done.select("sha256", "url", "months").iter_rows()}


def first_seen(wh: Warehouse, source: str) -> dict[str, dt.date]:
    """sha256 -> the day rarewatch first recorded those bytes (raw manifest)."""
    manifest = wh.raw_manifest(source)
    if manifest is None:
        return {}
    first = manifest.group_by("sha256").agg(pl.col("retrieved_at").min().dt.date())
    return dict(first.iter_rows())


def publish_clean(wh: Warehouse, source: Source, incoming: pl.DataFrame) -> list[str]:
    """Merge incoming rows into the partitions they touch and publish those partitions at once.

    Stored rows sharing `source.replace_key` values with incoming rows are replaced; rows of
    other vintages and other files stay, so every vintage is kept. The merged partition is
    checked against the model (unique keys across files and vintages) before anything is written.
    """
    spec = source.spec
    keys = incoming.select(spec.partition_by).unique().sort(spec.partition_by)
    replaced = incoming.select(source.replace_key).unique()
    merged = []
    for key in keys.iter_rows(named=True):
        new = incoming.filter(pl.all_horizontal([pl.col(k) == v for k, v in key.items()]))
        old = wh.read_dataset(spec, where=key)
        if old is not None:
            old = old.select(new.columns).cast(new.schema)  # type: ignore[arg-type]
            old = old.join(replaced, on=list(source.replace_key), how="anti")
            new = pl.concat([old, new], how="vertical_relaxed")
        merged.append(new)
    frame = pl.concat(merged, how="vertical_relaxed")
    # Incoming rows were checked against the model and stored rows when they were published:
    # what merging can still break is the key across files and vintages.
    unique = list(source.model.to_schema().unique or [])  # type: ignore[union-attr]
    if unique:
        dup = frame.filter(pl.struct(unique).is_duplicated())
        if dup.height:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in r.items())
                              for r in dup.select(unique).unique(maintain_order=True).head(5).iter_rows(named=True))
            raise SourceFailed(source.name, [RarewatchError(
                f"merging into {spec.path} would break {source.model.__name__}: {dup.height} rows share the key "
                f"({', '.join(unique)}), e.g. {shown} (files {sorted(dup['source_file'].unique().to_list())[:5]})")])
    sort_by = [c for c in source.model.to_schema().unique or [] if c not in spec.partition_by]  # type: ignore[union-attr]
    return wh.write_partitions(spec, frame, sort_by=sort_by)


def batch_model_failures(model: type[pa.DataFrameModel], frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """`model_failures` of several frames in one pandera call (its cost is mostly per call);
    failures per frame, in order. Keys are checked unique within each file here; across files
    (after records answering two requests are merged) when publishing (`publish_clean`)."""
    if not frames:
        return []
    batch = pl.concat(frames, how="vertical_relaxed")
    failures = model_failures(_per_file_schema(model), batch, index=True)
    out = [no_failures() for _ in frames]
    if failures.is_empty():
        return out
    ends = list(itertools.accumulate(f.height for f in frames))
    which = failures["index"].map_elements(lambda i: bisect.bisect_right(ends, i) if i is not None else 0,
                                           return_dtype=pl.Int64)
    failures = failures.with_columns(which.alias("_frame"))
    for k, part in failures.partition_by("_frame", as_dict=True).items():
        out[min(int(k[0]), len(frames) - 1)] = part.drop("_frame", "index")
    return out


@functools.cache
def _per_file_schema(model: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    """The model's schema with its unique key taken within each source file."""
    schema = model.to_schema()
    if schema.unique and "source_file" in schema.columns:
        schema = copy.deepcopy(schema)
        schema.unique = [*schema.unique, "source_file"]
    return schema


def model_failures(model: type[pa.DataFrameModel] | pa.DataFrameSchema, frame: pl.DataFrame, *,
                   index: bool = False) -> pl.DataFrame:
    """Check a frame against a pandera model; failures as (line, column, check, value) (and the
    frame's row `index` when asked)."""
    try:
        model.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as e:
        fc = e.failure_cases
        lines = frame["line"] if "line" in frame.columns else None
        rows = []
        for r in fc.iter_rows(named=True):
            idx = r["index"]
            line = int(lines[idx]) if lines is not None and idx is not None and idx < len(lines) else None
            rows.append({"line": line, "column": r["column"], "check": str(r["check"]),
                         "value": str(r["failure_case"])[:200], **({"index": idx} if index else {})})
        return pl.DataFrame(rows, schema=_failure_schema(index))
    return pl.DataFrame(schema=_failure_schema(index))


def _failure_schema(index: bool) -> dict[str, pl.DataType]:
    return {**FAILURE_SCHEMA, **({"index": pl.Int64} if index else {})}  # type: ignore[dict-item]


def ensure_valid(model: type[pa.DataFrameModel], frame: pl.DataFrame, what: str, *, show_values: bool = True) -> None:
    """Raise RarewatchError naming the failed checks (and values, unless confidential)."""
    failures = model_failures(model, frame)
    if failures.is_empty():
        return
    rows = failures.head(10).iter_rows(named=True)
    detail = "; ".join(_failure_message(r) if show_values else f"column {r['column']!r}: {r['check']}" for r in rows)
    raise RarewatchError(f"{what} failed its checks: {detail}")


def _failure_message(r: dict) -> str:
    where = f"line {r['line']}, " if r["line"] is not None else ""
    return f"{where}column {r['column']!r}: {r['check']} failed (value {r['value']!r})"


def _refuse(wh: Warehouse, source: Source, ref: ReleaseFile, sha: str, data: bytes,
            failures: pl.DataFrame) -> ValidationFailed:
    """Keep a malformed file's failures and row texts in quarantine; the error naming them."""
    where = wh.quarantine(source.dataset, f"{sha[:12]}_{ref.name}", _quarantine_frame(source, ref, sha, data, failures))
    messages = [_failure_message(r) for r in failures.iter_rows(named=True)]
    error = ValidationFailed(source.name, shown_name(ref), source.dataset, messages, where, failures.height)
    error.rows = failures["line"].n_unique()  # rows refused (a row may fail several checks)
    return error


def shown_name(ref: ReleaseFile) -> str:
    """A file as messages name it: an inbox file by its name, a downloaded one with its URL."""
    return ref.name if ref.url.startswith("file:") else f"{ref.name} (from {ref.url})"


def read_raw(wh: Warehouse, raw_url: str) -> bytes:
    """Bytes kept in the raw zone (by their URL under the root)."""
    return wh.read_bytes(raw_url[len(wh.root_url) + 1:])


def _quarantine_frame(source: Source, ref: ReleaseFile, sha: str, data: bytes, failures: pl.DataFrame) -> pl.DataFrame:
    """Failure cases plus the rejected rows' original text, so nothing is lost."""
    # line numbers of JSON answers count records, not text lines: no line text to show there
    is_text = not data.startswith(b"\x00") and data.lstrip()[:1] not in (b"{", b"[")
    text = data.decode("utf-8-sig", errors="replace") if is_text else ""
    lines = text.splitlines()
    return failures.with_columns(
        pl.lit(source.name).alias("source"),
        pl.lit(ref.name).alias("file"),
        pl.lit(ref.url).alias("url"),
        pl.lit(sha).alias("sha256"),
        pl.col("line").map_elements(lambda n: lines[n - 1] if 0 < n <= len(lines) else None,
                                    return_dtype=pl.String).alias("row_text"),
        pl.format("column {}: {} failed (value {})", "column", "check", "value").alias("reason"),
    )


def _record_manifest(wh: Warehouse, source: Source, entries: list[dict]) -> None:
    if not entries:
        return
    frame = pl.DataFrame(entries).select(list(RawManifest.to_schema().columns)).with_columns(
        pl.col("retrieved_at").cast(pl.Datetime("us")), pl.col("vintage").cast(pl.Date),
        pl.col("release").cast(pl.String), pl.col("size").cast(pl.Int64), pl.col("rows").cast(pl.Int64),
        pl.col("note").cast(pl.String), pl.col("months").cast(pl.String),
    )
    RawManifest.validate(frame)
    wh.record_raw(source.name, frame)


# ----------------------------------------------------------------------------- indicators
_INPUT_CACHE: dict[tuple[str, str], tuple[tuple, pl.DataFrame]] = {}


def indicator_input(wh: Warehouse, source: Source, catalogue: Catalogue) -> pl.DataFrame | None:
    """What a source's indicators read (`Source.indicator_frame`), from one lazy scan of its clean
    dataset (`indicator_columns` projected). Computed once per run: the indicators, mirror gaps and
    reserves of a run share it while the dataset's files are unchanged (same paths, sizes and
    modification times)."""
    files = wh.partition_files(source.spec)
    if not files:
        return None
    signature = wh.file_signature(files)
    key = (wh.root_url, source.spec.path)
    hit = _INPUT_CACHE.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    scan = wh.scan_dataset(source.spec, source.indicator_columns, files=files)
    frame = source.indicator_frame(scan, catalogue) if scan is not None else None
    for k in [k for k in _INPUT_CACHE if k[0] != wh.root_url]:  # other warehouses: not needed again
        del _INPUT_CACHE[k]
    if frame is not None:
        _INPUT_CACHE[key] = (signature, frame)
    return frame


def available_months(clean: pl.DataFrame) -> list[Month]:
    return [Month(y, m) for y, m in clean.select("year", "month").unique().sort("year", "month").iter_rows()]


def compute_indicators(settings: Settings, source: Source, catalogue: Catalogue, *, full: bool = False) -> dict[str, int]:
    """Recompute a source's indicators from its clean dataset (newest vintage of each period):
    partner shares and import dependency where the source has partners (`trade`), and the
    source's own derived datasets (`derive`).

    Partner shares and import dependency are updated, not recomputed, when their files say which
    month fingerprints they were computed from (`dependency.month_state`): only the windows
    holding a changed month are recomputed and merged in, and nothing is written when no month
    changed. The update equals a full recompute (tests/test_indicators_incremental.py); `full`
    recomputes every window anyway.
    """
    wh = Warehouse(settings.warehouse)
    latest = indicator_input(wh, source, catalogue)
    if latest is None or latest.is_empty():
        return {}
    outputs: list[tuple[PartitionSpec, type[pa.DataFrameModel], pl.DataFrame, list[str], dict[str, str]]] = []
    counts: dict[str, int] = {}
    trade = source.trade(latest, catalogue)
    if trade is not None:
        given = source.windows(latest)  # a source's own periods (Comtrade): recomputed whole, no state
        months = available_months(latest) if given is None else []
        periods = given if given is not None else dependency.windows(months)
        state = dependency.month_state(months, trade) if given is None else {}
        meta = dependency.state_metadata(state) if given is None else {}
        rels = {spec: spec.partition_path({"source": source.name}) + "/part-0.parquet"
                for spec in (PARTNER_SHARES, IMPORT_DEPENDENCY)}
        footers = {spec: wh.parquet_footer(rel) for spec, rel in rels.items()}
        priors = [dependency.stored_state(f[0]) if f else None for f in footers.values()]
        changed = (dependency.changed_months(priors[0], state)
                   if not full and given is None and priors[0] is not None and priors[0] == priors[1] else None)
        if changed is not None and not changed:  # the stored indicators are those of this clean data
            counts.update({spec.path.rsplit("/", 1)[-1]: f[1] for spec, f in footers.items() if f})
        else:
            update = changed is not None and len(changed) * 2 <= len(state)  # else recomputed whole
            shares, dep = dependency.compute(trade, dependency.touching(periods, changed) if update else periods,
                                             source=source.name, value_unit=source.value_unit or "")
            ensure_valid(PartnerShares, shares, f"PartnerShares for {source.name}")
            ensure_valid(ImportDependency, dep, f"ImportDependency for {source.name}")
            for spec, model, frame, order in (
                    (PARTNER_SHARES, PartnerShares, shares, ["metal", "freq", "basis", "period_start", "rank"]),
                    (IMPORT_DEPENDENCY, ImportDependency, dep, ["metal", "freq", "basis", "period_start"])):
                if update:  # the stored rows with the recomputed windows in place
                    frame = dependency.merge(wh.read_parquet(rels[spec]), frame, changed, order).select(
                        pl.lit(source.name).alias("source"), pl.all()).select(frame.columns)
                # partner_shares comes sorted (metal, freq, basis, period_start, rank): not sorted again
                outputs.append((spec, model, frame, [] if spec is PARTNER_SHARES else order, meta))
    derived = [(spec, model, frame, [], {}) for spec, model, frame in source.derive(latest)]
    scan = wh.scan_dataset(source.spec, source.indicator_columns)
    revisions = source.revisions(scan, catalogue) if scan is not None else None
    if revisions is not None:
        from flows.indicators import REVISIONS
        from schemas.indicators import Revisions

        derived.append((REVISIONS, Revisions, revisions,
                        ["flow", "period_start", "metal", "partner_code", "basis", "new_vintage"], {}))
    for _, model, frame, _, _ in derived:
        if frame.width:
            ensure_valid(model, frame, f"{model.__name__} for {source.name}")
    for spec, _, frame, sort_by, meta in outputs + derived:
        if frame.width == 0:  # nothing to say (e.g. one vintage only): drop this source's old part
            frame = frame.with_columns(pl.lit(source.name).alias("source")).clear()
        write_indicator(wh, spec, frame, source.name, sort_by, meta)
        counts[spec.path.rsplit("/", 1)[-1]] = frame.height
    return counts


def write_indicator(wh: Warehouse, spec: PartitionSpec, frame: pl.DataFrame, source: str,
                    sort_by: list[str], metadata: Mapping[str, str] | None = None) -> None:
    """Replace one source's part of an indicator dataset (its `source=` partition, or the whole
    dataset when it is not partitioned by source)."""
    if "source" not in spec.partition_by:
        wh.write_partitions(spec, frame, sort_by=sort_by or list(frame.columns), replace_all=True, metadata=metadata)
    elif frame.is_empty():
        wh.publish({}, delete=[f for f in wh.partition_files(spec) if f"source={source}/" in f])
    else:  # sort_by empty: the frame is in its order already
        wh.write_partitions(spec, frame, sort_by=sort_by, metadata=metadata)


MIRROR_GAPS = PartitionSpec("indicators/mirror_gaps")


def compute_mirror_gaps(settings: Settings, catalogue: Catalogue) -> int:
    """Recompute indicators/mirror_gaps from the Comtrade and Japan Customs clean datasets."""
    from flows.indicators import mirror
    from flows.sources import registry
    from schemas.indicators import MirrorGaps

    wh = Warehouse(settings.warehouse)
    sources = registry()
    comtrade = indicator_input(wh, sources["comtrade"], catalogue)
    if comtrade is None or comtrade.is_empty():
        return 0
    jc = indicator_input(wh, sources["japan_customs"], catalogue)
    frame = mirror.compute(catalogue, comtrade, jc,
                           available_months(jc) if jc is not None else [])
    if frame.is_empty():
        return 0
    ensure_valid(MirrorGaps, frame, "mirror_gaps")
    wh.write_partitions(MIRROR_GAPS, frame, sort_by=list(frame.columns[:5]) + ["japan_source"], replace_all=True)
    return frame.height


REFERENCE_CONSUMPTION = PartitionSpec("indicators/reference_consumption")
RESERVE_COVERAGE = PartitionSpec("indicators/reserve_coverage")
IMPORT_RELIANCE = PartitionSpec("indicators/import_reliance")
RESTRICTED_COVERAGE = PartitionSpec("reserve_coverage")
RESTRICTED_NOTICE = (b"CONFIDENTIAL - NOT FOR DISTRIBUTION.\nFigures here derive from stock positions "
                     b"(RAREWATCH_STOCK_POSITIONS). Do not copy, publish or attach them to reports.\n")


def compute_reserves(settings: Settings, catalogue: Catalogue) -> dict[str, int]:
    """Reference consumption, reserve coverage and import reliance (flows/indicators/reserves.py).

    Public outputs carry target-implied figures only. With RAREWATCH_STOCK_POSITIONS, figures
    derived from the stock file go to the restricted root and nowhere else; no error message,
    log line or count returned here carries a stock figure.
    """
    from flows.indicators import reserves
    from flows.sources import registry
    from schemas.reserves import ImportReliance, ReferenceConsumption, ReserveCoverage, RestrictedReserveCoverage

    wh = Warehouse(settings.warehouse)
    reg = registry()
    jc = indicator_input(wh, reg["japan_customs"], catalogue)
    if jc is None or jc.is_empty():
        return {}
    meti_latest = indicator_input(wh, reg["meti"], catalogue)
    # items summed to metals only where their metal content is known (flows/reference/meti_items.csv)
    meti = metal_monthly(meti_latest) if meti_latest is not None else None
    months = available_months(jc)
    have = set(months)
    complete = sorted(y for y in {m.year for m in months} if all(Month(y, k) in have for k in range(1, 13)))
    trade_t = reserves.trade_tonnes(jc, catalogue, complete)
    years = sorted({reserves.reference_year(m) for m in months} | set(complete))
    candidates = pl.concat([reserves.meti_consumption(meti), reserves.baseline_consumption(years),
                            reserves.apparent_consumption(trade_t, meti)], how="vertical_relaxed")
    consumption = reserves.select(candidates, reserves.Precedence.parse(settings.consumption_precedence))
    dep = read_indicator(settings, "import_dependency")
    china = (dep.filter((pl.col("source") == "japan_customs") & (pl.col("freq") == "12M")
                        & (pl.col("basis") == "quantity")).select("metal", "period_end", "china_share")
             if dep is not None else pl.DataFrame(schema={"metal": pl.String, "period_end": pl.Date,
                                                         "china_share": pl.Float64}))
    public = reserves.coverage(months, consumption, reserves.stockpile_policy(settings.stockpile_policy), china)
    reliance = reserves.reliance(trade_t, meti, consumption)
    outputs = [(REFERENCE_CONSUMPTION, ReferenceConsumption, consumption),
               (RESERVE_COVERAGE, ReserveCoverage, public), (IMPORT_RELIANCE, ImportReliance, reliance)]
    outputs = [(spec, model, frame) for spec, model, frame in outputs if frame.height]
    for _, model, frame in outputs:
        ensure_valid(model, frame, model.__name__)
    counts = {}
    for spec, _, frame in outputs:
        wh.write_partitions(spec, frame, sort_by=[c for c in ("metal", "year", "period_start", "preference")
                                                  if c in frame.columns], replace_all=True)
        counts[spec.path.rsplit("/", 1)[-1]] = frame.height
    if settings.stock_positions is not None:
        stocks = reserves.read_stock_positions(Path(settings.stock_positions))
        restricted = reserves.restricted_coverage(public, stocks)
        if restricted.height:
            # name the checks, never the values: they derive from confidential stocks
            ensure_valid(RestrictedReserveCoverage, restricted, "restricted reserve coverage", show_values=False)
            vault = Warehouse(settings.restricted_root())
            vault.write_partitions(RESTRICTED_COVERAGE, restricted, sort_by=["metal", "period_start"], replace_all=True)
            vault.write_bytes_atomic("NOT_FOR_DISTRIBUTION.txt", RESTRICTED_NOTICE)
        counts["restricted_reserve_coverage"] = restricted.height
    return counts


def read_indicator(settings: Settings, name: str) -> pl.DataFrame | None:
    spec = {"partner_shares": PARTNER_SHARES, "import_dependency": IMPORT_DEPENDENCY}[name]
    return Warehouse(settings.warehouse).read_dataset(spec)


ALERTS = PartitionSpec("indicators/alerts")


def release_calendar(wh: Warehouse, now: dt.datetime | None = None) -> list[dict]:
    """Per source read from the network: the release its calendar says is out, and the newest
    month landed (raw manifest: months of published files)."""
    from flows.periods import Month, Year
    from flows.sources import registry

    now = now or dt.datetime.now(dt.UTC)
    out = []
    for name, source in registry().items():
        due = source.due(now)
        manifest = wh.raw_manifest(name)
        if due is None or manifest is None or "months" not in manifest.columns:
            continue
        published = manifest.filter((pl.col("status") == "published") & pl.col("months").is_not_null())
        if published.is_empty() or not published["url"].str.starts_with("http").any():
            continue  # never fetched live: an inbox (samples) is not late
        ends = published["months"].str.split("..").list.last().drop_nulls().to_list()
        landed = max(Month.parse(e) for e in ends)
        if isinstance(due, Year):
            due_start, due_end = dt.date(due.year, 1, 1), dt.date(due.year, 12, 31)
        elif isinstance(due, Month):
            due_start, due_end = due.first_day, due.last_day
        else:
            continue
        out.append({"source": name, "due_start": due_start, "due_end": due_end, "landed_end": landed.last_day})
    return out


def compute_alerts(settings: Settings, now: dt.datetime | None = None) -> tuple[int, pl.DataFrame]:
    """Every alert the published indicators raise (flows/indicators/alerts.py), written to
    `indicators/alerts/`; returns (rows, the alerts not in the previous file: the new ones)."""
    from flows.indicators import alerts
    from flows.sources.gacc import MONTHLY
    from schemas.alerts import Alerts

    wh = Warehouse(settings.warehouse)
    scan = wh.scan_dataset(PARTNER_SHARES)  # the largest indicator: only the rows the rule reads
    shares = None if scan is None else scan.filter(
        (pl.col("basis") == "quantity") & (pl.col("freq").is_in(["M", "12M"]))).collect()
    found = alerts.all_alerts(
        exports_monthly=wh.read_dataset(MONTHLY), dependency=wh.read_dataset(IMPORT_DEPENDENCY),
        shares=shares, coverage=wh.read_dataset(RESERVE_COVERAGE),
        drop_pct=settings.alert_china_export_drop_pct, share_points=settings.alert_china_share_points,
        rise_pct=settings.alert_target_stock_rise_pct, releases=release_calendar(wh, now))
    ensure_valid(Alerts, found, "alerts")
    before = wh.read_dataset(ALERTS)
    key = ["kind", "subject", "source", "period_start", "period_end"]
    new = found if before is None or before.is_empty() else found.join(before.select(key), on=key, how="anti")
    if found.height or before is not None:
        wh.write_partitions(ALERTS, found, replace_all=True)
    return found.height, new
