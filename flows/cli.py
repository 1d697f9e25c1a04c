"""`rarewatch` command line (typer + rich): thin doors onto the same flows Prefect deploys, and
onto the plain functions analysts read the warehouse with (flows/analyst.py)."""

from __future__ import annotations

import errno
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

# typer carries its own copy of click; its usage errors (bad option, unknown metal) are one class
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(name="rarewatch", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="markdown",
                  help="Japan's dependency on imported rare earths and minor metals, from primary sources. Settings "
                       "come from RAREWATCH_* environment variables (RAREWATCH_WAREHOUSE, RAREWATCH_INBOX, ...).")
server_app = typer.Typer(no_args_is_help=True, help="The long-lived local Prefect server one-off commands reuse "
                         "(recorded in $PREFECT_HOME/rarewatch-server.json); RAREWATCH_PREFECT=ephemeral turns it off.")
sources_app = typer.Typer(no_args_is_help=True, help="Operator checks of the live sources.")
app.add_typer(server_app, name="server")
app.add_typer(sources_app, name="sources")


def _period(text: Optional[str]) -> Optional[str]:
    from flows.periods import parse_period

    if text is None:
        return None
    try:
        return str(parse_period(text))
    except ValueError as e:
        raise typer.BadParameter(f"{e} or YYYY") from None


def _month(text: str) -> str:
    from flows.periods import Month

    try:
        return str(Month.parse(text))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def _sources(names: Optional[list[str]]) -> Optional[list[str]]:
    from flows.sources import registry

    known = registry()
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise typer.BadParameter(f"unknown source(s) {unknown}; known: {', '.join(sorted(known))}")
    return names or None


def _metal(name: str) -> str:
    from flows.analyst import check_metal
    from flows.errors import RarewatchError

    try:
        return check_metal(name)
    except RarewatchError as e:
        raise typer.BadParameter(str(e)) from None


class Freq(str, Enum):
    year = "A"
    trailing = "12M"
    month = "M"


class Basis(str, Enum):
    value = "value"
    quantity = "quantity"


class TradeSource(str, Enum):
    japan_customs = "japan_customs"
    comtrade = "comtrade"


SourceOpt = typer.Option(None, "--source", callback=_sources, metavar="NAME",
                         help="source (repeatable): japan_customs, gacc, gacc_imports, comtrade, meti; default: all")


@app.callback()
def _root(verbose: bool = typer.Option(False, "-v", "--verbose", help="show Prefect's run logs on the console")) -> None:
    if not verbose:
        # Run logs still reach the Prefect backend (UI); the console shows only our own summary.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def _prefect(command: str) -> int:
    """Settings first (told before Prefect starts), then the Prefect API the run will use."""
    from flows.prefect_api import PrefectUnavailable, ensure_api
    from flows.settings import load_settings

    load_settings()
    try:
        ensure_api()
    except PrefectUnavailable as e:
        print(f"rarewatch {command}: {e}", file=sys.stderr)
        return 1
    return 0


@app.command()
def refresh(period: Optional[str] = typer.Option(None, "--period", callback=_period, metavar="YYYY-MM|YYYY",
                                                 help="month (or year, for annual sources such as comtrade); default: "
                                                      "the latest release due of each source, or everything in the inbox"),
            source: Optional[list[str]] = SourceOpt) -> int:
    """Fetch (or read from the inbox), validate and land a month's releases, then recompute the
    indicators, the alerts, the report and the warehouse's catalogue."""
    return _prefect("refresh") or _refresh(period, source)


@app.command()
def backfill(start: str = typer.Argument(..., callback=_month, metavar="START", help="first month, YYYY-MM"),
             end: str = typer.Argument(..., callback=_month, metavar="END", help="last month, YYYY-MM"),
             source: Optional[list[str]] = SourceOpt,
             force: bool = typer.Option(False, "--force", help="land files again even when unchanged"),
             parallel: int = typer.Option(2, "--parallel", min=1, metavar="N",
                                          help="releases fetched and files parsed at once")) -> int:
    """Land every release of START..END (inclusive), each file read once; a progress bar follows
    the releases and a table closes the run."""
    return _prefect("backfill") or _backfill(start, end, source, force, parallel)


@app.command()
def ingest(files: list[Path] = typer.Argument(..., metavar="FILE...", help="release files of any source")) -> int:
    """Copy files into the inbox (RAREWATCH_INBOX, default ./inbox), each into its source's folder
    by its content, then land them (a refresh of those sources, from the inbox)."""
    from flows.analyst import copy_into_inbox, ingest_plan
    from flows.sources import registry

    plan = ingest_plan(files)
    inbox = Path(os.environ.get("RAREWATCH_INBOX") or "inbox")
    copied = copy_into_inbox(inbox, plan)
    os.environ["RAREWATCH_INBOX"] = str(inbox)
    names = sorted({s.name for s in registry().values() if s.folder in plan})
    print(f"copied {len(copied)} file(s) into {inbox}: " + ", ".join(f"{k}/ ({len(v)})" for k, v in plan.items()))
    return _prefect("ingest") or _refresh(None, names)


