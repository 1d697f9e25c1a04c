"""`make serve` for real: a temporary Prefect server, the deployments, a worker, a backfill through the API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import requests

from conftest import REPO, SAMPLES
from flows import serve
from flows.warehouse import Warehouse


def api_call(method: str, url: str, **kwargs) -> requests.Response:
    """A call to the local server, retried on 5xx: SQLite under a loaded machine answers
    'database is locked' now and then, which Prefect's own client retries too."""
    for attempt in range(6):
        answer = requests.request(method, url, timeout=10, **kwargs)
        if answer.status_code < 500:
            return answer
        time.sleep(1 + attempt)
    return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def _ended(api: str, run_id: str) -> dict:
    """The run's final state, once it has one."""
    return _wait_for(lambda: (s := api_call("GET", f"{api}/flow_runs/{run_id}").json()["state"])["type"]
                     in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") and s, 300, "the run to end")


def _assert_nothing_left(home: Path, port: int) -> None:
    """No process with this PREFECT_HOME within 90 s, and the port free; leftovers of a failing
    run of the test are killed."""
    try:
        _wait_for(lambda: not _processes_with_home(str(home)), 90, "every process of the serve to stop")
    finally:
        for pid in _processes_with_home(str(home)):
            os.kill(pid, signal.SIGKILL)
    assert not serve.port_taken(port)


def test_serve_deploys_and_a_backfill_runs_through_the_api(tmp_path):
    """Issue 12's acceptance, as the UI would: a custom `backfill` run for 2019-01..2019-06 over the
    bundled samples (every source with files there) shows its progress and summary on the run
    itself, one log line per month and source, and lands each file once (one land task per source;
    a month's line counts the files carrying that month, not every file of the source)."""
    inbox = tmp_path / "inbox"
    shutil.copytree(SAMPLES, inbox)
    env = serve.environment(free_port(), tmp_path / "prefect")
    env.update({"RAREWATCH_WAREHOUSE": str(tmp_path / "warehouse"), "RAREWATCH_INBOX": str(inbox),
                "RAREWATCH_TASK_RETRIES": "0"})
    server = serve.start_server(env)
    worker = None
    api = env["PREFECT_API_URL"]
    try:
        serve.deploy(env)
        deployments = api_call("POST", f"{api}/deployments/filter", json={}).json()
        by_name = {d["name"]: d for d in deployments}
        assert set(by_name) == {"monthly-refresh", "backfill", "sources-check"}
        schema = by_name["backfill"]["parameter_openapi_schema"]["properties"]
        assert all(schema[p].get("description") for p in ("start", "end", "sources", "force"))
        worker = serve.start_worker(env)
        answer = api_call("POST", f"{api}/deployments/{by_name['backfill']['id']}/create_flow_run",
                          json={"parameters": {"start": "2019-01", "end": "2019-06"}})
        assert answer.status_code == 201, answer.text
        run = answer.json()
        state = _ended(api, run["id"])
        assert state["type"] == "COMPLETED", state
        clean = pl.scan_parquet(tmp_path / "warehouse" / "clean" / "japan_customs_trade",
                                hive_partitioning=True).collect()
        assert {(2019, m) for m in range(1, 7)} <= set(clean.select("year", "month").unique().iter_rows())
        # what the UI shows on the run one started (issue 12): its name, progress and summary, a line per month
        finished = api_call("GET", f"{api}/flow_runs/{run['id']}").json()
        assert finished["name"] == "backfill 2019-01..2019-06"
        assert re.match(r"[\d,]+ rows landed \(japan_customs [\d,]+, gacc [\d,]+, gacc_imports [\d,]+, meti [\d,]+\)$",
                        finished["state"]["message"]), finished["state"]  # the state says what the run did
        artifacts = api_call("POST", f"{api}/artifacts/filter",
                             json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).json()
        kinds = {a["key"]: a for a in artifacts}
        assert {"backfill-progress", "backfill-summary"} <= set(kinds)
        assert kinds["backfill-progress"]["data"] == 100.0
        children = api_call("POST", f"{api}/flow_runs/filter",
                            json={"flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}}).json()
        ids = [run["id"], *[c["id"] for c in children]]

        def month_lines() -> list[dict]:  # the run's last lines reach the API as its process exits, after its state
            found = api_call("POST", f"{api}/logs/filter",
                             json={"logs": {"flow_run_id": {"any_": ids}}, "limit": 200}).json()
            return found if sum(" meti: " in entry["message"] for entry in found) >= 6 else []

        logs = _wait_for(month_lines, 60, "the run's log lines per month and source")
        lines = [entry["message"] for entry in logs]
        own = [entry["message"] for entry in logs if entry["flow_run_id"] == run["id"]]  # the run's Logs tab
        months = [f"2019-0{m}" for m in range(1, 7)]
        sources = ("japan_customs", "gacc", "gacc_imports", "meti")
        for source in sources:
            for m in months:
                assert sum(line.startswith(f"{m} {source}:") for line in lines) == 1, (m, source, lines)
                assert any(line.startswith(f"{m} {source}:") for line in own), (m, source, own)
        # 2019's six Japan Customs files (imports and exports, three chapter blocks) each carry every month
        assert next(x for x in lines if x.startswith("2019-03 japan_customs:")).endswith("from 6 file(s) (0 unchanged)")
        assert next(x for x in lines if x.startswith("2019-03 meti:")).endswith("from 1 file(s) (0 unchanged)")
        summary = kinds["backfill-summary"]["data"]
        summary = json.loads(summary) if isinstance(summary, str) else summary
        assert {(r["month"], r["source"]) for r in summary} == {(m, s) for m in months for s in sources}
        # each source's files are landed by one task, once, whatever months they carry
        tasks = api_call("POST", f"{api}/task_runs/filter", json={"task_runs": {"flow_run_id": {"any_": ids}}}).json()
        lands = sorted(t["name"] for t in tasks if t["name"].startswith("land "))
        assert lands == sorted(f"land {s} inbox ({len(list((inbox / s.removesuffix('_imports')).iterdir()))} files)"
                               for s in sources), lands
    finally:
        if worker is not None:
            serve.stop(worker)
        serve.stop(server)


def test_serve_on_a_taken_port_says_so_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "RAREWATCH_SERVE_PORT": str(port), "RAREWATCH_SERVE_HOME": str(tmp_path)}
        done = subprocess.run([sys.executable, "-m", "flows.serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port}" in done.stderr and "RAREWATCH_SERVE_PORT" in done.stderr
    assert not (tmp_path / "prefect.db").exists()


def _processes_with_home(home: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"PREFECT_HOME={home}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _serve_samples_command() -> tuple[list[str], dict[str, str]]:
    """`make serve-samples` itself when the tests run from the project's .venv (`make test`), so
    the signal goes through make as an operator's would; else the module it runs."""
    if Path(sys.executable).parent == REPO / ".venv" / "bin" and (REPO / ".venv" / ".installed").exists():
        return ["make", "-s", "serve-samples"], {}
    return [sys.executable, "-m", "flows.serve"], {"RAREWATCH_INBOX": str(SAMPLES)}


def test_serve_samples_pauses_the_schedules_and_sigterm_leaves_no_process(tmp_path):
    """Sample mode is said and its schedules paused (scheduled runs would land invented figures);
    SIGTERM to `make serve-samples` while a backfill runs stops the server, the worker and the
    flow run (the worker starts it in a session of its own), and publishes nothing of that run.
    (Through make: its recipe's shell once died of the signal and left everything running.)"""
    port = free_port()
    home = tmp_path / "prefect"
    command, extra = _serve_samples_command()
    env = {**os.environ, "RAREWATCH_SERVE_PORT": str(port), "RAREWATCH_SERVE_HOME": str(home),
           "RAREWATCH_WAREHOUSE": str(tmp_path / "warehouse"), **extra}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("UI:"):
                break
        assert any("SAMPLE MODE" in x for x in lines), "".join(lines) + proc.stderr.read() if proc.poll() else lines
        deployments = api_call("POST", f"{api}/deployments/filter", json={}).json()
        schedules = [s for d in deployments for s in d.get("schedules", [])]
        assert schedules and not any(s["active"] for s in schedules)
        assert _processes_with_home(str(home))
        # a backfill that stays running: this test holds the warehouse's writer lock
        with Warehouse(str(tmp_path / "warehouse")).writer("the test holds the lock", timeout=10):
            backfill = next(d for d in deployments if d["name"] == "backfill")
            run = api_call("POST", f"{api}/deployments/{backfill['id']}/create_flow_run",
                           json={"parameters": {"start": "2019-01", "end": "2019-06"}}).json()
            _wait_for(lambda: api_call("GET", f"{api}/flow_runs/{run['id']}").json()["state"]["type"] == "RUNNING",
                      180, "the backfill to run")
            engines = [pid for pid in _processes_with_home(str(home))
                       if b"prefect.engine" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert engines, "no flow run process found"
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
    _assert_nothing_left(home, port)
    assert not (tmp_path / "warehouse" / "clean").exists()  # the run stopped published nothing


def test_a_killed_serve_leaves_no_server_or_worker(tmp_path):
    """SIGKILL (kill -9, the OOM killer) cannot be handled: the server and the worker are started
    to receive SIGTERM when the process that started them dies (Linux), and then stop."""
    port = free_port()
    home = tmp_path / "prefect"
    env = {**os.environ, "RAREWATCH_SERVE_PORT": str(port), "RAREWATCH_SERVE_HOME": str(home),
           "RAREWATCH_INBOX": str(SAMPLES), "RAREWATCH_WAREHOUSE": str(tmp_path / "warehouse")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "flows.serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("UI:"):
                break
        assert len(_processes_with_home(str(home))) >= 2  # the server and the worker
    finally:
        proc.kill()
        proc.wait(timeout=30)
    _assert_nothing_left(home, port)


def test_a_failed_monthly_run_and_a_late_one_reach_the_operators_webhook(tmp_path, httpserver):
    """Issue 12, through the API as the UI would: `make serve`'s deploy sets up the automations
    with the operator's webhook (a local HTTP server); a `monthly-refresh` run made to fail (a
    China Customs page with no table in the inbox) is told as Failed; a run no worker starts goes
    Late and, with no Completed within RAREWATCH_LATE_AFTER_HOURS (12 s here), is told as late."""

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    inbox = tmp_path / "inbox"
    (inbox / "gacc").mkdir(parents=True)
    (inbox / "gacc" / "table5_2020-05_cny.html").write_text("<html><body><p>no table here</p></body></html>")
    env = serve.environment(free_port(), tmp_path / "prefect")
    env.update({"RAREWATCH_WAREHOUSE": str(tmp_path / "warehouse"), "RAREWATCH_INBOX": str(inbox),
                "RAREWATCH_TASK_RETRIES": "0", "RAREWATCH_NOTIFY_WEBHOOK_URL": httpserver.url_for("/hook"),
                "RAREWATCH_LATE_AFTER_HOURS": str(12 / 3600),
                # Prefect marks a run Late this long after its time (default 15 s)
                "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "5"})
    server = serve.start_server(env)
    worker = None
    api = env["PREFECT_API_URL"]

    def told() -> list[dict]:
        return [json.loads(request.get_data()) for request, _ in httpserver.log]

    def run_of(deployment: str, parameters: dict) -> dict:
        answer = api_call("POST", f"{api}/deployments/{deployment}/create_flow_run", json={"parameters": parameters})
        assert answer.status_code == 201, answer.text
        return answer.json()

    try:
        serve.deploy(env)
        automations = {a["name"] for a in api_call("POST", f"{api}/automations/filter", json={}).json()}
        assert {"rarewatch run failed", "rarewatch monthly refresh late", "rarewatch shock alert"} <= automations
        monthly = next(d for d in api_call("POST", f"{api}/deployments/filter", json={}).json()
                       if d["name"] == "monthly-refresh")
        worker = serve.start_worker(env)
        failing = run_of(monthly["id"], {"sources": ["gacc"]})
        state = _ended(api, failing["id"])
        assert state["type"] == "FAILED", state
        assert "table5_2020-05_cny.html" in state["message"], state["message"]
        failed = _wait_for(lambda: [t for t in told() if "Failed" in t["title"]], 60, "the failure notification")
        assert failed[0]["title"] == "rarewatch run monthly due (gacc) Failed", failed
        assert "table5_2020-05_cny.html" in failed[0]["text"]
        assert f"{env['PREFECT_UI_URL']}/runs/flow-run/{failing['id']}" in failed[0]["text"]  # a link to the run
        # the failed run never completed either: 12 s after it started, it is told as late too
        _wait_for(lambda: [t for t in told() if "late" in t["title"] and "monthly due (gacc)" in t["text"]], 90,
                  "the late notification of the failed run")

        # no worker: the next run is never picked up, goes Late, and is told as late
        serve.stop(worker)
        worker = None
        stuck = run_of(monthly["id"], {"sources": ["gacc"], "period": "2020-05"})
        late = _wait_for(lambda: [t for t in told() if "late" in t["title"] and stuck["id"] in t["text"]], 120,
                         "the late notification of a run no worker started")
        assert "went Late" in late[0]["text"], late
        assert api_call("GET", f"{api}/flow_runs/{stuck['id']}").json()["state"]["name"] == "Late"
        assert len([t for t in told() if "Failed" in t["title"]]) == 1  # told once, not once per state event
    finally:
        if worker is not None:
            serve.stop(worker)
        serve.stop(server)
