"""Which Prefect API a one-off `rarewatch` command talks to, and a long-lived local server for it.

Prefect 3 without `PREFECT_API_URL` starts a temporary API server in a subprocess for every
process (its "ephemeral mode"): 12 s of CPU and 15-40 s of wall time on a loaded 2-core machine,
paid by every command, and it fails when the server takes more than 20 s to answer. The fastest
supported way for repeated one-off commands is Prefect's own `prefect server start`, started once
in the background and reused: later commands only connect (`PREFECT_API_URL`).

Modes (`RAREWATCH_PREFECT`):
- `server` (default): reuse the local server recorded in `$PREFECT_HOME/rarewatch-server.json`
  (pid, port, URL) when it answers; else start one (detached, log in
  `$PREFECT_HOME/rarewatch-server.log`), wait for it, record it. `rarewatch server stop` stops
  it; `make clean` too.
- `ephemeral`: Prefect's temporary per-process server, with its start-up timeout raised.
An API URL already configured (`PREFECT_API_URL`, the Prefect profile, an operator's server,
`make serve`, the test harness) always wins.

Start-up waits `RAREWATCH_PREFECT_STARTUP_TIMEOUT` seconds (default 180: enough under load);
a server that does not come up is stopped and reported with the end of its log, never a traceback.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from flows.errors import RarewatchError

DEFAULT_TIMEOUT = 180.0


class PrefectUnavailable(RarewatchError):
    """The Prefect API could not be reached or started."""


def home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _state_file() -> Path:
    return home() / "rarewatch-server.json"


def startup_timeout() -> float:
    text = os.environ.get("RAREWATCH_PREFECT_STARTUP_TIMEOUT", "")
    try:
        return float(text) if text.strip() else DEFAULT_TIMEOUT
    except ValueError:
        raise PrefectUnavailable(f"RAREWATCH_PREFECT_STARTUP_TIMEOUT={text!r} is not a number of seconds") from None


def healthy(url: str, timeout: float = 3.0) -> bool:
    """Ready for a client: /health answers as soon as the web app is up, /admin/version (what
    Prefect's client asks first) only once the API is (under load the two are seconds apart)."""
    import requests

    try:
        return all(requests.get(f"{url.rstrip('/')}/{path}", timeout=timeout).ok for path in ("health", "admin/version"))
    except requests.RequestException:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded() -> dict | None:
    """The server this machine's PREFECT_HOME records, if its process is still there."""
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and _alive(int(state.get("pid", 0) or 0)) else None


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise PrefectUnavailable("no free local port for the Prefect server")


def ensure_api() -> str:
    """Point this process at a Prefect API and return its URL (see the module's modes)."""
    mode = os.environ.get("RAREWATCH_PREFECT", "server").strip().lower() or "server"
    if mode not in ("server", "ephemeral"):
        raise PrefectUnavailable(f"RAREWATCH_PREFECT={mode!r}: expected 'server' or 'ephemeral'")
    timeout = startup_timeout()  # a bad value is refused whatever the API
    configured = _configured_url()
    if configured:
        return configured
    if mode == "ephemeral":
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(int(timeout)))
        return ""
    url = start_server(timeout)
    _use(url)
    return url


def _configured_url() -> str:
    """An API URL already given: the environment, the Prefect profile, or temporary settings (the
    test harness); never overridden."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if "prefect" not in sys.modules:  # Prefect not loaded yet: only the environment and profile count
        return _profile_url()
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or ""


def _profile_url() -> str:
    """PREFECT_API_URL of the active Prefect profile (`prefect config set`), read without importing
    Prefect (its settings are fixed once it is imported: the URL must be in place before)."""
    try:
        import tomllib

        profiles = tomllib.loads((home() / "profiles.toml").read_text())
    except (OSError, ValueError):
        return ""
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return str(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL", "") or "")


def _use(url: str) -> None:
    """Point this process at `url`, also when Prefect is already imported (its settings are then
    fixed: a settings context is entered for the rest of the process)."""
    os.environ["PREFECT_API_URL"] = url
    if "prefect" in sys.modules:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        temporary_settings(updates={PREFECT_API_URL: url}).__enter__()


# pid of the server this process started (None: it found one running, or started none): the CLI
# stops it when it is interrupted or terminated, so a killed command leaves no server behind.
STARTED_HERE: int | None = None


def stop_if_started_here() -> bool:
    """Stop the local server when this process started it (see STARTED_HERE)."""
    global STARTED_HERE
    state = recorded()
    if STARTED_HERE is None or state is None or int(state["pid"]) != STARTED_HERE:
        return False
    STARTED_HERE = None
    return stop_server()


def start_server(timeout: float | None = None) -> str:
    """The recorded local server's API URL, starting it first when it is not running."""
    timeout = startup_timeout() if timeout is None else timeout
    folder = home()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "rarewatch-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands at once start one server
        state = recorded()
        if state is not None and healthy(state["url"]):
            return state["url"]
        if state is not None:  # its process is there but does not answer: it may still be starting
            if _wait(state["url"], int(state["pid"]), timeout):
                return state["url"]
            stop_server()
        port = _free_port(int(os.environ.get("RAREWATCH_PREFECT_PORT", "4210") or 4210))
        url = f"http://127.0.0.1:{port}/api"
        log = folder / "rarewatch-server.log"
        env = dict(os.environ, PREFECT_HOME=str(folder), PREFECT_SERVER_API_HOST="127.0.0.1",
                   PREFECT_SERVER_API_PORT=str(port), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_UI_API_URL=url, DO_NOT_TRACK="1")
        env.pop("PREFECT_API_URL", None)
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                     "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        _state_file().write_text(json.dumps({"pid": proc.pid, "port": port, "url": url, "started": time.time(),
                                             "log": str(log)}))
        global STARTED_HERE
        STARTED_HERE = proc.pid
        if not _wait(url, proc.pid, timeout, proc):
            stop_server()
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise PrefectUnavailable(
                f"the local Prefect server did not answer at {url} within {timeout:.0f} s (raise "
                f"RAREWATCH_PREFECT_STARTUP_TIMEOUT, or set RAREWATCH_PREFECT=ephemeral or PREFECT_API_URL); "
                f"end of its log {log}:\n{tail}")
        return url


def _wait(url: str, pid: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url, timeout=2.0):
            return True
        if (proc is not None and proc.poll() is not None) or not _alive(pid):
            return False
        time.sleep(0.5)
    return False


def stop_server(timeout: float = 20.0) -> bool:
    """Stop the recorded local server (its whole process group); True when one was running."""
    state = recorded()
    with contextlib.suppress(OSError):
        _state_file().unlink()
    if state is None:
        return False
    pid = int(state["pid"])
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return True
