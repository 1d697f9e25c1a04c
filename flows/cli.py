"""`rarewatch` command line: a thin door onto the same flows Prefect deploys."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from flows.periods import parse_period


def _period(text: str) -> str:
    try:
        return str(parse_period(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} or YYYY") from None


def _month(text: str) -> str:
    from flows.periods import Month

    try:
        return str(Month.parse(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rarewatch",
        description="Japan's dependency on imported rare earths and minor metals, from primary sources. "
        "Settings come from RAREWATCH_* environment variables (RAREWATCH_WAREHOUSE, RAREWATCH_INBOX, ...).",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's run logs on the console")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("refresh", help="fetch, validate and land a month's releases, then recompute indicators",
                       description="Run the monthly-refresh flow. With RAREWATCH_INBOX holding files, those are "
                       "ingested without network; otherwise the month's release is fetched from the source.")
    r.add_argument("--period", type=_period, metavar="YYYY-MM|YYYY",
                   help="month (or year, for annual sources such as comtrade) to refresh; default: the latest "
                   "release due of each source, or everything in the inbox")
    r.add_argument("--source", action="append", dest="sources", metavar="NAME",
                   help="source to refresh: japan_customs, gacc, comtrade (repeatable; default: all)")
    b = sub.add_parser("backfill", help="land every release of a range of months, each file read once",
                       description="Run the backfill flow over START..END (YYYY-MM, inclusive): with RAREWATCH_INBOX "
                       "holding files, those are read (once each, whatever months they carry); otherwise each "
                       "release is fetched from its source. Files already published unchanged are not read again "
                       "unless --force. A progress bar follows the releases; a table closes the run.")
    b.add_argument("start", type=_month, metavar="START", help="first month, YYYY-MM")
    b.add_argument("end", type=_month, metavar="END", help="last month, YYYY-MM")
    b.add_argument("--source", action="append", dest="sources", metavar="NAME",
                   help="source to backfill (repeatable; default: those with inbox files, else all)")
    b.add_argument("--force", action="store_true", help="land files again even when unchanged")
    b.add_argument("--parallel", type=int, default=2, metavar="N",
                   help="releases fetched and files parsed at once (default 2)")
    srv = sub.add_parser("server", help="the long-lived local Prefect server one-off commands reuse",
                         description="rarewatch commands reuse one local Prefect server (started on first use, "
                         "recorded in $PREFECT_HOME/rarewatch-server.json) instead of paying Prefect's temporary "
                         "server at every command. RAREWATCH_PREFECT=ephemeral turns this off; PREFECT_API_URL "
                         "points at another server.")
    srv.add_argument("action", choices=["start", "stop", "status"])
    src = sub.add_parser("sources", help="operator checks of the live sources")
    src_sub = src.add_subparsers(dest="sources_command", required=True)
    chk = src_sub.add_parser("check", help="is each live source reachable and its layout recognised? (writes nothing)",
                             description="Fetch each source's discovery pages and one small sample file of its latest "
                             "release, parse it, and report per source: reachable, layout recognised, latest release "
                             "and its date, what is due next. Uses the network (the RAREWATCH_*_BASE_URL sites); "
                             "writes nothing. Exit code 1 when any source is unreachable or not recognised.")
    chk.add_argument("--source", action="append", dest="sources", metavar="NAME",
                     help="source to check (repeatable; default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Every failure ends as one paragraph on stderr and a non-zero exit code, never a bare
    traceback: rarewatch's own errors as they are, invalid settings naming the variable, folders
    that cannot be written naming the folder; anything unexpected with the place its traceback
    was kept. SIGTERM is handled like Ctrl-C: the run in progress publishes nothing, and a local
    Prefect server this command started is stopped."""
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(args)
    except KeyboardInterrupt:
        global _INTERRUPTED
        _INTERRUPTED = True
        print(f"rarewatch {args.command}: interrupted; the run in progress published nothing (the warehouse "
              "is as it was before it)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (the one place that turns every failure into a message)
        print(f"rarewatch {args.command}: {describe(e)}", file=sys.stderr)
        return 2 if _is_settings_error(e) else 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        from flows import prefect_api

        if _INTERRUPTED:  # interrupted or terminated: a server this command started goes with it
            prefect_api.stop_if_started_here()


_INTERRUPTED = False


def _terminated(signum: int, frame: object) -> None:
    global _INTERRUPTED
    _INTERRUPTED = True
    from flows import prefect_api

    prefect_api.stop_if_started_here()
    raise KeyboardInterrupt


def _is_settings_error(e: Exception) -> bool:
    from flows.settings import SettingsError

    return isinstance(e, SettingsError)


def describe(e: BaseException) -> str:
    """One paragraph for any failure (see `main`)."""
    from flows.errors import RarewatchError

    if isinstance(e, RarewatchError):
        return str(e)
    if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES,
                                                                               errno.ENOSPC, errno.EDQUOT)):
        where = e.filename or "a file"
        return (f"cannot write {where}: {e.strerror}. Check that the warehouse (RAREWATCH_WAREHOUSE), the restricted "
                "root (RAREWATCH_RESTRICTED_DIR) and PREFECT_HOME are writable and have space; nothing of the run "
                "was published")
    if isinstance(e, OSError):
        return f"{e.filename or 'a file'}: {e.strerror or e}"
    import tempfile
    import traceback

    from flows.httpclient import redact

    secrets = tuple(os.environ.get(v, "") for v in ("RAREWATCH_ESTAT_APP_ID", "RAREWATCH_COMTRADE_API_KEY"))
    fd, path = tempfile.mkstemp(prefix="rarewatch-error-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(redact("".join(traceback.format_exception(e)), secrets))
    return (f"unexpected {type(e).__name__}: {redact(str(e), secrets)}. This is a rarewatch bug, not a problem of your data: nothing of the "
            f"run was published; the traceback is kept in {path} (please attach it to an issue)")


def _main(args: argparse.Namespace) -> int:
    if not args.verbose:
        # Run logs still reach the Prefect backend (UI); the console shows only our own summary.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    if args.command == "server":
        return _server(args.action)
    if args.command in ("refresh", "backfill"):
        from flows.prefect_api import PrefectUnavailable, ensure_api
        from flows.settings import load_settings

        load_settings()  # invalid settings are told before Prefect is started

        try:
            ensure_api()
        except PrefectUnavailable as e:
            print(f"rarewatch {args.command}: {e}", file=sys.stderr)
            return 1
    if args.command == "refresh":
        return _refresh(args.period, args.sources)
    if args.command == "backfill":
        return _backfill(args.start, args.end, args.sources, args.force, args.parallel)
    if args.command == "sources" and args.sources_command == "check":
        return _sources_check(args.sources)
    return 2


def _server(action: str) -> int:
    from flows import prefect_api

    try:
        if action == "start":
            print(f"Prefect API: {prefect_api.start_server()}")
        elif action == "stop":
            print("stopped" if prefect_api.stop_server() else "no rarewatch Prefect server was running")
        else:
            state = prefect_api.recorded()
            if state is None:
                print("no rarewatch Prefect server is running (the next command starts one)")
                return 1
            up = prefect_api.healthy(state["url"])
            print(f"{'running' if up else 'not answering'}: {state['url']} (pid {state['pid']}, log {state['log']})")
            return 0 if up else 1
    except prefect_api.PrefectUnavailable as e:
        print(f"rarewatch server {action}: {e}", file=sys.stderr)
        return 1
    return 0


def _backfill(start: str, end: str, sources: list[str] | None, force: bool, parallel: int) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from flows.backfill import backfill
    from flows.errors import RarewatchError
    from flows.progress import listening

    console = Console(stderr=True)
    result: dict | None = None
    error: Exception | None = None
    # the bar follows the files read (per release when fetched live, all at once from an inbox)
    with Progress(TextColumn("backfill {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        job = bar.add_task(f"{start}..{end}", total=None)

        def on_step(message: str, done: int, total: int) -> None:
            bar.update(job, completed=done, total=total, description=f"{start}..{end}: {message}")

        with listening(on_step):
            try:
                result = backfill(start=start, end=end, sources=sources, force=force, max_parallel=max(1, parallel))
            except (RarewatchError, ValueError) as e:
                error = e
    jobs = result["jobs"] if result else []
    table = Table(title=f"backfill {start}..{end}")
    for col in ("source", "year", "months landed", "rows landed", "unchanged", "failed"):
        table.add_column(col, justify="right" if col not in ("source",) else "left")
    by: dict[tuple[str, str], list[dict]] = {}
    for j in jobs:
        by.setdefault((j["source"], j["month"][:4]), []).append(j)
    for (source, year), rows in sorted(by.items()):
        table.add_row(source, year, str(sum(r["status"] == "landed" for r in rows)),
                      f"{sum(r['rows_written'] for r in rows):,}", str(sum(r["status"] == "unchanged" for r in rows)),
                      str(sum(r["status"] == "failed" for r in rows)))
    if jobs:
        Console().print(table)
    if error is not None:
        print(f"rarewatch backfill failed:\n{error}", file=sys.stderr)
        return 1
    return 0


def _sources_check(sources: list[str] | None) -> int:
    """No Prefect run: plain functions, so the check answers in seconds."""
    from flows.checks import check_sources, report
    from flows.settings import load_settings

    try:
        checks = check_sources(load_settings(), sources)
    except ValueError as e:
        print(f"rarewatch sources check: {e}", file=sys.stderr)
        return 2
    print(report(checks))
    bad = [c for c in checks if not c.ok]
    for c in bad:
        print(f"\n{c.source}: {'not reachable' if not c.reachable else 'layout not recognised'}: {c.problem}",
              file=sys.stderr)
    return 1 if bad else 0


def _refresh(period: str | None, sources: list[str] | None) -> int:
    import polars as pl

    from flows.errors import RarewatchError
    from flows.monthly import monthly_refresh
    from flows.summaries import china_summary, month_summary, reserve_summary
    from flows.settings import load_settings
    from flows.warehouse import Warehouse

    settings = load_settings()
    try:
        results = monthly_refresh(period=period, sources=sources)
    except (RarewatchError, ValueError) as e:
        print(f"rarewatch refresh failed:\n{e}", file=sys.stderr)
        return 1
    wh = Warehouse(settings.warehouse)
    refused: list[str] = []
    print(f"\nwarehouse: {wh.root_url}")
    for zone in ("raw", "clean", "indicators"):
        print(f"  {zone + '/':12s} {wh.url(zone)}")
    with pl.Config(tbl_rows=60, tbl_cols=12, float_precision=1, tbl_hide_dataframe_shape=True, tbl_width_chars=140,
                   tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True):
        for name, r in results.items():
            if name == "japan_customs_previous_year":
                print(f"\njapan_customs previous year re-pulled: {r['rows_written']} rows")
                continue
            if name == "mirror_gaps":
                if r.get("rows"):
                    print(f"\nmirror_gaps: {r['rows']} rows")
                continue
            if name == "reserve_coverage":
                print(f"\nreserve_coverage: {r.get('reserve_coverage', 0)} rows"
                      + (f"; restricted rows under {settings.restricted_root()} (not for distribution)"
                         if "restricted_reserve_coverage" in r else "; no stock positions given"))
                print(reserve_summary(settings))
                continue
            if r["status"] != "ok":
                print(f"\n{name}: {r['status']} ({r.get('reason') or r.get('error')})")
                continue
            print(f"\n{name}: {r['rows_written']} rows landed, months {_span(r['months'])}")
            if r.get("rows_rejected"):
                refused.append(f"{name}: {r['rows_rejected']} row(s) refused and kept in {wh.url('quarantine')}")
            if not r["rows_written"] and r.get("files"):
                empty = sum(1 for f in r["files"] if f.get("skipped_not_reported"))
                print(f"  nothing landed from {len(r['files'])} file(s)"
                      + (f": {empty} answer(s) hold no records (not reported yet, never zero trade)" if empty else ""))
            skipped = r.get("skipped_files") or []
            if skipped:
                reasons = sorted({s.split(": ", 1)[1] for s in skipped})
                print(f"  {len(skipped)} file(s) recognised and not read: " + "; ".join(reasons[:3])
                      + (" ..." if len(reasons) > 3 else ""))
            if "china_exports_monthly" in r:
                print("China's rare-earth exports (tonnes, as GACC publishes them; last 6 periods):")
                print(china_summary(settings))
            if "import_dependency" in r:
                summary = month_summary(settings, name, r["focus"])
                if summary.height:
                    print(f"China share (%) and HHI (0-10,000) for {r['focus']}: "
                          "the month (M) and the trailing 12 months (12M):")
                    print(summary)
    if refused:  # the rest landed; the exit code still says that something was refused
        print("rarewatch refresh: " + "; ".join(refused), file=sys.stderr)
        return 1
    return 0


def _span(months: list[str]) -> str:
    return f"{months[0]}..{months[-1]}" if months else "-"


if __name__ == "__main__":
    sys.exit(main())
