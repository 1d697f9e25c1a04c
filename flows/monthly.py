"""Prefect flow `monthly_refresh`: the month's releases of every source, landed, then indicators.

Thin on purpose: each task calls one plain function of `flows.pipeline`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run
from prefect.states import Completed
from pydantic import Field

from flows import checks, pipeline, publication
from flows.ratelimit import ensure_writer_limit
from flows.secrets import with_secret_blocks
from flows.catalogue import Catalogue
from flows.errors import FetchError, LayoutError, LimitExceeded, NotPublished, SourceFailed
from flows.httpclient import session
from flows.periods import Month, Period, Year, parse_period
from flows.settings import Settings, load_settings
from flows.warehouse import Warehouse
from flows.sources import inbox_files, registry


def _retry_fetch_errors_only(task, task_run, state) -> bool:  # noqa: ANN001 (Prefect's callback)
    """Retry a task only for network trouble; a malformed file stays malformed."""
    try:
        state.result()
    except (LimitExceeded, NotPublished):
        return False  # a limit or deadline would only be passed again; a release not out is not a fault
    except FetchError:
        return True
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=_retry_fetch_errors_only,
      cache_policy=NO_CACHE, task_run_name="fetch {source_name}")
def fetch_releases(settings: Settings, source_name: str, period: Period | None) -> list[pipeline.Fetched]:
    """Find the release files (inbox or live) and fetch their bytes."""
    source = registry()[source_name]
    http = session(settings, source_name)
    refs = pipeline.find_releases(settings, source, period, http)
    get_run_logger().info("%s: %d release file(s) to ingest", source_name, len(refs))
    return [pipeline.fetch_release(settings, source, ref, http) for ref in refs]


@task(cache_policy=NO_CACHE, task_run_name="land {source_name}")
def land_releases(settings: Settings, source_name: str, fetched: list[pipeline.Fetched],
                  period: Period | None) -> pipeline.LandReport:
    """Keep raw bytes, parse, validate, publish the clean dataset (all or nothing per source)."""
    return pipeline.land(settings, registry()[source_name], fetched, Catalogue.load(), period)


@task(cache_policy=NO_CACHE, task_run_name="indicators {source_name}")
def compute_indicators(settings: Settings, source_name: str) -> dict[str, int]:
    """Recompute partner shares and import dependency from the clean dataset."""
    return pipeline.compute_indicators(settings, registry()[source_name], Catalogue.load())


@task(cache_policy=NO_CACHE)
def compute_reserves(settings: Settings) -> dict[str, int]:
    """Reference consumption, reserve coverage (public; restricted with stock positions), reliance."""
    return pipeline.compute_reserves(settings, Catalogue.load())


@task(cache_policy=NO_CACHE)
def compute_mirror_gaps(settings: Settings) -> int:
    """Japan's reported imports against partners' reported exports to Japan (needs Comtrade)."""
    return pipeline.compute_mirror_gaps(settings, Catalogue.load())


@task(cache_policy=NO_CACHE, task_run_name="check {source_name}")
def check_layout(settings: Settings, source_name: str, now: dt.datetime,
                 period: Period | None = None) -> checks.SourceCheck:
    """Is the source reachable and its layout recognised (discovery + one sample, nothing written)?"""
    return checks.check_source(settings, registry()[source_name], now, period=period)


@flow(name="sources-check", log_prints=True)
def sources_check(
    sources: Annotated[list[str] | None, Field(description="sources to check (default: all)")] = None,
) -> list[dict[str, Any]]:
    """Check every live source (reachable, layout recognised, latest release, due next); writes nothing
    to the warehouse. Fails when a source is unreachable or its layout is not recognised.

    Args:
        sources: source names to check (default: all).
    """
    settings = with_secret_blocks(load_settings())
    now = flow_run.get_scheduled_start_time() or dt.datetime.now(dt.UTC)
    names = sources or list(registry())
    results = [check_layout(settings, n, now) for n in names]
    table = checks.report(results)
    create_markdown_artifact(key="sources-check", markdown="# rarewatch sources check\n\n" + table,
                             description="Live sources: reachable, layout recognised, latest release")
    bad = [c for c in results if not c.ok]
    if bad:
        raise LayoutError(",".join(c.source for c in bad), "sources check", "\n" + table)
    return checks.as_dicts(results)


# The sources, as a choice list in the Prefect UI's run form (an enum in the parameter schema).
SourceName = Literal["japan_customs", "gacc", "gacc_imports", "comtrade", "meti"]
WRITER_LIMIT = "rarewatch-warehouse"  # global concurrency limit, created by the flows when missing


def due_period(settings: Settings, source_name: str, period: str | None, now: dt.datetime) -> Period | None:
    """The period to refresh for one source: the one asked for; none when the inbox holds the
    source's files (they are ingested whole); else the source's latest release due at `now`."""
    if period:
        return parse_period(period)
    source = registry()[source_name]
    if settings.inbox is not None and inbox_files(source, settings.inbox):
        return None
    return source.due(now)


def _monthly_run_name() -> str:
    """`monthly 2020-07`, `monthly due (japan_customs)`: readable in the UI's run list."""
    params = flow_run.parameters
    sources = params.get("sources")
    return f"monthly {params.get('period') or 'due'}" + (f" ({', '.join(sources)})" if sources else "")


