"""rarewatch at full scale: ingest, backfill, indicators and a one-off refresh, measured in one run.

    python benchmarks/run.py            # 1988-2025, full size (about 10 minutes, 1.4 GB of CSV)
    python benchmarks/run.py --quick    # small sizes, under 3 minutes

Every measurement runs in a fresh process (this script started again with `--task`), so its
peak RSS is its own; wall and CPU (user + system, all threads) come from `os.wait4`, and each
task also reports the time of its measured section alone. Prints a table and writes it, with
the machine's description, to benchmarks/results.md (benchmarks/results-quick.md with --quick).
Data: benchmarks/generate.py (official 45-column layout, chapter-block files, both flows), kept
under --data between runs. Asserts nothing: the targets are printed next to the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

MB = 1024 * 1024


# ------------------------------------------------------------------------------------------ tasks
# Each runs in its own process and prints one JSON line: {"section_s": ..., "section_cpu_s": ..., ...}.

def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _files(inbox: Path, years: list[int]) -> list[Path]:
    return sorted(p for p in (inbox / "japan_customs").iterdir() if int(p.name[:4]) in years)


def task_ingest(kind: str, inbox: Path, years: list[int], out: Path) -> dict:
    """One way of reading the releases of `years`, keeping the catalogue's rows, writing Parquet."""
    import polars as pl

    from flows.catalogue import Catalogue

    files = _files(inbox, years)
    hs6 = Catalogue.load().hs6_codes
    t, c = time.perf_counter(), _cpu()
    if kind == "rarewatch":  # parse, validate (pandera) and publish, as the pipeline lands a batch
        os.environ["RAREWATCH_WAREHOUSE"] = str(out)
        from flows import pipeline
        from flows.settings import Settings
        from flows.sources import ReleaseFile, registry

        source = registry()["japan_customs"]
        refs = [pipeline.Fetched(ReleaseFile("japan_customs", p.name, p.resolve().as_uri())) for p in files]
        report = pipeline.land(Settings(), source, refs, Catalogue.load())
        rows = report.rows_written
    elif kind == "polars":  # bare polars: one lazy scan, filter to the catalogue, unpivot, write
        measures = [c for c in pl.scan_csv(files[0], infer_schema=False).collect_schema().names()
                    if c.startswith(("Quantity", "Value")) and not c.endswith("-Year")]
        lf = (pl.scan_csv(files, infer_schema=False)
              .filter(pl.col("HS").str.strip_chars("'").str.slice(0, 6).is_in(hs6))
              .unpivot(index=["Exp or Imp", "Year", "HS", "Country", "Unit1", "Unit2"], on=measures)
              .with_columns(pl.col("value").cast(pl.Int64))
              .filter(pl.col("value") != 0))
        out.mkdir(parents=True, exist_ok=True)
        lf.sink_parquet(out / "bare.parquet")
        rows = pl.scan_parquet(out / "bare.parquet").select(pl.len()).collect().item()
    elif kind == "pandas":  # a straightforward pandas version of the same
        import pandas as pd

        keep = set(hs6)
        parts = []
        for p in files:
            df = pd.read_csv(p, dtype=str, encoding="utf-8-sig")
            df = df[df["HS"].str.strip("'").str[:6].isin(keep)]
            measures = [c for c in df.columns if c.startswith(("Quantity", "Value")) and not c.endswith("-Year")]
            long = df.melt(id_vars=["Exp or Imp", "Year", "HS", "Country", "Unit1", "Unit2"], value_vars=measures)
            long["value"] = pd.to_numeric(long["value"])
            parts.append(long[long["value"] != 0])
        out.mkdir(parents=True, exist_ok=True)
        frame = pd.concat(parts, ignore_index=True)
        frame.to_parquet(out / "pandas.parquet")
        rows = len(frame)
    else:
        raise SystemExit(f"unknown ingest kind {kind}")
    return {"section_s": time.perf_counter() - t, "section_cpu_s": _cpu() - c, "rows": rows,
            "mb": sum(p.stat().st_size for p in files) / 1e6}


