"""`make serve`: a local Prefect server (SQLite) on 127.0.0.1, the work pool, both deployments, a worker.

One command gives an operator the UI at http://127.0.0.1:4200 with `monthly-refresh` and
`backfill` ready. Everything is started as child processes and stopped together on Ctrl-C.
The same functions drive the deployment test (tests/test_serve.py) on a temporary server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
POOL = "rarewatch"
WRITER_LIMIT = "rarewatch-warehouse"  # global concurrency limit: one run writes the warehouse at a time (flows.monthly)
BIN = Path(sys.executable).parent


def prefect(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=env, check=check,
                          capture_output=True, text=True)


def environment(port: int, home: Path) -> dict[str, str]:
    """Environment of the server, the CLI calls and the worker (and so of every flow run)."""
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",  # links in notifications
        "DO_NOT_TRACK": "1",
        "RAREWATCH_HOME": str(REPO),
    })
    return env


def start_server(env: dict[str, str], timeout: float = 120.0) -> subprocess.Popen:
    """Start `prefect server start` and wait until its API answers."""
    port = env["PREFECT_SERVER_API_PORT"]
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}")
        try:
            if requests.get(f"{env['PREFECT_API_URL']}/health", timeout=2).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"prefect server did not answer on port {port} within {timeout:.0f} s")


def deploy(env: dict[str, str]) -> None:
    """Create the work pool and the writer limit (idempotent), then deploy everything in prefect.yaml."""
    if prefect("work-pool", "inspect", POOL, env=env, check=False).returncode != 0:
        prefect("work-pool", "create", POOL, "--type", "process", env=env)
    if prefect("global-concurrency-limit", "inspect", WRITER_LIMIT, env=env, check=False).returncode != 0:
        prefect("global-concurrency-limit", "create", WRITER_LIMIT, "--limit", "1", env=env)
    done = prefect("deploy", "--all", env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"prefect deploy failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    told = subprocess.run([sys.executable, "-m", "flows.notifications"], cwd=REPO, env=env, capture_output=True,
                          text=True)
    print(told.stdout.strip() or f"alert automation not set up: {told.stderr[-800:]}", flush=True)


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In a child before exec (Linux): SIGTERM when the process that started it dies, so even a
    SIGKILLed `make serve` leaves no server or worker behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def descendants(pid: int) -> list[int]:
    """Every process below `pid`. The worker starts each flow run in a session of its own, out of
    reach of a signal to the worker's group."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal_groups(groups: set[int], sig: int) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a child and everything it started, flow runs in their own sessions included: SIGTERM
    to its group (a worker then marks its runs), the same to any process group below it still
    there, SIGKILL to whatever outlives `grace` seconds."""
    if proc.poll() is not None:
        return
    groups = {proc.pid}
    for pid in descendants(proc.pid):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())  # never our own
    _signal_groups({proc.pid}, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (proc.poll() is None or any(_alive_group(g) for g in groups)):
        time.sleep(0.2)  # poll() reaps the child: a zombie leader would keep its group "alive"
    _signal_groups(groups, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=5)


def _alive_group(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def port_taken(port: int) -> bool:
    """Is something listening on 127.0.0.1:port (another `make serve`, another server)?"""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def pause_schedules(env: dict[str, str]) -> str:
    """Pause every deployment's schedules (sample mode: scheduled runs would land the samples)."""
    code = ("from prefect.client.orchestration import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    names = []\n"
            "    for d in c.read_deployments():\n"
            "        for s in c.read_deployment_schedules(d.id):\n"
            "            c.update_deployment_schedule(d.id, s.id, active=False)\n"
            "        names.append(d.name)\n"
            "print(', '.join(sorted(names)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pausing the schedules failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    port = int(os.environ.get("RAREWATCH_SERVE_PORT", "4200"))
    if port_taken(port):
        print(f"make serve: port {port} on 127.0.0.1 is taken (another `make serve` or Prefect server?); stop it, "
              "or choose another port with RAREWATCH_SERVE_PORT=4201 make serve", file=sys.stderr)
        return 2
    env = environment(port, Path(os.environ.get("RAREWATCH_SERVE_HOME", REPO / ".prefect-server")))
    env.setdefault("RAREWATCH_WAREHOUSE", str(REPO / "warehouse"))
    samples = bool(env.get("RAREWATCH_INBOX"))
    # SIGTERM (a supervisor, `kill`) stops everything like Ctrl-C does
    signal.signal(signal.SIGTERM, _terminate)
    print(f"starting Prefect server on http://127.0.0.1:{port} (SQLite under {env['PREFECT_HOME']}) ...", flush=True)
    server = worker = None
    try:
        server = start_server(env)
        deploy(env)
        if samples:
            paused = pause_schedules(env)
            print(f"SAMPLE MODE (RAREWATCH_INBOX={env['RAREWATCH_INBOX']}): runs land the inbox's files, not live "
                  f"releases; the schedules of {paused} are paused (resume them in the UI only for live data)",
                  flush=True)
        worker = start_worker(env)
        print(f"UI: http://127.0.0.1:{port}  deployments: monthly-refresh, backfill, sources-check  work pool: {POOL}\n"
              f"warehouse: {env['RAREWATCH_WAREHOUSE']}  "
              f"{'inbox: ' + env['RAREWATCH_INBOX'] if samples else 'live sources (network)'}\n"
              "Ctrl-C or SIGTERM stops the worker and the server.", flush=True)
        while server.poll() is None and worker.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if worker is not None:
            stop(worker)
        if server is not None:
            stop(server)


if __name__ == "__main__":
    sys.exit(main())