@flow(name="monthly-refresh", log_prints=True, flow_run_name=_monthly_run_name)
def monthly_refresh(
    period: Annotated[str | None, Field(pattern=r"^\d{4}(-(0[1-9]|1[0-2]))?$",
                                        description="YYYY-MM (or YYYY for annual sources); empty: each source's "
                                                    "latest release due at the scheduled time")] = None,
    sources: Annotated[list[SourceName] | None, Field(description="sources to refresh (default: all): japan_customs, "
                                                            "gacc, comtrade, meti")] = None,
    previous_year: Annotated[bool | None, Field(description="also re-pull Japan Customs' previous year (revised "
                                                             "in March, fixed in November); empty: in March and "
                                                             "November")] = None,
) -> dict[str, Any]:
    """Refresh the month's releases of every source (or those named), then their indicators.

    Args:
        period: month to refresh, `YYYY-MM`; default: the latest month due at the scheduled time
            (or everything in the inbox when RAREWATCH_INBOX holds files).
        sources: source names (default: all).
        previous_year: also re-pull the previous year of Japan Customs (default: in March and November).
    """
    settings = with_secret_blocks(load_settings())
    now = flow_run.get_scheduled_start_time()
    ensure_writer_limit(WRITER_LIMIT)
    with concurrency(WRITER_LIMIT, occupy=1, strict=True):  # one writer at a time, everywhere
        # ...and always the warehouse's own writer lock; everything is published at the end, at once
        with Warehouse(settings.warehouse).transaction(f"monthly-refresh {period or 'due'}",
                                                       lock_timeout=settings.lock_timeout) as tx:
            results, failures = run_refresh(settings, period, sources, now=now)
            if previous_year or (previous_year is None and period is None and settings.inbox is None
                                 and now.month in (3, 11) and "japan_customs" in (sources or registry())):
                try:
                    with tx.savepoint():
                        results["japan_customs_previous_year"] = repull_previous_year(settings, now.year - 1)
                except Exception as e:
                    failures.append(e if isinstance(e, SourceFailed) else SourceFailed("japan_customs", [e]))
                    results["japan_customs_previous_year"] = {"status": "failed", "error": str(e)}
    raise_failures(results, failures)
    # the run's state says what it did, in the UI's run page and list ("gacc: not published yet, next try: ...")
    return Completed(message=run_message(results), data=results)  # callers get `results`


def run_message(results: dict[str, Any]) -> str:
    """One line per source for the Completed state: rows landed, not published yet (with the next
    try), skipped; then how many new alerts."""
    parts = []
    for name, r in results.items():
        if name in ("alerts", "mirror_gaps", "reserve_coverage") or not isinstance(r, dict):
            continue
        status = r.get("status")
        if status == "ok":
            parts.append(f"{name}: {r.get('rows_written', 0):,} rows landed" + (f" ({r['focus']})" if r.get("focus") else ""))
        elif status == "not_published":
            parts.append(f"{name}: {r['reason']}")
        elif status == "skipped":
            parts.append(f"{name}: skipped, {r['reason']}")
    new = len((results.get("alerts") or {}).get("new") or [])
    return "; ".join(parts + ([f"{new} new alert(s)"] if new else [])) or "nothing to do"


def raise_failures(results: dict[str, Any], failures: list[SourceFailed]) -> None:
    """After the publish: the run fails when anything failed, saying what was published and what not."""
    if not failures:
        return
    landed = sorted(n for n, r in results.items() if isinstance(r, dict) and r.get("status") == "ok")
    summary = (f"published: {', '.join(landed)}" if landed else "nothing was published") + \
        f"; not published: {', '.join(f.source for f in failures)}"
    if len(failures) == 1 and not landed:
        raise failures[0]
    raise SourceFailed(",".join(f.source for f in failures), [e for f in failures for e in f.errors], note=summary)


