"""Prefect flow `backfill`: a range of months of any sources, each release file read once, one writer.

Work is planned by release, not by month: a source's inbox files are all read once, whatever
months they carry, and a live source fetches each release once (`Source.release_periods`: one
Japan Customs file carries its whole year so far). Fetching (network) runs in parallel on the
task runner (threads by default, a Dask cluster with RAREWATCH_DASK_ADDRESS or
RAREWATCH_DASK_LOCAL), the bytes going straight to the raw zone; landing runs in the flow, one
release after the other, so two never write the same partition or manifest at once. Reading is
streamed (at most `max_parallel` files in memory) and a file already published unchanged (same
sha256 and URL) is not parsed again unless `force`. The files sharing a year are published
together, all or nothing; a release failing is reported and the others still land, so re-running
does only what failed. The run's graph shows one fetch -> land pair per release, each task named
with the months it serves (`land japan_customs 2020-07 for 2020-03..2020-07`). A progress artifact
follows the releases; a table closes the run with one row (and one log line) per month and source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from flows import pipeline
from flows.catalogue import Catalogue
from flows.errors import RarewatchError, SourceFailed
from flows.httpclient import session
from flows.monthly import WRITER_LIMIT, SourceName, compute_indicators, compute_mirror_gaps, compute_reserves
from flows.ratelimit import ensure_writer_limit
from flows.secrets import with_secret_blocks
from flows.periods import Month, MonthSpan, month_range, parse_period
from flows.progress import listening
from flows.settings import Settings, load_settings
from flows.sources import Source, inbox_files, registry
from flows import publication
from flows.warehouse import Warehouse

MonthText = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="a month, YYYY-MM")]


@task(cache_policy=NO_CACHE, task_run_name="fetch {source_name} {period}")
def fetch_period(settings: Settings, source_name: str, period: str) -> list[pipeline.Fetched]:
    """Find and download one release of a live source; its bytes go to the raw zone at once."""
    source = registry()[source_name]
    http = session(settings, source_name)
    refs = source.discover(settings, http, parse_period(period))
    return [pipeline.fetch_release(settings, source, ref, http, keep_raw=True) for ref in refs]


@task(cache_policy=NO_CACHE, task_run_name="land {source_name} {label}")
def land_files(settings: Settings, source_name: str, label: str, fetched: list[pipeline.Fetched], span: MonthSpan,
               force: bool, parallel: int) -> list[GroupResult]:
    """Read each file once (unchanged ones are not parsed unless `force`), then publish the files
    of each release together; a release failing never stops the others."""
    return land_groups(settings, registry()[source_name], fetched, span, force=force, parallel=parallel)


def _runner(settings: Settings, workers: int):
    """Dask when asked (an address, or a local cluster), else a bounded thread pool."""
    if settings.dask_address or settings.dask_local:
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": False})
    return ThreadPoolTaskRunner(max_workers=workers)


@flow(name="backfill", log_prints=True, flow_run_name="backfill {start}..{end}")
def backfill(
    start: MonthText,
    end: MonthText,
    sources: Annotated[list[SourceName] | None, Field(description="sources to backfill (default: all, or those with files "
                                                            "in the inbox): japan_customs, gacc, comtrade, meti")] = None,
    force: Annotated[bool, Field(description="land months again even when their files are unchanged")] = False,
    max_parallel: Annotated[int, Field(ge=1, le=32, description="months fetched at once")] = 4,
) -> dict[str, Any]:
    """Backfill every month from `start` to `end` (inclusive) for the sources named.

    Args:
        start: first month, YYYY-MM.
        end: last month, YYYY-MM.
        sources: source names (default: all; with RAREWATCH_INBOX set, those with files there).
        force: land months even when their release files are unchanged.
        max_parallel: how many months are fetched at once.
    """
    settings = with_secret_blocks(load_settings())
    first, last = Month.parse(start), Month.parse(end)
    if last < first:
        raise ValueError(f"end {end} is before start {start}")
    known = registry()
    # As in monthly_refresh: offline over an inbox, the default is the sources with files there.
    names = sources or [n for n, src in known.items()
                        if settings.inbox is None or inbox_files(src, settings.inbox)]
    if not names:
        raise ValueError(f"no source has files in the inbox {settings.inbox}; name the sources to fetch live")
    unknown = [n for n in names if n not in registry()]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known: {sorted(registry())}")
    months = [str(m) for m in month_range(first, last)]
    ensure_writer_limit(WRITER_LIMIT)
    with concurrency(WRITER_LIMIT, occupy=1, strict=True):  # never beside another writing run
        # ...and always the warehouse's writer lock; what lands is published at the end, at once
        with Warehouse(settings.warehouse).transaction(f"backfill {start}..{end}", lock_timeout=settings.lock_timeout):
            # progress and summary live on this run, the one an operator starts (the child updates them)
            progress = create_progress_artifact(progress=0.0, key="backfill-progress",
                                                description=f"Releases landed, {start}..{end}")
            out = backfill_months.with_options(task_runner=_runner(settings, max_parallel))(
                months, names, force, max_parallel, str(progress))
            create_table_artifact(key="backfill-summary", table=out["jobs"],
                                  description=f"What happened per month and source, {start}..{end}")
            log_month_rows(out["jobs"])  # in the Logs tab of the run one started
    if out["errors"]:
        landed = f"published: {', '.join(out['landed'])}" if out["landed"] else "nothing was published"
        raise SourceFailed("backfill", [RarewatchError(e) for e in out["errors"]], note=landed)
    return Completed(message=summary_message(out["jobs"]), data=out)  # callers get `out`


def summary_message(rows: list[dict[str, Any]]) -> str:
    """The Completed state's message: rows landed per source, and how many months were unchanged."""
    per_source: dict[str, int] = {}
    for r in rows:
        per_source[r["source"]] = per_source.get(r["source"], 0) + r["rows_written"]
    total = sum(per_source.values())
    unchanged = sum(r["status"] == "unchanged" for r in rows)
    landed = f"{total:,} rows landed ({', '.join(f'{n} {k:,}' for n, k in per_source.items())})"
    return (landed if total else "nothing new landed") + (f"; {unchanged} month-source pair(s) unchanged" if unchanged else "")