def task_indicators(warehouse: Path) -> dict:
    """Every indicator over the whole clean history, as a run recomputes them."""
    os.environ["RAREWATCH_WAREHOUSE"] = str(warehouse)
    from flows import pipeline
    from flows.catalogue import Catalogue
    from flows.settings import Settings
    from flows.sources import registry

    settings, cat = Settings(), Catalogue.load()
    t, c = time.perf_counter(), _cpu()
    counts = pipeline.compute_indicators(settings, registry()["japan_customs"], cat, full=True)
    counts.update(pipeline.compute_reserves(settings, cat))
    counts["mirror_gaps"] = pipeline.compute_mirror_gaps(settings, cat)
    return {"section_s": time.perf_counter() - t, "section_cpu_s": _cpu() - c, "rows": sum(counts.values())}


def task_indicators_update(warehouse: Path) -> dict:
    """The indicators of a monthly refresh that landed one month: the stored state is told that the
    newest month changed (what landing it would record), then the indicators update themselves
    (only the windows holding that month are recomputed and merged in)."""
    os.environ["RAREWATCH_WAREHOUSE"] = str(warehouse)
    import json

    from flows import pipeline
    from flows.catalogue import Catalogue
    from flows.indicators import IMPORT_DEPENDENCY, PARTNER_SHARES, dependency
    from flows.settings import Settings
    from flows.sources import registry
    from flows.warehouse import Warehouse

    settings, cat = Settings(), Catalogue.load()
    wh = Warehouse(settings.warehouse)
    for spec in (PARTNER_SHARES, IMPORT_DEPENDENCY):
        rel = spec.partition_path({"source": "japan_customs"}) + "/part-0.parquet"
        meta, _ = wh.parquet_footer(rel)
        doc = json.loads(meta[dependency.STATE_KEY])
        doc["months"][max(doc["months"])] = "changed"
        wh.publish({rel: wh.read_parquet(rel)}, metadata={dependency.STATE_KEY: json.dumps(doc)})
    t, c = time.perf_counter(), _cpu()
    counts = pipeline.compute_indicators(settings, registry()["japan_customs"], cat)
    counts.update(pipeline.compute_reserves(settings, cat))
    counts["mirror_gaps"] = pipeline.compute_mirror_gaps(settings, cat)
    return {"section_s": time.perf_counter() - t, "section_cpu_s": _cpu() - c, "rows": sum(counts.values())}


def task_noop() -> dict:
    """A Prefect flow that does nothing, through the same Prefect API choice as the CLI."""
    from flows.prefect_api import ensure_api

    ensure_api()
    from prefect import flow

    @flow(name="noop")
    def noop() -> int:
        return 0

    t, c = time.perf_counter(), _cpu()
    noop()
    return {"section_s": time.perf_counter() - t, "section_cpu_s": _cpu() - c, "rows": 0}


TASKS = {"ingest": task_ingest, "indicators": task_indicators, "indicators-update": task_indicators_update,
         "noop": task_noop}


# ------------------------------------------------------------------------------------------ runner
def measure(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run a command in a fresh process: wall, CPU (user + system of it and the children it
    waited for) and peak RSS, from `os.wait4` on that process alone."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    result = {"wall_s": wall, "rc": proc.returncode, "cpu_s": usage.ru_utime + usage.ru_stime,
              "peak_rss_mb": usage.ru_maxrss / 1024}
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            result.update(json.loads(line))
            break
    if proc.returncode != 0:
        result["error"] = (stderr or stdout)[-2000:]
    return result


def run_task(name: str, *args: str) -> dict:
    return measure([sys.executable, str(Path(__file__)), "--task", name, *args])


def cli(*args: str, env: dict[str, str]) -> dict:
    return measure([str(Path(sys.executable).parent / "rarewatch"), *args], env=env)


def machine() -> str:
    import polars as pl
    import prefect

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB; "
            f"Python {platform.python_version()}, polars {pl.__version__}, Prefect {prefect.__version__}; "
            f"load average at start {load}")


