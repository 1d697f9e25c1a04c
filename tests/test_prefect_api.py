"""The reused local Prefect server of one-off commands (flows/prefect_api.py)."""

from __future__ import annotations

import shutil

import pytest

from conftest import SAMPLES
from flows import prefect_api
from flows.cli import main


def test_an_operator_api_url_always_wins(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert prefect_api.ensure_api() == "http://127.0.0.1:9/api"


def test_a_server_that_does_not_come_up_is_stopped_and_reported(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("RAREWATCH_PREFECT_STARTUP_TIMEOUT", "0.5")  # far too short to start Prefect
    with pytest.raises(prefect_api.PrefectUnavailable, match="did not answer .* within 0 s|did not answer"):
        prefect_api.start_server()
    assert prefect_api.recorded() is None  # stopped, nothing recorded, no process left
    assert not (tmp_path / "rarewatch-server.json").exists()


def test_bad_settings_are_messages(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("RAREWATCH_PREFECT", "cloudy")
    assert main(["refresh"]) == 1
    assert "RAREWATCH_PREFECT='cloudy'" in capsys.readouterr().err
    monkeypatch.setenv("RAREWATCH_PREFECT", "server")
    monkeypatch.setenv("RAREWATCH_PREFECT_STARTUP_TIMEOUT", "soon")
    assert main(["backfill", "2020-01", "2020-02"]) == 1
    assert "not a number of seconds" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_command_prints_a_closing_table(settings_env, capsys):
    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    assert main(["backfill", "2019-01", "2019-12", "--source", "japan_customs", "--parallel", "2"]) == 0
    out = capsys.readouterr().out
    assert "japan_customs" in out and "2019" in out and "12" in out
    assert prefect_api.recorded() is None  # the harness's server, no new one started


@pytest.mark.usefixtures("prefect_harness")
def test_commands_under_configured_settings_start_no_server(settings_env, tmp_path):
    # the harness configures its API through Prefect's settings, not the environment
    before = prefect_api.recorded()
    url = prefect_api.ensure_api()
    assert url and prefect_api.recorded() == before


def test_the_reused_server_serves_a_later_command(tmp_path, monkeypatch):
    """Started once, found again by the next command (in a fresh process), and stopped."""
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path), RAREWATCH_PREFECT_STARTUP_TIMEOUT="240", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    run = [sys.executable, "-m", "flows.cli", "server"]
    try:
        started = subprocess.run([*run, "start"], env=env, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        url = started.stdout.split("Prefect API: ", 1)[1].strip()
        probe = ("from flows.prefect_api import ensure_api; print(ensure_api()); "
                 "from prefect.settings import get_current_settings; print(get_current_settings().api.url)")
        again = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        assert again.stdout.split() == [url, url], again.stderr  # reused, and Prefect itself points there
        status = subprocess.run([*run, "status"], env=env, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and url in status.stdout
    finally:
        subprocess.run([*run, "stop"], env=env, capture_output=True, text=True, timeout=60)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert prefect_api.recorded() is None


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_terminated_command_stops_the_server_it_started(tmp_path, sig):
    """Finding 9: killing the CLI left its Prefect server running. SIGTERM and Ctrl-C now stop the
    server the command itself started (a server found running is left alone), with a message."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RAREWATCH_"))}
    env.update(PREFECT_HOME=str(tmp_path), RAREWATCH_PREFECT_STARTUP_TIMEOUT="240", RAREWATCH_INBOX=str(SAMPLES),
               RAREWATCH_WAREHOUSE=str(tmp_path / "warehouse"), RAREWATCH_PREFECT_PORT="4287")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "refresh"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    state = tmp_path / "rarewatch-server.json"
    deadline = time.monotonic() + 240
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert state.exists(), proc.communicate()[1]
    server = json.loads(state.read_text())["pid"]
    try:
        time.sleep(1.0)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (130, 1), err
        assert "Traceback" not in err and "interrupted" in err
        for _ in range(100):
            try:
                os.kill(server, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the Prefect server the command started is still running")
        assert not state.exists()
    finally:  # never leave a server behind, whatever failed above
        try:
            os.killpg(server, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