def _months_run_name() -> str:
    from prefect.runtime import flow_run

    months = flow_run.parameters.get("months") or ["?"]
    return f"backfill months {months[0]}..{months[-1]}"


@flow(name="backfill-months", flow_run_name=_months_run_name)
def backfill_months(months: list[str], names: list[str], force: bool, max_parallel: int = 4,
                    progress_id: str | None = None) -> dict[str, Any]:
    """Fetch in parallel, land in order (each file once), then recompute what changed. Settings
    are read here (environment, Secret blocks), never passed as a parameter (parameters are
    stored by Prefect); progress goes to the parent run's artifact `progress_id`."""
    settings = with_secret_blocks(load_settings())
    logger = get_run_logger()
    span = MonthSpan(Month.parse(months[0]), Month.parse(months[-1]))
    wanted = [Month.parse(m) for m in months]
    known = registry()
    # Units of work: all of a source's inbox files at once (read once, whatever months they
    # carry), or one live release per unit (`release_periods`: a Japan Customs year is one release).
    units: list[tuple[str, str, Any, list[str]]] = []  # source, label, inbox files (None: live), months
    for n in names:
        refs = inbox_files(known[n], settings.inbox) if settings.inbox is not None else []
        if refs:
            units.append((n, "inbox", [pipeline.Fetched(r) for r in refs], []))  # months known once read
        else:
            units += [(n, str(period), None, [str(m) for m in ms]) for period, ms in known[n].release_periods(wanted)]
    progress = progress_id or create_progress_artifact(
        progress=0.0, key="backfill-progress", description=f"backfill {months[0]}..{months[-1]}: {', '.join(names)}")
    # The graph shows one fetch -> land pair per release, each named with the months it serves
    # ("fetch japan_customs 2020-07 for 2020-03..2020-07"); a release is fetched and landed once.
    futures = {(n, label): fetch_period.with_options(task_run_name=f"fetch {n} {_serves(label, ms)}").submit(
        settings, n, label) for n, label, refs, ms in units if refs is None}
    results: dict[str, list[GroupResult]] = {n: [] for n in names}
    last_update = [0.0]

    def within_unit(unit: int) -> Any:
        """The UI's progress moves with the files of a unit too (an inbox is one unit), at most
        every 2 s (each update is an API call)."""
        def listener(message: str, done: int, total: int) -> None:
            now = time.monotonic()
            if total and now - last_update[0] >= 2.0:
                last_update[0] = now
                update_progress_artifact(artifact_id=progress,
                                         progress=100.0 * (unit - 1 + done / total) / len(units))
        return listener

    # Within the run's transaction (the parent flow's): each source lands and gets its indicators
    # in a savepoint, so a source whose indicators fail leaves nothing of it (never clean rows
    # that every later run would fail on); a release that fails alone is left out alone.
    wh = Warehouse(settings.warehouse)
    extra_errors: list[str] = []
    i = 0
    for n in names:
        try:
            with wh.transaction(f"backfill {n}"):
                for n_, label, refs, unit_months in units:
                    if n_ != n:
                        continue
                    i += 1
                    try:
                        fetched = refs if refs is not None else futures.pop((n, label)).result()
                        named = _serves(label, unit_months) if refs is None else f"inbox ({len(refs)} files)"
                        with listening(within_unit(i)):
                            groups = land_files.with_options(task_run_name=f"land {n} {named}")(
                                settings, n, label, fetched, span, force, max_parallel)
                    except Exception as e:  # a release that cannot be fetched: reported, the others still land
                        logger.error("%s %s failed: %s", n, label, e)
                        groups = [GroupResult(label=label, status="failed", error=str(e)[:2000], months=unit_months)]
                    results[n] += groups
                    update_progress_artifact(artifact_id=progress, progress=100.0 * i / len(units))
                if any(g.rows_written for g in results[n]):
                    compute_indicators(settings, n)
        except Exception as e:
            logger.error("%s: indicators failed, nothing of %s is published: %s", n, n, e)
            for g in results[n]:
                if g.status == "landed":
                    g.status, g.error, g.rows_by_month = "failed", f"not published: the indicators failed: {e}"[:2000], {}
            extra_errors.append(f"{n}: indicators failed, nothing of {n} was published: {e}")
    rows = month_rows(results, months)
    if progress_id is None:  # called on its own; under `backfill` the run one started logs them
        log_month_rows(rows)
    landed = sorted(n for n, gs in results.items() if any(g.rows_written for g in gs))
    for name, needs, compute in (("mirror_gaps", {"comtrade", "japan_customs"}, compute_mirror_gaps),
                                 ("reserve_coverage", {"japan_customs", "meti"}, compute_reserves)):
        if set(landed) & needs:
            try:
                with wh.transaction(name):
                    compute(settings)
            except Exception as e:  # reserve messages carry no stock figure (pipeline.compute_reserves)
                logger.error("%s failed, not published: %s", name, e)
                extra_errors.append(f"{name} failed, not published: {e}")
    if landed:
        publication.publish(settings)  # reference tables, dictionary, DuckDB catalogue, README
    if progress_id is None:  # called on its own; under `backfill` the parent run shows the summary
        create_table_artifact(key="backfill-summary", table=rows, description="What happened per month and source")
    errors = [g.error for gs in results.values() for g in gs if g.status == "failed"] + extra_errors
    return {"jobs": rows, "landed": landed, "errors": errors,
            "releases": {n: [g.as_dict() for g in gs] for n, gs in results.items()}}