def repull_previous_year(settings: Settings, year: int) -> dict[str, Any]:
    """Japan Customs republishes whole years (revised in March, fixed in November; docs/sources.md §1.4)."""
    fetched = fetch_releases.with_options(retries=settings.task_retries, retry_delay_seconds=settings.task_retry_delay)(
        settings, "japan_customs", Year(year))
    report = land_releases(settings, "japan_customs", fetched, Year(year))
    counts = compute_indicators(settings, "japan_customs")
    return {"status": "ok", "rows_written": report.rows_written, "months": report.months, **counts}


def run_refresh(settings: Settings, period: str | None, sources: list[str] | None,
                now: dt.datetime) -> tuple[dict[str, Any], list[SourceFailed]]:
    """Body of the flow, within the run's transaction: one source failing does not stop the
    others (what it staged is dropped: its savepoint), and failures are returned, to be raised
    once the rest is published."""
    wh = Warehouse(settings.warehouse)
    logger = get_run_logger()
    known = registry()
    names = sources or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known: {sorted(known)}")
    results: dict[str, Any] = {}
    failures: list[SourceFailed] = []
    for name in names:
        source = known[name]
        from_inbox = settings.inbox is not None and bool(inbox_files(source, settings.inbox))
        if not sources and settings.inbox is not None and not from_inbox:
            # An offline run over an inbox: sources with no files there are left alone.
            results[name] = {"status": "skipped", "reason": f"no files in {settings.inbox}/{name}"}
            continue
        month = due_period(settings, name, period, now)
        if month is None and not from_inbox:
            results[name] = {"status": "skipped", "reason": "no release due"}
            continue
        if not from_inbox:  # the site first: a layout rarewatch does not know stops this source at once
            check = check_layout(settings, name, now, month)
            if not check.recognised and check.reachable:
                error = LayoutError(name, "sources check", f"{check.problem}\n{checks.report([check])}")
                logger.error("%s: layout not recognised, nothing fetched:\n%s", name, checks.report([check]))
                failures.append(SourceFailed(name, [error]))
                results[name] = {"status": "failed", "error": str(error)}
                continue
        try:
            with wh.transaction(name):  # a savepoint of the run's: a failing source leaves nothing
                fetched = fetch_releases.with_options(
                    retries=settings.task_retries, retry_delay_seconds=settings.task_retry_delay)(settings, name, month)
                report = land_releases(settings, name, fetched, month)
                counts = compute_indicators(settings, name)
        except NotPublished as e:  # not out yet: the run is not a failure, the next scheduled one tries again
            results[name] = {"status": "not_published", "reason": f"not published yet: {e}; next try: {_next_try()}"}
            logger.info("%s: %s", name, results[name]["reason"])
            continue
        except Exception as e:  # reported per source; the others still land
            logger.error("%s failed: %s", name, e)
            failures.append(e if isinstance(e, SourceFailed) else SourceFailed(name, [e]))
            results[name] = {"status": "failed", "error": str(e)}
            continue
        focus = (str(month) if isinstance(month, Month) else None) or (report.months[-1] if report.months else None)
        results[name] = {"status": "ok", "rows_written": report.rows_written, "rows_rejected": report.rows_rejected,
                         "months": report.months, "focus": focus, "files": report.files,
                         "skipped_files": report.skipped_files, **counts}
    if any(r["status"] == "ok" for r in results.values()) and {"comtrade", "japan_customs"} & {
            n for n, r in results.items() if r["status"] == "ok"}:
        try:
            with wh.transaction("mirror_gaps"):
                results["mirror_gaps"] = {"status": "ok", "rows": compute_mirror_gaps(settings)}
        except Exception as e:
            logger.error("mirror gaps failed: %s", e)
            failures.append(SourceFailed("mirror_gaps", [e]))
    if {"japan_customs", "meti"} & {n for n, r in results.items() if r["status"] == "ok"}:
        try:
            with wh.transaction("reserve_coverage"):
                results["reserve_coverage"] = {"status": "ok", **compute_reserves(settings)}
        except Exception as e:  # messages carry no stock figure (pipeline.compute_reserves)
            logger.error("reserve coverage failed: %s", e)
            failures.append(SourceFailed("reserve_coverage", [e]))
    try:
        with wh.transaction("alerts"):
            n, new = pipeline.compute_alerts(settings)
        results["alerts"] = {"status": "ok", "rows": n, "new": new.to_dicts()}
        emit_alert_events(new, settings.alert_events_max)
    except Exception as e:
        logger.error("alerts failed: %s", e)
        failures.append(SourceFailed("alerts", [e]))
    publication.publish(settings)  # reference tables, dictionary, DuckDB catalogue, README
    _artifacts(settings, {k: v for k, v in results.items() if k not in ("mirror_gaps", "reserve_coverage")})
    return results, failures


