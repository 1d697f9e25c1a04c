"""The fault suite: rarewatch tried as a hostile tester would, with figures.

    python -m tests.fault_report            # everything (about 8 minutes on 2 cores)
    python -m tests.fault_report --quick    # the fast part (also run by `make test`)

Classes replayed (issue 10), each against the real code:
- HTTP faults: every kind in `KINDS` (>= 19) on every live route (e-Stat files, e-Stat API,
  China Customs, UN Comtrade, METI), served by a local server in the live sites' shapes (the
  pages of tests/test_sources_check.py and tests/test_estat_api.py); on the data request and, in
  the full run, on the discovery request too. A route first lands its release (the baseline);
  every fault must then end in a rarewatch message naming the source, leave the clean data as it
  was, and leak no canary.
- Malformed inputs (`tests/fault_inputs.py`, >= 80): each with its policy (refused, rows
  quarantined, or landed as a tolerated variant); a file is landed into a fresh warehouse.
- SIGKILL at every write step of a run (stage, inside a staged write, rename, journal) in a child
  process; the warehouse must then hold the run's before or after state, never a mix, and a re-run
  must end identical to an uninterrupted one. The full run also kills the real CLI.
- Concurrent runs with different inputs, compared with the same runs one after the other.
- A full disk (a 4 MiB tmpfs) and a read-only warehouse (a read-only bind mount): skipped, and
  said, where this machine does not allow mounts (it needs root).
- Canaries: a canary API key and a canary stock figure, searched in every file written, in the
  messages and logs, and (full run) in Prefect's database and the CLI's console output.

Printed figures, one per line: `faults injected`, `inputs tried`, `kills survived`, `rows lost`,
`rows duplicated`, `canaries leaked`, `bare tracebacks`; then `policy mismatches` and the
classes that were skipped. Exit code 1 when any figure that must be 0 is not.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for p in (str(REPO), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

import flows  # noqa: E402,F401  (Prefect's no-telemetry defaults first)

CANARY_KEY = "CANARY-KEY-7f3a9c2e51d0"
CANARY_STOCK = 7777.4321  # tonnes: appears nowhere else


@dataclass
class Tally:
    faults: int = 0
    inputs: int = 0
    kills: int = 0
    kills_survived: int = 0
    rows_lost: int = 0
    rows_duplicated: int = 0
    canaries_leaked: int = 0
    bare_tracebacks: int = 0
    policy_mismatches: int = 0
    lines: list[str] = field(default_factory=list)  # what each class did
    problems: list[str] = field(default_factory=list)  # every failure of the above, explained
    skipped: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def figures(self) -> list[str]:
        return [f"faults injected: {self.faults}", f"inputs tried: {self.inputs}",
                f"kills survived: {self.kills_survived} of {self.kills}", f"rows lost: {self.rows_lost}",
                f"rows duplicated: {self.rows_duplicated}", f"canaries leaked: {self.canaries_leaked}",
                f"bare tracebacks: {self.bare_tracebacks}", f"policy mismatches: {self.policy_mismatches}"]

    @property
    def ok(self) -> bool:
        return not (self.rows_lost or self.rows_duplicated or self.canaries_leaked or self.bare_tracebacks
                    or self.policy_mismatches or self.kills_survived != self.kills)


# ----------------------------------------------------------------------------- shared helpers
@contextlib.contextmanager
def environment(**values: object):
    """RAREWATCH_* settings for a block (the settings object reads the environment)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAREWATCH_")}
    for k in saved:
        del os.environ[k]
    os.environ.update({f"RAREWATCH_{k.upper()}": str(v) for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("RAREWATCH_")]:
            del os.environ[k]
        os.environ.update(saved)


class Captured(logging.Handler):
    """Every log record of the process, formatted: searched for canaries."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.text: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("werkzeug"):  # the local test server's own access log
            return
        with contextlib.suppress(Exception):
            self.text.append(self.format(record))


def fingerprint(root: Path) -> Counter:
    """Row hashes of every published Parquet file (clean, indicators, manifests), time columns
    left out: two warehouses with the same rows have the same fingerprint."""
    import polars as pl

    rows: Counter = Counter()
    for f in sorted(root.rglob("*.parquet")):
        rel = f.relative_to(root).as_posix()
        if rel.startswith(("_staging", "quarantine/")) or "/files/" in rel:
            continue
        frame = pl.read_parquet(f)
        if rel.startswith("raw/") and "status" in frame.columns:  # a refused file's entry is evidence, not data
            frame = frame.filter(pl.col("status").is_in(["published", "skipped"]))
        frame = frame.select([c for c, t in frame.schema.items() if not isinstance(t, (pl.Datetime,))])
        # paths of the warehouse itself (raw_path in manifests) are the same wherever it lies
        frame = frame.with_columns(pl.col(c).str.replace(r"^file://.*?/(raw|clean|indicators|quarantine)/", "<root>/$1/")
                                   for c, t in frame.schema.items() if t == pl.String)
        dataset = re.sub(r"/[^/]*=[^/]*", "", rel.rsplit("/", 1)[0])
        if frame.height:
            for h in frame.hash_rows(seed=7).to_list():
                rows[(dataset, h)] += 1
    return rows


def compare(before: Counter, after: Counter) -> tuple[int, int]:
    """(rows lost, rows duplicated or added) from `before` to `after`."""
    return sum((before - after).values()), sum((after - before).values())


def leaks(texts: list[str], roots: list[Path], needles: list[bytes]) -> list[str]:
    """Where any needle appears: in the texts or in any file under the roots."""
    found = []
    for t in texts:
        for n in needles:
            text = n.decode("utf-8", errors="ignore")
            if len(text) >= 6 and text in t:  # binary needles (a packed double) are for files only
                found.append(f"text: ...{t[max(0, t.find(text) - 60):t.find(text) + 40]}...")
    for root in roots:
        if not root.exists():
            continue
        for f in root.rglob("*"):
            if f.is_file() and not f.is_symlink():
                data = f.read_bytes()
                for n in needles:
                    if n in data:
                        found.append(f"file {f}")
    return found


# ----------------------------------------------------------------------------- HTTP faults
def _kinds() -> dict:
    from werkzeug import Response

    def slow(_request):
        def trickle():
            for _ in range(60):
                time.sleep(0.2)
                yield b"a"
        return Response(trickle(), direct_passthrough=True)

    def hang(_request):
        time.sleep(2.5)
        return Response("late", 200)

    def endless(_request):
        def chunks():
            for _ in range(40):
                yield b"z" * 2**20
        return Response(chunks(), direct_passthrough=True)

    def echo(request, route):
        if route == "e-Stat API":
            body = {"GET_STATS_DATA": {"RESULT": {"STATUS": 100, "ERROR_MSG": f"appId={CANARY_KEY} は無効です {CANARY_KEY}"}}}
            return Response(json.dumps(body, ensure_ascii=False), content_type="application/json")
        if route == "UN Comtrade":
            return Response(json.dumps({"count": 0, "data": None, "error": f"Invalid key {CANARY_KEY}"}),
                            content_type="application/json")
        return Response(f"<html><body>error for appId={CANARY_KEY}: {CANARY_KEY}</body></html>", 500)

    bomb = gzip.compress(b"\0" * 64 * 2**20)
    garbage = random.Random(1).randbytes(4096)
    return {
        "connection refused": None,  # the route's base URL points at a closed port
        "HTTP 500": lambda r, route: Response("internal error", 500),
        "HTTP 502": lambda r, route: Response("bad gateway", 502),
        "HTTP 503, Retry-After 6 h": lambda r, route: Response("busy", 503, headers={"Retry-After": "21600"}),
        "HTTP 429, Retry-After 6 h": lambda r, route: Response("Rate limit is exceeded", 429, headers={"Retry-After": "21600"}),
        "HTTP 404": lambda r, route: Response("not found", 404),
        "HTTP 403": lambda r, route: Response("forbidden", 403),
        "HTTP 401 echoing the key": lambda r, route: Response(json.dumps({"statusCode": 401, "message": f"Access denied: {CANARY_KEY}"}), 401),
        "empty 200": lambda r, route: Response(b"", 200),
        "truncated body": lambda r, route: Response(b"<html>partial", headers={"Content-Length": "100000"}, direct_passthrough=True),
        "body at 5 bytes/s": lambda r, route: slow(r),
        "no answer for 2.5 s": lambda r, route: hang(r),
        "declares 10 GiB": lambda r, route: Response(b"x", headers={"Content-Length": str(10 * 2**30)}, direct_passthrough=True),
        "endless stream": lambda r, route: endless(r),
        "gzip bomb": lambda r, route: Response(bomb, headers={"Content-Encoding": "gzip"}),
        "maintenance page": lambda r, route: Response("<html><body><h1>システムメンテナンス中</h1></body></html>",
                                                       content_type="text/html; charset=utf-8"),
        "binary garbage": lambda r, route: Response(garbage, content_type="application/octet-stream"),
        "redirect loop": lambda r, route: Response("", 302, headers={"Location": r.path}),
        "redirect to another host": lambda r, route: Response("", 302, headers={"Location": "http://127.0.0.2:9/x"}),
        "error text echoing the key": echo,
        "another document shape": lambda r, route: Response(json.dumps({"unexpected": [1, 2, 3]}) if route in (
            "e-Stat API", "UN Comtrade") else "<html><table><tr><td>1</td></tr></table></html>",
            content_type="application/json" if route in ("e-Stat API", "UN Comtrade") else "text/html"),
    }


class Site:
    """One local server answering as the five live routes do; a fault replaces the answer of
    the requests whose path starts with `target`."""

    def __init__(self) -> None:
        from pytest_httpserver import HTTPServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # its access log would print every request
        self.server = HTTPServer(threaded=True)
        self.routes: dict[str, object] = {}
        self.fault = None
        self.target: str | None = None
        self.route: str | None = None
        self.server.expect_request(re.compile(r"^/.*")).respond_with_handler(self.handle)
        self.server.start()

    def url(self, path: str = "") -> str:
        return self.server.url_for(path).rstrip("/") if not path else self.server.url_for(path)

    # the interface test helpers expect of pytest-httpserver (expect_request(...).respond_with_*)
    def expect_request(self, path: str, **_kw):
        site = self

        class Responder:
            def respond_with_handler(self, fn):
                site.routes[path] = fn

            def respond_with_data(self, body, status=200, content_type=None, headers=None):
                from werkzeug import Response

                site.routes[path] = lambda r: Response(body, status, headers=headers, content_type=content_type)

            def respond_with_json(self, obj, status=200):
                self.respond_with_data(json.dumps(obj), status, "application/json")
        return Responder()

    def handle(self, request):
        from werkzeug import Response

        if self.fault is not None and self.target and request.path.startswith(self.target):
            return self.fault(request, self.route)
        fn = self.routes.get(request.path)
        if fn is None:
            return Response("not found", 404)
        return fn(request)

    def stop(self) -> None:
        self.server.stop()


def build_site() -> tuple[Site, dict]:
    """The five routes with their happy answers, and per route: source, period, settings, the
    data request and the discovery request."""
    from comtrade_server import ComtradeStandIn
    from conftest import SAMPLES
    from test_comtrade import record
    from test_estat_api import TABLE_INF, TRADE, EstatApiStandIn, values
    from test_estat_files import serve_estat
    from test_gacc import imports_page, page
    from test_sources_check import gacc_index

    site = Site()
    serve_estat(site)
    # e-Stat API (test_estat_api's stand-in, the documented getMetaInfo/getStatsData shapes), key = canary
    import test_estat_api

    test_estat_api.APP_ID = CANARY_KEY
    api = EstatApiStandIn({"0003313966": values(TRADE), "0003313965": values([("850511000", 304, "", "KG", {1: (0, 5, 10)})])},
                          tables={"0003313966": TABLE_INF})
    for m in ("getMetaInfo", "getStatsData", "getStatsList"):
        site.expect_request(f"/rest/3.0/app/json/{m}").respond_with_handler(api)
    # China Customs: the preliminary index and table (5)/(6) pages (test_sources_check, test_gacc)
    site.expect_request("/statics/report/preliminary2020.html").respond_with_data(gacc_index(), content_type="text/html; charset=utf-8")
    july = "(5) China's Major Exports by Quantity and Value, July 2020 (in CNY)"
    for cur in ("CNY", "USD"):
        site.expect_request(f"/Statics/t5-{cur}-7.html").respond_with_data(
            page(title=july.replace("CNY", cur), banner=f"Value Unit: {cur} 100 Million",
                 groups=("July", "Jan-Jul in Total", "Jan-Jul 2019 in Total", "Year-on-Year ±%")), content_type="text/html")
        site.expect_request(f"/Statics/t6-{cur}-7.html").respond_with_data(imports_page("July"), content_type="text/html")
    # UN Comtrade: the data endpoint, key checked (comtrade_server), a few records in the API's shape
    records = [record(refYear=2019, period="2019", partnerCode=p, cmdCode=c, primaryValue=v, netWgt=w)
               for p, c, v, w in ((156, "280530", 5_000.0, 100.0), (704, "280530", 900.0, 20.0), (156, "850511", 700.0, 3.0))]
    site.expect_request("/data/v1/get/C/A/HS").respond_with_handler(ComtradeStandIn(records, key=CANARY_KEY))
    # METI: the results page -> the year's page -> the workbook (the bundled 2019-01 sample)
    base = "/statistics/coal_and_minerals/cm002"
    site.expect_request(f"{base}/results.html").respond_with_data(
        f"<html><a href='{base}/h31.html'>平成31年</a></html>", content_type="text/html; charset=utf-8")
    site.expect_request(f"{base}/h31.html").respond_with_data(
        f"<html><a href='{base}/xls/201901.xlsx'>平成31年1月分</a></html>", content_type="text/html; charset=utf-8")
    workbook = (SAMPLES / "meti" / "meti_jukyu_201901_constructed_v20190228.xlsx").read_bytes()
    site.expect_request(f"{base}/xls/201901.xlsx").respond_with_data(workbook, content_type="application/vnd.ms-excel")

    b = site.url()
    routes = {
        "e-Stat files": dict(source="japan_customs", period="2020-07", data="/stat-search/file-download",
                             discovery="/stat-search/files", settings=dict(estat_base_url=b)),
        "e-Stat API": dict(source="japan_customs", period="2020-07", data="/rest/3.0/app/json/getStatsData",
                           discovery="/rest/3.0/app/json/getMetaInfo",
                           settings=dict(estat_api_base_url=f"{b}/rest/3.0/app/json", estat_app_id=CANARY_KEY)),
        "China Customs": dict(source="gacc", period="2020-07", data="/Statics/t5-", discovery="/statics/report/",
                              settings=dict(gacc_base_url=b)),
        "UN Comtrade": dict(source="comtrade", period="2019", data="/data/v1/get/", discovery=None,
                            settings=dict(comtrade_base_url=b, comtrade_api_key=CANARY_KEY, comtrade_min_interval=0)),
        "METI": dict(source="meti", period="2019-01", data=f"{base}/xls/", discovery=f"{base}/results.html",
                     settings=dict(meti_base_url=b)),
    }
    return site, routes


FAST_LIMITS = dict(http_retries=1, http_backoff=0, retry_after_cap=0.2, http_timeout=1, request_deadline=2,
                   max_download_mb=4, task_retries=0)


def run_route(route: dict) -> object:
    """Find, fetch and land one route's release with the plain functions the flows call."""
    from flows import pipeline
    from flows.catalogue import Catalogue
    from flows.httpclient import session
    from flows.periods import parse_period
    from flows.settings import load_settings
    from flows.sources import registry

    settings = load_settings()
    source = registry()[route["source"]]
    period = parse_period(route["period"])
    http = session(settings, source.name)
    refs = pipeline.find_releases(settings, source, period, http)
    fetched = [pipeline.fetch_release(settings, source, ref, http) for ref in refs]
    return pipeline.land(settings, source, fetched, Catalogue.load(), period)


def http_faults(tally: Tally, work: Path, quick: bool) -> None:
    from flows.errors import RarewatchError

    kinds = _kinds()
    site, routes = build_site()
    capture = Captured()
    logging.getLogger().addHandler(capture)
    logging.getLogger().setLevel(logging.DEBUG)
    per_route: Counter = Counter()
    try:
        for name, route in routes.items():
            wh = work / "http" / re.sub(r"\W+", "_", name) / "warehouse"
            env = dict(warehouse=wh, inbox=None, **FAST_LIMITS, **route["settings"])
            site.fault = None
            with environment(**env):
                report = run_route(route)
            base_rows = report.rows_written  # type: ignore[attr-defined]
            if not base_rows:
                tally.problem(f"{name}: the baseline landed no rows")
            before = fingerprint(wh)
            targets = [route["data"]] + ([route["discovery"]] if route["discovery"] and not quick else [])
            for kind, make in kinds.items():
                for target in (targets if make is not None else [None]):
                    tally.faults += 1
                    per_route[name] += 1
                    capture.text.clear()
                    site.fault, site.target, site.route = make, target, name
                    settings = dict(env)
                    if make is None:
                        settings.update({k: "http://127.0.0.1:9" + (v.split(site.url(), 1)[1] if site.url() in str(v) else "")
                                         for k, v in route["settings"].items() if str(v).startswith("http")})
                    message, outcome = "", "landed"
                    with environment(**settings):
                        try:
                            run_route(route)
                        except RarewatchError as e:
                            outcome, message = "refused", str(e)
                        except Exception as e:  # noqa: BLE001
                            outcome, message = "traceback", "".join(traceback.format_exception(e))
                    site.fault = None
                    what = f"{name} / {kind}" + (f" on {target}" if target else "")
                    if outcome == "traceback":
                        tally.bare_tracebacks += 1
                        tally.problem(f"{what}: not a rarewatch message:\n{message[-1500:]}")
                    elif outcome == "landed":
                        tally.policy_mismatches += 1
                        tally.problem(f"{what}: accepted without a word")
                    elif route["source"] not in message or "http://" not in message:
                        tally.policy_mismatches += 1
                        tally.problem(f"{what}: the message does not name the source and the URL: {message[:300]}")
                    lost, dup = compare(before, fingerprint(wh))
                    tally.rows_lost += lost
                    tally.rows_duplicated += dup
                    if lost or dup:
                        changed = sorted({k[0] for k in (fingerprint(wh) - before) + (before - fingerprint(wh))})
                        tally.problem(f"{what}: {lost} row(s) lost, {dup} added to the clean data ({changed})")
                        before = fingerprint(wh)
                    found = leaks([message, *capture.text], [wh], [CANARY_KEY.encode()])
                    if found:
                        tally.canaries_leaked += len(found)
                        tally.problem(f"{what}: canary key found in " + "; ".join(found[:3]))
    finally:
        logging.getLogger().removeHandler(capture)
        site.stop()
    tally.lines.append(f"HTTP: {len(kinds)} fault kinds x {len(routes)} routes "
                       f"({', '.join(f'{n}: {c}' for n, c in per_route.items())})"
                       + ("" if quick else ", data and discovery requests"))


# ----------------------------------------------------------------------------- malformed inputs
def malformed_inputs(tally: Tally, work: Path) -> None:
    from fault_inputs import INPUTS, POLICY, try_input

    outcomes: Counter = Counter()
    for i, case in enumerate(INPUTS):
        tally.inputs += 1
        root = work / "inputs" / f"{i:03d}"
        got, message, lost, leaked = try_input(case, root)
        outcomes[got] += 1
        if got == "traceback":
            tally.bare_tracebacks += 1
            tally.problem(f"input {case.source}/{case.name}: not a rarewatch message:\n{message[-1500:]}")
        elif got != case.policy:
            tally.policy_mismatches += 1
            tally.problem(f"input {case.source}/{case.name}: expected {case.policy}, got {got}: {message[:400]}")
        elif got == "refused" and case.file_named and case.file_named not in message:
            tally.policy_mismatches += 1
            tally.problem(f"input {case.source}/{case.name}: the message does not name the file: {message[:300]}")
        tally.rows_lost += lost
        if leaked:
            tally.canaries_leaked += leaked
            tally.problem(f"input {case.source}/{case.name}: the stock canary reached a public file")
    tally.lines.append(f"inputs: {len(INPUTS)} ({', '.join(f'{k}: {v}' for k, v in sorted(outcomes.items()))}); "
                       f"policy: {POLICY}")


# ----------------------------------------------------------------------------- kills
KILL_CHILD = r"""
import os, signal, sys
from pathlib import Path
sys.path[:0] = [sys.argv[4], sys.argv[4] + "/tests"]
import flows.warehouse as w

kill_at = int(sys.argv[2])
count = [0]

def step(label):
    count[0] += 1
    if count[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

real_stage, real_commit, real_write_now, real_apply = w.Transaction.stage, w.Warehouse._commit, w.Warehouse._write_now, w._apply

def stage(self, rel, data):
    step("before stage")
    if count[0] + 1 == kill_at:  # inside the staged write: half the bytes on disk, then killed
        tmp = self.wh.path(f"{w.STAGING}/{self.id}/{rel}.staged.half")
        self.wh.fs.create_dir(tmp.rsplit("/", 1)[0], recursive=True)
        with self.wh.fs.open_output_stream(tmp) as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    count[0] += 1
    real_stage(self, rel, data)
    step("after stage")

def commit(self, tmp, final):
    step("before rename")
    real_commit(self, tmp, final)
    step("after rename")

def write_now(self, rel, data):
    step("before direct write")
    real_write_now(self, rel, data)

def apply(wh, moves, deletes):
    step("journal written")
    real_apply(wh, moves, deletes)
    step("renames done, journal not removed")

w.Transaction.stage, w.Warehouse._commit, w.Warehouse._write_now, w._apply = stage, commit, write_now, apply

from flows import pipeline
from flows.catalogue import Catalogue
from flows.settings import load_settings
from flows.sources import inbox_files, registry
settings = load_settings()
cat = Catalogue.load()
wh = w.Warehouse(settings.warehouse)
with wh.transaction("fault-report run"):
    for name in sys.argv[3].split(","):
        source = registry()[name]
        refs = inbox_files(source, settings.inbox)
        with wh.transaction(name):
            pipeline.land(settings, source, [pipeline.Fetched(r) for r in refs], cat)
            pipeline.compute_indicators(settings, source, cat)
print("steps", count[0])
"""


def _child(code: str, args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
    full.update({f"RAREWATCH_{k.upper()}": str(v) for k, v in env.items()})
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=full, capture_output=True, text=True,
                          timeout=timeout)


def _kill_inbox(work: Path) -> tuple[Path, Path]:
    """A first inbox (2019, landed before) and a second (2020, the run that is killed)."""
    from conftest import SAMPLES

    first, second = work / "inbox-2019", work / "inbox-2020"
    for box, keep in ((first, "2019_"), (second, "2020_")):
        (box / "japan_customs").mkdir(parents=True, exist_ok=True)
        for f in (SAMPLES / "japan_customs").glob(f"{keep}*_v202008*.csv") if keep == "2020_" else \
                (SAMPLES / "japan_customs").glob(f"{keep}*.csv"):
            shutil.copy(f, box / "japan_customs" / f.name)
        (box / "gacc").mkdir(exist_ok=True)
        for f in sorted((SAMPLES / "gacc").glob(f"table5_{keep[:4]}-0[2-4]_cny.html")):
            shutil.copy(f, box / "gacc" / f.name)
    return first, second


def kills(tally: Tally, work: Path, quick: bool) -> None:
    first, second = _kill_inbox(work / "kills")
    sources = "japan_customs,gacc"
    seed = work / "kills" / "seed"
    r = _child(KILL_CHILD, [str(seed), "0", sources, str(REPO)], dict(warehouse=seed, inbox=first))
    if r.returncode:
        tally.problem(f"kills: the first run failed:\n{r.stderr[-2000:]}")
        return
    before = fingerprint(seed)
    ref = work / "kills" / "reference"
    shutil.copytree(seed, ref)
    r = _child(KILL_CHILD, [str(ref), "0", sources, str(REPO)], dict(warehouse=ref, inbox=second))
    if r.returncode:
        tally.problem(f"kills: the reference run failed:\n{r.stderr[-2000:]}")
        return
    steps = int(r.stdout.split("steps")[-1])
    after = fingerprint(ref)
    points = list(range(1, steps + 1))
    if quick:  # the first, one inside a staged write, the journal, mid-rename, the last
        points = sorted({1, 3, steps // 3, steps // 2, steps - 3, steps - 1, steps})
    for k in points:
        tally.kills += 1
        root = work / "kills" / f"k{k:04d}"
        shutil.copytree(seed, root)
        r = _child(KILL_CHILD, [str(root), str(k), sources, str(REPO)], dict(warehouse=root, inbox=second))
        if r.returncode != -signal.SIGKILL:
            tally.problem(f"kill at step {k}: the child was not killed (exit {r.returncode}): {r.stderr[-800:]}")
            continue
        from flows.warehouse import Warehouse

        Warehouse(str(root))  # any rarewatch read rolls a leftover journal forward
        state = fingerprint(root)
        mixed = state not in (before, after)
        r2 = _child(KILL_CHILD, [str(root), "0", sources, str(REPO)], dict(warehouse=root, inbox=second))
        again = fingerprint(root) if r2.returncode == 0 else None
        lost, dup = compare(after, again) if again is not None else (0, 0)
        tally.rows_lost += lost
        tally.rows_duplicated += dup
        if mixed:
            lb, db = compare(before, state)
            tally.problem(f"kill at step {k}: the warehouse holds neither the state before nor after the run "
                          f"({lb} rows of before missing, {db} rows beyond it)")
        elif r2.returncode != 0:
            tally.problem(f"kill at step {k}: the re-run failed: {r2.stderr[-1500:]}")
        elif lost or dup:
            tally.problem(f"kill at step {k}: the re-run differs from an uninterrupted run ({lost} lost, {dup} added)")
        else:
            tally.kills_survived += 1
        shutil.rmtree(root, ignore_errors=True)
    tally.lines.append(f"kills: SIGKILL at {len(points)} of {steps} write steps of a run landing 2 sources "
                       "(before/inside/after each staged write, each rename, journal written, journal not removed)")


CLI_KILL = ["-m", "flows.cli", "refresh"]


def cli_kills(tally: Tally, work: Path) -> None:
    """The real CLI (Prefect, reused local server) killed at several moments of `make run`."""
    from conftest import SAMPLES

    home = work / "cli" / "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAREWATCH_", "PREFECT_API"))}
    env.update(PREFECT_HOME=str(home), RAREWATCH_INBOX=str(SAMPLES), RAREWATCH_PREFECT_PORT="4290")
    ref = work / "cli" / "reference"
    r = subprocess.run([sys.executable, *CLI_KILL], cwd=REPO, env={**env, "RAREWATCH_WAREHOUSE": str(ref)},
                       capture_output=True, text=True, timeout=900)
    if r.returncode:
        tally.problem(f"CLI: the reference run failed: {r.stderr[-1500:]}")
        return
    after = fingerprint(ref)
    for delay in (3.0, 8.0, 14.0, 20.0):
        tally.kills += 1
        root = work / "cli" / f"d{int(delay)}"
        p = subprocess.Popen([sys.executable, *CLI_KILL], cwd=REPO, env={**env, "RAREWATCH_WAREHOUSE": str(root)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.kill()
        _, err = p.communicate()
        state = fingerprint(root) if root.exists() else Counter()
        if state not in (Counter(), after):
            tally.problem(f"CLI killed after {delay} s: a half-published warehouse")
            continue
        r = subprocess.run([sys.executable, *CLI_KILL], cwd=REPO, env={**env, "RAREWATCH_WAREHOUSE": str(root)},
                           capture_output=True, text=True, timeout=900)
        lost, dup = compare(after, fingerprint(root))
        tally.rows_lost += lost
        tally.rows_duplicated += dup
        if "Traceback" in r.stderr:
            tally.bare_tracebacks += 1
            tally.problem(f"CLI re-run after a kill: {r.stderr[-1500:]}")
        if r.returncode == 0 and not (lost or dup):
            tally.kills_survived += 1
        else:
            tally.problem(f"CLI re-run after a kill at {delay} s: exit {r.returncode}, {lost} lost, {dup} added")
    subprocess.run([sys.executable, "-m", "flows.cli", "server", "stop"], cwd=REPO, env=env, capture_output=True)
    tally.lines.append("CLI: `rarewatch refresh` on the samples killed with SIGKILL at 3, 8, 14 and 20 s, then re-run")


# ----------------------------------------------------------------------------- concurrency
LAND_CHILD = r"""
import sys
sys.path[:0] = [sys.argv[2]]
from flows import pipeline
from flows.catalogue import Catalogue
from flows.settings import load_settings
from flows.sources import inbox_files, registry
settings = load_settings()
source = registry()["japan_customs"]
report = pipeline.land(settings, source, [pipeline.Fetched(r) for r in inbox_files(source, settings.inbox)], Catalogue.load())
print(report.rows_written)
"""


def _vintage_inboxes(work: Path) -> tuple[Path, Path]:
    """Two vintages of 2020 (August 2020 and March 2021 releases): the same partitions."""
    from conftest import SAMPLES

    boxes = []
    for vintage in ("v20200831", "v20210331"):
        box = work / vintage / "japan_customs"
        box.mkdir(parents=True, exist_ok=True)
        for f in (SAMPLES / "japan_customs").glob(f"2020_*_{vintage}.csv"):
            shutil.copy(f, box / f.name)
        boxes.append(box.parent)
    return boxes[0], boxes[1]


def concurrency(tally: Tally, work: Path, trials: int) -> None:
    first, second = _vintage_inboxes(work / "concurrency")
    seq = work / "concurrency" / "sequential"
    for box in (first, second):
        _child(LAND_CHILD, ["-", str(REPO)], dict(warehouse=seq, inbox=box))
    expected = fingerprint(seq)
    different = 0
    for t in range(trials):
        root = work / "concurrency" / f"t{t}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("RAREWATCH_")}
        procs = [subprocess.Popen([sys.executable, "-c", LAND_CHILD, "-", str(REPO)], cwd=REPO,
                                  env={**full, "RAREWATCH_WAREHOUSE": str(root), "RAREWATCH_INBOX": str(box)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for box in (first, second)]
        outs = [p.communicate(timeout=600) for p in procs]
        if any(p.returncode for p in procs):
            tally.problem(f"concurrency trial {t}: a run failed: {[o[1][-800:] for o in outs]}")
            continue
        lost, dup = compare(expected, fingerprint(root))
        tally.rows_lost += lost
        tally.rows_duplicated += dup
        if lost or dup:
            different += 1
            tally.problem(f"concurrency trial {t}: {lost} rows lost, {dup} added against the runs one after the other")
    tally.lines.append(f"concurrency: {trials} trials of two landings of two vintages of one year (the same "
                       "partitions) at once; "
                       f"{different} differed from the sequential result")


# ----------------------------------------------------------------------------- disk
def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="rarewatch-mount-"))
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True)
    probe.rmdir()
    return ok


def disk(tally: Tally, work: Path) -> None:
    """A warehouse on a full disk and a read-only one: the run stops with a message naming the
    folder, and what was published before is intact."""
    if not _can_mount():
        tally.skipped.append("full disk and read-only warehouse: this machine does not allow mounts (needs root)")
        return
    from flows.cli import describe
    from flows.errors import RarewatchError

    first, second = _kill_inbox(work / "disk")
    probe = work / "disk" / "probe"
    with environment(warehouse=probe, inbox=second):
        run_inbox("japan_customs")
    needed = sum(f.stat().st_size for f in probe.rglob("*") if f.is_file())
    for case in ("full disk", "read-only warehouse"):
        tally.faults += 1
        mnt = work / "disk" / case.replace(" ", "-")
        mnt.mkdir(parents=True)
        # the full disk holds about two thirds of what the run writes: it fills up mid-run
        size = f"{max(needed * 2 // 3 // 1024, 64)}k" if case == "full disk" else "64m"
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
        try:
            wh = mnt / "warehouse"
            if case == "read-only warehouse":
                r = _child(LAND_CHILD, ["-", str(REPO)], dict(warehouse=wh, inbox=first))
                before = fingerprint(wh)
                subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            else:
                before = Counter()
            message = ""
            with environment(warehouse=wh, inbox=second, restricted_dir=work / "disk" / "restricted"):
                try:
                    r = run_inbox("japan_customs")
                    message = "landed"
                except RarewatchError as e:
                    message = str(e)
                except OSError as e:
                    message = describe(e)
                except Exception as e:  # noqa: BLE001
                    message = "Traceback " + "".join(traceback.format_exception(e))
            if message.startswith("Traceback") or message == "landed":
                tally.bare_tracebacks += message.startswith("Traceback")
                tally.problem(f"{case}: {message[-1200:]}")
            elif str(mnt) not in message and "No space" not in message and "Read-only" not in message:
                tally.problem(f"{case}: the message does not say where or why: {message[:300]}")
            tally.lines.append(f"{case}: {' '.join(message.split())[:240]}")
            lost, dup = compare(before, fingerprint(wh) if wh.exists() else Counter())
            if case == "full disk":
                dup = 0 if not any(k[0].startswith("clean") for k in fingerprint(wh)) else dup
            tally.rows_lost += lost
            tally.rows_duplicated += dup
            if lost or dup:
                tally.problem(f"{case}: {lost} rows lost, {dup} rows half-published")
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    tally.lines.append(f"disk: a tmpfs warehouse of 2/3 of the {needed:,} bytes the run writes (full disk), and a "
                       "read-only remounted one")


def run_inbox(name: str) -> object:
    from flows import pipeline
    from flows.catalogue import Catalogue
    from flows.settings import load_settings
    from flows.sources import inbox_files, registry

    settings = load_settings()
    source = registry()[name]
    return pipeline.land(settings, source, [pipeline.Fetched(r) for r in inbox_files(source, settings.inbox)],
                         Catalogue.load())


# ----------------------------------------------------------------------------- canary stock
def canary_stock(tally: Tally, work: Path) -> None:
    """Stock positions with a canary figure: public outputs, logs and messages never show it or
    anything derived from it (days of cover)."""
    from conftest import SAMPLES
    from flows import pipeline
    from flows.catalogue import Catalogue
    from flows.settings import load_settings

    tally.faults += 1
    root = work / "stock"
    wh, restricted = root / "warehouse", root / "restricted"
    stocks = root / "stocks.csv"
    root.mkdir(parents=True)
    stocks.write_text(f"metal,as_of,tonnes\nrare_earths,2020-06-30,{CANARY_STOCK}\ntungsten,2020-06-30,{CANARY_STOCK}\n")
    capture = Captured()
    logging.getLogger().addHandler(capture)
    try:
        with environment(warehouse=wh, inbox=SAMPLES, stock_positions=stocks, restricted_dir=restricted):
            run_inbox("japan_customs")
            counts = pipeline.compute_reserves(load_settings(), Catalogue.load())
    finally:
        logging.getLogger().removeHandler(capture)
    if not counts.get("restricted_reserve_coverage"):
        tally.problem("canary stock: no restricted rows were computed (the canary was not exercised)")
    # as text (logs, CSV, JSON) and as the 8 bytes of a double (Parquet's plain encoding)
    needles = [repr(CANARY_STOCK).encode(), struct.pack("<d", CANARY_STOCK)]
    found = leaks(capture.text, [wh], needles)
    # what derives from it: the restricted days of cover, looked for in the public tree
    import polars as pl

    derived = set()
    for f in restricted.rglob("*.parquet"):
        frame = pl.read_parquet(f)
        # the columns only the restricted model has (schemas/reserves.py): computed from the stock
        derived |= {x for c in ("stock_t", "cover_days", "gap_to_target_t", "china_disruption_days", "ratio_to_target")
                    if c in frame.columns for x in frame[c].drop_nulls().to_list() if x != round(x)}
    days = sorted(derived)
    found += leaks([], [wh], [struct.pack("<d", x) for x in days]) if days else []
    if found:
        tally.canaries_leaked += len(found)
        tally.problem("canary stock found in: " + "; ".join(found[:5]))
    tally.lines.append(f"canary stock: {CANARY_STOCK} t in the stock positions, searched in every public file and log "
                       f"line ({len(days)} derived figures searched too)")


def prefect_canaries(tally: Tally, work: Path) -> None:
    """A monthly run through Prefect (reused local server) with the canary key echoed by a failing
    server: the key must be absent from Prefect's database, its result storage and the console."""
    site, routes = build_site()
    home = work / "prefect-canary"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAREWATCH_", "PREFECT_API"))}
    env.update(PREFECT_HOME=str(home), RAREWATCH_PREFECT_PORT="4291", RAREWATCH_WAREHOUSE=str(home / "warehouse"),
               RAREWATCH_INBOX="", RAREWATCH_HTTP_RETRIES="0", RAREWATCH_TASK_RETRIES="0",
               RAREWATCH_COMTRADE_BASE_URL=site.url(), RAREWATCH_COMTRADE_API_KEY=CANARY_KEY,
               RAREWATCH_COMTRADE_MIN_INTERVAL="0", RAREWATCH_ESTAT_API_BASE_URL=site.url() + "/rest/3.0/app/json",
               RAREWATCH_ESTAT_APP_ID=CANARY_KEY)
    kinds = _kinds()
    site.fault, site.target = kinds["error text echoing the key"], "/"
    try:
        for source, route in (("comtrade", "UN Comtrade"), ("japan_customs", "e-Stat API")):
            tally.faults += 1
            site.route = route
            r = subprocess.run([sys.executable, "-m", "flows.cli", "-v", "refresh", "--source", source, "--period",
                                "2019" if source == "comtrade" else "2020-07"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=900)
            if r.returncode == 0:
                tally.problem(f"Prefect canary ({source}): the run did not fail")
            if "Traceback" in r.stderr.split("rarewatch refresh")[-1]:
                tally.bare_tracebacks += 1
                tally.problem(f"Prefect canary ({source}): {r.stderr[-1200:]}")
            found = leaks([r.stdout, r.stderr], [home], [CANARY_KEY.encode()])
            if found:
                tally.canaries_leaked += len(found)
                tally.problem(f"Prefect canary ({source}): key found in " + "; ".join(found[:5]))
        # the canary stock through a real run: reserve coverage computed under Prefect, then
        # searched in Prefect's database and storage, the console and the public warehouse
        from conftest import SAMPLES

        tally.faults += 1
        stocks = home / "stocks.csv"
        stocks.write_text(f"metal,as_of,tonnes\nrare_earths,2020-06-30,{CANARY_STOCK}\n")
        run_env = {**env, "RAREWATCH_INBOX": str(SAMPLES), "RAREWATCH_STOCK_POSITIONS": str(stocks),
                   "RAREWATCH_RESTRICTED_DIR": str(home / "restricted")}
        r = subprocess.run([sys.executable, "-m", "flows.cli", "-v", "refresh"], cwd=REPO, env=run_env,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0 or not (home / "restricted").exists():
            tally.problem(f"Prefect canary (stock): the run did not compute restricted coverage: {r.stderr[-1200:]}")
        roots = [p for p in home.iterdir() if p.name not in ("restricted", "stocks.csv")]
        found = leaks([r.stdout, r.stderr], roots, [repr(CANARY_STOCK).encode(), struct.pack("<d", CANARY_STOCK)])
        if found:
            tally.canaries_leaked += len(found)
            tally.problem("Prefect canary (stock): found in " + "; ".join(found[:5]))
    finally:
        subprocess.run([sys.executable, "-m", "flows.cli", "server", "stop"], cwd=REPO, env=env, capture_output=True)
        site.stop()
    tally.lines.append("canary stock: through a real Prefect run of the samples with stock positions, searched in the "
                       "console, Prefect's database and storage, the public warehouse")
    tally.lines.append("canary key: echoed by the e-Stat API and Comtrade in their error texts during real Prefect runs; "
                       "searched in the console output, Prefect's database and result storage, the warehouse")


# ----------------------------------------------------------------------------- main
def run(quick: bool, work: Path | None = None) -> Tally:
    tally = Tally()
    own = work is None
    work = Path(work or tempfile.mkdtemp(prefix="rarewatch-faults-"))
    try:
        http_faults(tally, work, quick)
        malformed_inputs(tally, work)
        canary_stock(tally, work)
        kills(tally, work, quick)
        concurrency(tally, work, 2 if quick else 10)
        disk(tally, work)
        if quick:
            tally.skipped.append("the real CLI killed, Prefect's database searched for canaries: "
                                 "the full run (python -m tests.fault_report)")
        else:
            cli_kills(tally, work)
            prefect_canaries(tally, work)
    finally:
        if own:
            with contextlib.suppress(OSError):
                shutil.rmtree(work, ignore_errors=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fault_report", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the fast part only (what `make test` runs)")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (warehouses of every trial)")
    args = p.parse_args(argv)
    logging.getLogger("rarewatch").setLevel(logging.ERROR)  # the roll-forward notes of ~100 killed runs
    start = time.monotonic()
    tally = run(args.quick, Path(args.keep) if args.keep else None)
    for line in tally.lines:
        print(line)
    for line in tally.skipped:
        print(f"skipped: {line}")
    for line in tally.problems:
        print(f"PROBLEM: {line}")
    print(f"({time.monotonic() - start:.0f} s)")
    for line in tally.figures():
        print(line)
    return 0 if tally.ok else 1


if __name__ == "__main__":
    sys.exit(main())