def _serves(label: str, months: list[str]) -> str:
    """A release and the months of the range it serves: `2020-07 for 2020-03..2020-07` (the July
    files carry January to July), `2020-07` (a release of its own month)."""
    if not months or months == [label]:
        return label
    return f"{label} for {months[0]}..{months[-1]}" if len(months) > 1 else f"{label} for {months[0]}"


@dataclass
class GroupResult:
    """What landing one release (the files sharing its months) did."""

    label: str  # e.g. "2019" or the files' names
    status: str  # landed, unchanged, nothing new, outside, failed
    files: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    months: list[str] = field(default_factory=list)
    rows_by_month: dict[str, int] = field(default_factory=dict)
    error: str = ""
    carries: dict[str, list[str]] = field(default_factory=dict)  # file -> months of the range it carries (when known)

    def files_for(self, month: str) -> list[str]:
        """The files of this release carrying `month` (a file whose months are unknown counts for all)."""
        return [f for f in self.files if f not in self.carries or month in self.carries[f]]

    @property
    def rows_written(self) -> int:
        return sum(self.rows_by_month.values())

    def as_dict(self) -> dict[str, Any]:
        return {"release": self.label, "status": self.status, "files": len(self.files),
                "unchanged": len(self.unchanged), "rows_written": self.rows_written, "error": self.error}