def link_inbox(src: Path, dst: Path, years: list[int]) -> Path:
    """An inbox holding only `years` (hard links: no copy)."""
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "japan_customs").mkdir(parents=True)
    for p in _files(src, years):
        os.link(p, dst / "japan_customs" / p.name)
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="rarewatch benchmarks (prints a table, writes benchmarks/results.md)")
    p.add_argument("--quick", action="store_true", help="small sizes, under 3 minutes")
    p.add_argument("--data", type=Path, default=None, help="where generated releases are kept (default: benchmarks/.data)")
    p.add_argument("--task", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.task:
        name, *args = a.task
        fn = TASKS[name]
        if name == "ingest":
            kind, inbox, years, out = args
            res = fn(kind, Path(inbox), [int(y) for y in years.split(",")], Path(out))
        else:
            res = fn(*[Path(x) for x in args])
        print(json.dumps(res))
        return 0

    first, last = (2018, 2025) if a.quick else (1988, 2025)
    n_codes = 3000 if a.quick else 9000
    years = list(range(first, last + 1))
    data = (a.data or HERE / ".data") / ("quick" if a.quick else "full")
    marker = data / f"generated-{first}-{last}-{n_codes}.ok"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        t = time.perf_counter()
        # in a child: this process stays small, since a child's peak RSS counts the parent's at fork
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(data / "inbox"), "--years",
                        f"{first}-{last}", "--codes", str(n_codes)], check=True, cwd=REPO)
        marker.write_text("")
        print(f"generated {first}-{last} ({n_codes} codes) in {time.perf_counter() - t:.0f} s")
    inbox = data / "inbox"
    work = data / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    home = work / "prefect_home"
    prefect_env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                   "PREFECT_LOGGING_LEVEL": "WARNING"}
    os.environ.update(prefect_env)
    os.environ.pop("PREFECT_API_URL", None)
    rows: list[dict] = []

    def record(group: str, what: str, res: dict, *, mb: float | None = None, target: str = "", years_n: int = 0) -> dict:
        res = {"group": group, "what": what, "target": target, "years": years_n, **res}
        if mb is None:
            mb = res.get("mb")
        res["mb_s"] = (mb / res["wall_s"]) if mb else None
        rows.append(res)
        flag = "" if res.get("rc", 0) == 0 else f"  FAILED: {res.get('error', '')[-300:]}"
        print(f"{group:10s} {what:52s} wall {res['wall_s']:7.1f} s  cpu {res['cpu_s']:7.1f} s  "
              f"rss {res['peak_rss_mb']:6.0f} MB{flag}", flush=True)
        return res

    # (a) ingest: one year and five years, rarewatch against bare polars and pandas
    one, five = [years[-1]], years[-5:]
    for label, ys in (("1 year", one), ("5 years", five)):
        for kind in ("polars", "rarewatch", "pandas"):
            res = run_task("ingest", kind, str(inbox), ",".join(map(str, ys)), str(work / f"ingest_{kind}_{len(ys)}"))
            record("ingest", f"{label}: {kind}", res, years_n=len(ys))

    # The one-off Prefect cost: a no-op flow, Prefect's temporary server against the reused one.
    record("prefect", "no-op flow, Prefect's temporary server (fresh process)",
           measure([sys.executable, str(Path(__file__)), "--task", "noop"], env={"RAREWATCH_PREFECT": "ephemeral"}))
    t = time.perf_counter()
    start = cli("server", "start", env={})
    record("prefect", "start the reused local server (once)", {**start, "wall_s": time.perf_counter() - t})
    noop = record("prefect", "no-op flow, reused local server (fresh process)", run_task("noop"))

    # (b) backfill through the flow (the CLI, fresh processes): 1, 5 and all years; parallel; unchanged
    for label, ys in (("1 year", one), ("5 years", five), (f"{len(years)} years", years)):
        box = link_inbox(inbox, work / f"inbox_{len(ys)}", ys)
        res = cli("backfill", f"{ys[0]}-01", f"{ys[-1]}-12", "--parallel", "1",
                  env={"RAREWATCH_INBOX": str(box), "RAREWATCH_WAREHOUSE": str(work / f"wh_seq_{len(ys)}")})
        mb = sum(f.stat().st_size for f in (box / "japan_customs").iterdir()) / 1e6
        record("backfill", f"{label}, sequential", res, mb=mb, years_n=len(ys),
               target="<= 180 s, < 1024 MB" if len(ys) == len(years) and not a.quick else "< 1024 MB")
    full_box = work / f"inbox_{len(years)}"
    mb_all = sum(f.stat().st_size for f in (full_box / "japan_customs").iterdir()) / 1e6
    res = cli("backfill", f"{years[0]}-01", f"{years[-1]}-12", "--parallel", "2",
              env={"RAREWATCH_INBOX": str(full_box), "RAREWATCH_WAREHOUSE": str(work / "wh_parallel")})
    record("backfill", f"{len(years)} years, parallel 2", res, mb=mb_all, years_n=len(years),
           target="<= 180 s, < 1024 MB" if not a.quick else "< 1024 MB")
    res = cli("backfill", f"{years[0]}-01", f"{years[-1]}-12", "--parallel", "2",
              env={"RAREWATCH_INBOX": str(full_box), "RAREWATCH_WAREHOUSE": str(work / "wh_parallel")})
    record("backfill", f"{len(years)} years again, nothing changed", res, mb=mb_all, years_n=len(years),
           target="<= 20 s" if not a.quick else "")

    # (c) every indicator over the full history
    record("indicators", f"every indicator over {len(years)} years", run_task("indicators", str(work / f"wh_seq_{len(years)}")),
           target="<= 2 s (section)")
    record("indicators", "indicators after one month landed (update)",
           run_task("indicators-update", str(work / f"wh_seq_{len(years)}")))

    # (d) a one-off monthly refresh of one year, end to end, against the no-op flow
    box = link_inbox(inbox, work / "inbox_refresh", one)
    refresh = record("refresh", "rarewatch refresh, 1 year inbox (fresh process)",
                     cli("refresh", env={"RAREWATCH_INBOX": str(box), "RAREWATCH_WAREHOUSE": str(work / "wh_refresh")}),
                     target=f"<= no-op + 10 s ({noop['wall_s'] + 10:.1f} s)", years_n=1)
    cli("server", "stop", env={})

    write_results(rows, a.quick, noop, refresh)
    return 0