@app.command()
def status() -> int:
    """Latest period and vintage per source, rows, last retrieval, quarantined rows, recent alerts."""
    from rich.console import Console
    from rich.table import Table

    from flows import analyst
    from flows.settings import load_settings

    settings = load_settings()
    table = Table(title=f"warehouse {settings.warehouse}")
    for col in ("source", "dataset", "latest", "vintage", "rows", "last retrieved", "quarantined rows"):
        table.add_column(col, justify="right" if col in ("rows", "quarantined rows") else "left")
    for r in analyst.status(settings):
        table.add_row(str(r["source"]), str(r["dataset"]), str(r["latest"] or "-"), str(r["vintage"] or "-"),
                      f"{r['rows']:,}", str(r["last_retrieved"] or "-"), f"{r['quarantined_rows']:,}")
    console = Console()
    console.print(table)
    recent = analyst.alerts(settings)
    if recent is not None and recent.height:
        console.print("[bold]recent alerts[/bold]")
        from rich.markup import escape

        for a in recent.iter_rows(named=True):
            console.print(escape(f"  [{a['kind']}] {a['message']}"))
    return 0


@app.command()
def report(open_: bool = typer.Option(False, "--open", help="open it in the default browser")) -> int:
    """Where the offline report is (warehouse/reports/latest.html), rebuilt by every refresh."""
    import webbrowser

    from flows.settings import load_settings
    from flows.warehouse import Warehouse

    wh = Warehouse(load_settings().warehouse)
    if not wh.exists("reports/latest.html"):
        print(f"rarewatch report: no report in {wh.root_url} yet: run `rarewatch refresh` first", file=sys.stderr)
        return 1
    url = wh.url("reports", "latest.html")
    print(url)
    if open_:
        webbrowser.open(url)
    return 0


@app.command()
def query(metal: str = typer.Argument(..., callback=_metal, help="metal id, e.g. rare_earths"),
          freq: Freq = typer.Option(Freq.trailing, "--freq",
                                    help="A calendar year, 12M trailing twelve months, M the month"),
          basis: Basis = typer.Option(Basis.quantity, "--basis", help="value (currency) or quantity (net mass)"),
          source: TradeSource = typer.Option(TradeSource.japan_customs, "--source", help="whose trade figures")) -> int:
    """Japan's dependency on one metal: China's share, HHI and top supplier over the latest
    periods, then the top partners of the latest one."""
    from rich.console import Console
    from rich.table import Table

    from flows import analyst
    from flows.settings import load_settings

    settings = load_settings()
    table, partners = analyst.query(settings, metal, freq=freq.value, basis=basis.value, source=source.value)
    console = Console()
    for title, frame in ((f"{metal}: {freq.value}, {basis.value}, {source.value}", table), ("top partners of the latest period", partners)):
        if frame.is_empty():
            continue
        t = Table(title=title)
        for c in frame.columns:
            t.add_column(c, justify="right" if frame[c].dtype.is_numeric() else "left")
        for row in frame.iter_rows():
            t.add_row(*["-" if v is None else (f"{v:,.1f}" if isinstance(v, float) else str(v)) for v in row])
        console.print(t)
    cover = analyst.coverage(settings, metal)
    if cover is not None:
        console.print(f"stock a 180-day target implies ({cover['period_end']:%Y-%m}): {cover['required_stock_180d_t']:,.0f} t; "
                      f"60 days: {cover['required_stock_60d_t']:,.0f} t; the policy's {cover['target_days']} days: "
                      f"{cover['required_stock_target_t']:,.0f} t (reference consumption {cover['reference_year']}: "
                      f"{cover['reference_consumption_t']:,.0f} t/year, {cover['consumption_method']})")
    return 0


@app.command()
def datasets(name: Optional[str] = typer.Argument(None, help="a dataset: its columns")) -> int:
    """The data dictionary: every dataset, or one dataset's columns (type, unit, description, values)."""
    from rich.console import Console
    from rich.table import Table

    from flows.dictionary import columns, dataset
    from flows.dictionary import datasets as all_datasets

    console = Console()
    if name is None:
        t = Table(title="datasets (docs/data_dictionary.md)")
        for c in ("dataset", "path", "one row per", "what"):
            t.add_column(c)
        for d in all_datasets():
            t.add_row(d.name, d.path, d.grain, d.summary)
        console.print(t)
        return 0
    try:
        d = dataset(name)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0])) from None
    t = Table(title=f"{d.name}: {d.summary}")
    for c in ("column", "type", "unit", "description", "allowed values"):
        t.add_column(c)
    for c in columns(d):
        t.add_row(str(c["column"]), str(c["type"]) + (" null" if c["nullable"] else ""), str(c["unit"]),
                  str(c["description"]), str(c["allowed_values"]))
    console.print(t)
    return 0


@app.command()
def sql(text: str = typer.Argument(..., metavar='"SELECT ..."', help="a query over the warehouse's views")) -> int:
    """DuckDB over the warehouse's catalogue (rarewatch.duckdb: every dataset, *_latest, *_as_of)."""
    import polars as pl

    from flows import analyst
    from flows.settings import load_settings

    frame = analyst.sql(load_settings(), text)
    with pl.Config(tbl_rows=100, tbl_cols=20, tbl_width_chars=160, tbl_hide_dataframe_shape=False):
        print(frame)
    return 0