def land_groups(settings: Settings, source: Source, fetched: list[pipeline.Fetched], span: MonthSpan, *,
                force: bool = False, parallel: int = 1) -> list[GroupResult]:
    """Read every file once, group them by release (`pipeline.release_groups`), publish each group
    (all or nothing per release) and say what happened to each."""
    wh = Warehouse(settings.warehouse)
    unchanged = None if force else pipeline.published_files(wh, source.name)
    out: list[GroupResult] = []
    pending: list[pipeline.ReadFile] = []
    for f in pipeline.iter_read_files(settings, source, fetched, Catalogue.load(), span, unchanged=unchanged,
                                      parallel=parallel):
        pending.append(f)
        rows = sum(p.parsed.frame.height for p in pending if p.parsed is not None)
        if rows > FLUSH_ROWS:
            # Memory stays bounded: publish the releases read so far, except any the file just
            # read belongs to (files come in name order, so a year's files come together; a
            # straggler of a year already published lands as a release of its own).
            keep = [p for p in pending if p.years & f.years] if f.years else [f]
            out += _publish_groups(settings, source, [p for p in pending if not any(p is k for k in keep)], span)
            pending = keep
    return out + _publish_groups(settings, source, pending, span)


FLUSH_ROWS = 200_000  # clean rows held before the releases read so far are published


def _publish_groups(settings: Settings, source: Source, files: list[pipeline.ReadFile],
                    span: MonthSpan) -> list[GroupResult]:
    out = []
    for group in pipeline.release_groups(files):
        months = sorted({str(m) for f in group for m in f.months if m in span})
        names = [f.ref.name for f in group]
        carries = {f.ref.name: [] if f.status == "outside" else [str(m) for m in f.months if m in span]
                   for f in group if f.months or f.status == "outside"}
        years = sorted({m.year for f in group for m in f.months})
        label = (f"{years[0]}" if len(years) == 1 else f"{years[0]}-{years[-1]}") if years else names[0]
        if all(f.status == "outside" for f in group):
            continue
        if all(f.status in ("unchanged", "skipped", "outside") for f in group):
            out.append(GroupResult(label, "unchanged", names, [f.ref.name for f in group if f.status == "unchanged"],
                                   months, carries=carries))
            continue
        try:
            report = pipeline.publish_files(settings, source, [f for f in group if f.status != "unchanged"])
        except SourceFailed as e:
            out.append(GroupResult(label, "failed", names, [], months, error=str(e), carries=carries))
            continue
        finally:
            for f in group:  # published or refused: the rows are in the warehouse or in quarantine now
                f.parsed = None if f.parsed is None else replace(f.parsed, frame=pl.DataFrame(), rows=None)
        out.append(GroupResult(label, "landed" if report.rows_written else "nothing new", names,
                               [f.ref.name for f in group if f.status == "unchanged"], months,
                               dict(report.rows_by_month), carries=carries))
    return out


def log_month_rows(rows: list[dict[str, Any]]) -> None:
    """One log line per month and source: "2019-03 japan_customs: 1,891 rows landed from 6 file(s) ..."."""
    logger = get_run_logger()
    for r in rows:
        (logger.error if r["status"] == "failed" else logger.info)("%s %s: %s", r["month"], r["source"], r["detail"])


def month_rows(results: dict[str, list[GroupResult]], months: list[str]) -> list[dict[str, Any]]:
    """One row per month and source: what landed, from how many files, how many unchanged."""
    rows = []
    for n, groups in results.items():
        for m in months:
            touching = [g for g in groups if m in g.months]
            carrying = [f for g in touching for f in g.files_for(m)]
            files = len(carrying)
            unchanged = len(set(carrying) & {f for g in touching for f in g.unchanged})
            written = sum(g.rows_by_month.get(m, 0) for g in touching)
            status = ("failed" if any(g.status == "failed" for g in touching) else "landed" if written
                      else "unchanged" if unchanged else "nothing new" if touching else "no files")
            error = next((g.error for g in touching if g.status == "failed"), "")
            detail = {"landed": f"{written:,} rows landed from {files} file(s) ({unchanged} unchanged)",
                      "unchanged": f"{files} file(s) unchanged, nothing to land",
                      "failed": "failed: " + error.split("\n")[0],
                      "nothing new": f"{files} file(s) read, no rows for this month",
                      "no files": "no release file carries this month"}[status]
            rows.append({"month": m, "source": n, "status": status, "files": files, "unchanged": unchanged,
                         "rows_written": written, "detail": detail})
    # groups whose months are unknown (a file that could not be read) are reported on their own
    for n, groups in results.items():
        for g in groups:
            if not g.months and g.status == "failed":
                rows.append({"month": "-", "source": n, "status": "failed", "files": len(g.files), "unchanged": 0,
                             "rows_written": 0, "detail": "failed: " + g.error.split("\n")[0]})
    return rows