def _num(x: float | None, digits: int) -> str:
    return "" if not x else f"{x:.{digits}f}"


def write_results(rows: list[dict], quick: bool, noop: dict, refresh: dict) -> None:
    by = {r["what"]: r for r in rows}

    def ratio(a: str, b: str, key: str = "section_cpu_s") -> str:
        x, y = by.get(a, {}).get(key), by.get(b, {}).get(key)
        return f"{x / y:.2f}x" if x and y else "-"

    lines = [f"# rarewatch benchmarks{' (--quick)' if quick else ''}", "",
             f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `python benchmarks/run.py{' --quick' if quick else ''}`.",
             f"Machine: {machine()}.", "",
             "Each line is a fresh process. wall and CPU (user + system, every thread and child) of the whole",
             "process; `section` is the measured work alone (no imports, no start-up); peak RSS of the process.", "",
             "| group | what | wall s | CPU s | section s | section CPU s | MB/s | peak RSS MB | target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        sec = r.get("section_s")
        lines.append(f"| {r['group']} | {r['what']}{' (FAILED)' if r.get('rc', 0) else ''} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {'' if sec is None else f'{sec:.2f}'} | "
                     f"{'' if r.get('section_cpu_s') is None else format(r['section_cpu_s'], '.2f')} | "
                     f"{_num(r.get('mb_s'), 0)} | {r['peak_rss_mb']:.0f} | {r['target']} |")
    lines += ["", "## Ratios", ""]
    for label in ("1 year", "5 years"):
        lines.append(f"- ingest {label}: rarewatch / bare polars CPU {ratio(f'{label}: rarewatch', f'{label}: polars')} "
                     f"(target <= 1.25x); pandas / rarewatch CPU {ratio(f'{label}: pandas', f'{label}: rarewatch')} "
                     "(target >= 5x)")
    per_year = [r for r in rows if r["group"] == "backfill" and r["what"].endswith("sequential")]
    lines.append("- backfill cost per year (sequential, wall): "
                 + ", ".join(f"{r['years']} years {r['wall_s'] / r['years']:.1f} s" for r in per_year))
    lines.append(f"- refresh against the no-op flow: {refresh['wall_s'] - noop['wall_s']:+.1f} s wall "
                 "(target <= +10 s)")
    eph = by.get("no-op flow, Prefect's temporary server (fresh process)")
    if eph:
        lines.append(f"- no-op flow: {eph['wall_s']:.1f} s wall / {eph['cpu_s']:.1f} s CPU with Prefect's temporary "
                     f"server, {noop['wall_s']:.1f} s / {noop['cpu_s']:.1f} s with the reused one")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    target = HERE / ("results-quick.md" if quick else "results.md")
    notes = HERE / "results-notes.md"
    if notes.exists():  # the profiles and explanations kept by hand beside the generated table
        text += "\n" + notes.read_text()
    target.write_text(text)
    print(f"written to {target}")


if __name__ == "__main__":
    sys.exit(main())