@server_app.command("start")
def server_start() -> int:
    """Start the local Prefect server (or say where it runs)."""
    return _server("start")


@server_app.command("stop")
def server_stop() -> int:
    """Stop the local Prefect server."""
    return _server("stop")


@server_app.command("status")
def server_status() -> int:
    """Is the local Prefect server running?"""
    return _server("status")


@sources_app.command("check")
def sources_check(source: Optional[list[str]] = SourceOpt) -> int:
    """Is each live source reachable and its layout recognised? Fetches discovery pages and one
    small sample file of the latest release (network), writes nothing; exit 1 when any is not."""
    return _sources_check(source)


def project_prefect_home() -> None:
    """Run from a source checkout, `rarewatch` keeps Prefect's state where `make run` does (the
    Makefile's PREFECT_HOME, `.prefect/` in the checkout), so `.venv/bin/rarewatch server stop`
    finds the server `make run` started and both see the same runs. An explicit PREFECT_HOME
    wins; an installed rarewatch keeps Prefect's default (~/.prefect). Before Prefect is imported."""
    checkout = Path(__file__).resolve().parents[1]
    if not os.environ.get("PREFECT_HOME") and (checkout / "Makefile").is_file() and (checkout / "pyproject.toml").is_file():
        os.environ["PREFECT_HOME"] = str(checkout / ".prefect")


def main(argv: list[str] | None = None) -> int:
    """Every failure ends as one paragraph on stderr and a non-zero exit code, never a bare
    traceback: rarewatch's own errors as they are, invalid settings naming the variable, folders
    that cannot be written naming the folder; anything unexpected with the place its traceback
    was kept. SIGTERM is handled like Ctrl-C: the run in progress publishes nothing, and a local
    Prefect server this command started is stopped."""
    global _INTERRUPTED
    if argv is None:  # the `rarewatch` command itself (tests call main with their own arguments and environment)
        project_prefect_home()
    previous = signal.signal(signal.SIGTERM, _terminated)
    command = next((a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("-")), "")
    interrupted = (f"rarewatch {command}: interrupted; the run in progress published nothing (the warehouse is as "
                   "it was before it)")
    try:
        rv = app(args=argv, prog_name="rarewatch", standalone_mode=False)
        if rv == 130:  # typer turns Ctrl-C (and our SIGTERM) into exit code 130
            _INTERRUPTED = True
            print(interrupted, file=sys.stderr)
        return rv if isinstance(rv, int) else 0
    except _USAGE_ERROR as e:
        e.show()
        return 2
    except (KeyboardInterrupt, typer.Abort):
        _INTERRUPTED = True
        print(interrupted, file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (the one place that turns every failure into a message)
        print(f"rarewatch {command}: {describe(e)}", file=sys.stderr)
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
    if isinstance(e, RuntimeError) and "Failed to reach API" in str(e):
        return (f"{e}: the Prefect API stopped answering (a loaded machine, or a server that was stopped). Nothing "
                "of the run was published. Run the command again; `rarewatch server status` shows the local server, "
                "RAREWATCH_PREFECT_STARTUP_TIMEOUT sets how long to wait for it, PREFECT_API_URL points elsewhere")
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


def _server(action: str) -> int:
    from flows import prefect_api

    try:
        if action == "start":
            print(f"Prefect API: {prefect_api.start_server()}")
        elif action == "stop":
            print("stopped" if prefect_api.stop_server() else
                  f"no rarewatch Prefect server was running (PREFECT_HOME={prefect_api.home()})")
        else:
            state = prefect_api.recorded()
            if state is None:
                print(f"no rarewatch Prefect server is running (PREFECT_HOME={prefect_api.home()}; the next command "
                      "starts one)")
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
    from flows.analyst import where_from

    inbox, network = where_from(settings, sources)
    if inbox:
        print(f"from the inbox ({settings.inbox}): {', '.join(inbox)}")
    if network:
        print(f"from the network: {', '.join(network)}")
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
    print(f"  {'report':12s} {wh.url('reports', 'latest.html')}  (opens offline)")
    print(f"  {'read me':12s} {wh.url('README.md')}  (DuckDB: {wh.url('rarewatch.duckdb')})")
    with pl.Config(tbl_rows=60, tbl_cols=12, float_precision=1, tbl_hide_dataframe_shape=True, tbl_width_chars=140,
                   tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True):
        for name, r in results.items():
            if name == "japan_customs_previous_year":
                print(f"\njapan_customs previous year re-pulled: {r['rows_written']} rows")
                continue
            if name == "alerts":
                new = r.get("new") or []
                print(f"\nalerts: {r.get('rows', 0)} in indicators/alerts, {len(new)} new this run")
                for a in new[:15]:
                    print(f"  [{a['kind']}] {a['message']}")
                if len(new) > 15:
                    print(f"  ... and {len(new) - 15} more")
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