def _next_try() -> str:
    """When this deployment runs next (its earliest scheduled run), for "not published yet" notes."""
    from prefect.runtime import deployment as this_deployment

    deployment = this_deployment.id
    if not deployment:
        return "the next run (this one was not started from a deployment)"
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterId, FlowRunFilter,
                                                    FlowRunFilterState, FlowRunFilterStateType)
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)
    except Exception as e:  # noqa: BLE001 (only a note)
        return f"the next scheduled run (not readable: {type(e).__name__})"
    if not runs or runs[0].expected_start_time is None:
        return "the next scheduled run (none is scheduled)"
    return f"{runs[0].expected_start_time:%Y-%m-%d %H:%M %Z} (the next scheduled run)"


def emit_alert_events(new: pl.DataFrame, limit: int) -> int:
    """One Prefect event per new alert, newest first, at most `limit`: `rarewatch.alert.<kind>`
    with the metal (or commodity) as resource, so an automation can notify (prefect.yaml)."""
    from prefect.events import emit_event

    sent = 0
    for row in new.sort("period_end", descending=True).head(limit).iter_rows(named=True):
        emit_event(event=f"rarewatch.alert.{row['kind']}",
                   resource={"prefect.resource.id": f"rarewatch.{'source' if row['kind'] == 'release_overdue' else 'metal'}."
                                         f"{row['subject']}",
                             "prefect.resource.name": row["subject"], "rarewatch.source": row["source"]},
                   payload={k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()})
        sent += 1
    return sent


def _artifacts(settings: Settings, results: dict[str, Any]) -> None:
    table = []
    for name, r in results.items():
        table.append({"source": name, "status": r["status"], "rows_written": r.get("rows_written", 0),
                      "rows_rejected": r.get("rows_rejected", 0), "partner_shares": r.get("partner_shares", 0),
                      "import_dependency": r.get("import_dependency", 0),
                      "note": (r.get("error") or r.get("reason") or "")[:500]})
    create_table_artifact(key="rows-written", table=table, description="Rows written and rejected per source")
    report = Warehouse(settings.warehouse).url("reports", "latest.html")
    md = ["# rarewatch monthly refresh", "", f"Report (charts, top partners, reserve coverage, alerts; opens offline): "
          f"[{report}]({report})", ""]
    alerts = results.get("alerts", {}).get("new") or []
    if alerts:
        md += [f"## Alerts ({len(alerts)} new)", "", *[f"- **{a['kind']}** {a['message']}" for a in alerts[:30]], ""]
    for name, r in results.items():
        if name == "alerts":
            continue
        if r["status"] in ("skipped", "not_published"):
            md += [f"## {name}: {r['status'].replace('_', ' ')}", "", r["reason"], ""]
        elif r["status"] != "ok":
            md += [f"## {name}: failed", "", "```", r["error"][:2000], "```", ""]
        else:
            md += [f"## {name}: {r['focus']}", "", f"{r['rows_written']} rows landed for months "
                   f"{', '.join(r['months']) or '-'}.", ""]
            if r.get("skipped_files"):
                md += [f"Files recognised and not read ({len(r['skipped_files'])}):", "",
                       *[f"- {s}" for s in r["skipped_files"][:20]], ""]
            if "import_dependency" in r:
                md += _markdown_table(settings, name, r["focus"])
    create_markdown_artifact(key="month-summary", markdown="\n".join(md), description="China share and HHI per metal")


def _markdown_table(settings: Settings, source: str, focus: str | None) -> list[str]:
    dep = pipeline.read_indicator(settings, "import_dependency")
    if dep is None or focus is None:
        return ["(no indicators)"]
    end = Month.parse(focus).last_day
    rows = dep.filter((pl.col("source") == source) & (pl.col("period_end") == end) & (pl.col("basis") == "quantity")
                      & pl.col("freq").is_in(["M", "12M"])).sort("metal", "freq")
    out = ["| metal | freq | China share (qty) | HHI (qty) | top supplier |", "|---|---|---:|---:|---|"]
    for r in rows.iter_rows(named=True):
        share = "-" if r["china_share"] is None else f"{100 * r['china_share']:.1f} %"
        hhi = "-" if r["hhi"] is None else f"{r['hhi']:,.0f}"
        out.append(f"| {r['metal']} | {r['freq']} | {share} | {hhi} | {r['top_partner_name'] or '-'} |")
    return out
