"""Prefect flow `backfill`: a range of months of any sources, months in parallel, one writer.

Fetching (network) runs in parallel on the task runner (threads by default, a Dask cluster with
RAREWATCH_DASK_ADDRESS or RAREWATCH_DASK_LOCAL); landing runs in the flow, one month after the
other, so two months never write the same partition or manifest at once (a Japan Customs release
carries every month of its year). A month whose release files are already published unchanged
(same sha256) is skipped unless `force`; a failed month is reported and the others still land, so
re-running does only what failed. A progress artifact follows the months; a table closes the run.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from flows import pipeline
from flows.catalogue import Catalogue
from flows.errors import SourceFailed
from flows.monthly import WRITER_LIMIT, compute_indicators, compute_mirror_gaps, compute_reserves
from flows.periods import Month, month_range
from flows.settings import Settings
from flows.sources import inbox_files, registry
from flows.views import write_views
from flows.warehouse import Warehouse, sha256_bytes

MonthText = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="a month, YYYY-MM")]


@task(cache_policy=NO_CACHE, task_run_name="fetch-{source_name}-{month}")
def fetch_month(settings: Settings, source_name: str, month: str) -> list[pipeline.Fetched]:
    """Find and fetch a month's release files."""
    source = registry()[source_name]
    refs = pipeline.find_releases(settings, source, Month.parse(month))
    return [pipeline.fetch_release(settings, source, ref) for ref in refs]


def _runner(settings: Settings, workers: int):
    """Dask when asked (an address, or a local cluster), else a bounded thread pool."""
    if settings.dask_address or settings.dask_local:
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "processes": False})
    return ThreadPoolTaskRunner(max_workers=workers)


@flow(name="backfill", log_prints=True)
def backfill(
    start: MonthText,
    end: MonthText,
    sources: Annotated[list[str] | None, Field(description="sources to backfill (default: all, or those with files "
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
    settings = Settings()
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
    with concurrency(WRITER_LIMIT, occupy=1, strict=False):  # never beside another writing run
        return backfill_months.with_options(task_runner=_runner(settings, max_parallel))(settings, months, names, force)


@flow(name="backfill-months")
def backfill_months(settings: Settings, months: list[str], names: list[str], force: bool) -> dict[str, Any]:
    """Fetch in parallel, land in order, then recompute what changed."""
    logger = get_run_logger()
    jobs = [(m, n) for m in months for n in names]
    progress = create_progress_artifact(progress=0.0, key="backfill-progress",
                                        description=f"backfill {months[0]}..{months[-1]}: {', '.join(names)}")
    futures = {(m, n): fetch_month.submit(settings, n, m) for m, n in jobs}
    wh = Warehouse(settings.warehouse)
    rows, landed, failed = [], set(), []
    for i, (m, n) in enumerate(jobs, start=1):
        row = {"month": m, "source": n, "status": "", "files": 0, "unchanged": 0, "rows_written": 0, "error": ""}
        try:
            fetched = futures[(m, n)].result()
            # Checked here, not when fetching: an earlier month may just have published these bytes.
            published = set() if force else pipeline.published_files(wh, n)
            todo = [f for f in fetched if (sha256_bytes(f.data), f.ref.url) not in published]
            row.update(files=len(fetched), unchanged=len(fetched) - len(todo))
            if not todo:
                row["status"] = "unchanged" if fetched else "no files"
            else:
                report = pipeline.land(settings, registry()[n], todo, Catalogue.load(), Month.parse(m))
                row.update(status="landed" if report.rows_written else "nothing new", rows_written=report.rows_written)
                if report.rows_written:
                    landed.add(n)
        except Exception as e:  # one month failing never loses the others
            logger.error("%s %s failed: %s", n, m, e)
            row.update(status="failed", error=str(e)[:500])
            failed.append(SourceFailed(f"{n} {m}", [e]))
        rows.append(row)
        update_progress_artifact(artifact_id=progress, progress=100.0 * i / len(jobs))
    for n in sorted(landed):
        compute_indicators(settings, n)
    if landed & {"comtrade", "japan_customs"}:
        compute_mirror_gaps(settings)
    if landed & {"japan_customs", "meti"}:
        compute_reserves(settings)
    if landed:
        write_views(wh)
    create_table_artifact(key="backfill-summary", table=rows, description="What happened per month and source")
    if failed:
        raise SourceFailed("backfill", [e for f in failed for e in f.errors])
    return {"jobs": rows, "landed": sorted(landed)}
