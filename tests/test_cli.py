"""The `rarewatch` console script: a thin door onto the same flow."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import SAMPLES
from flows.cli import main


def test_help_lists_refresh():
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=True)
    assert "refresh" in out.stdout and "RAREWATCH_" in out.stdout
    out = subprocess.run([sys.executable, "-m", "flows.cli", "refresh", "--help"], capture_output=True, text=True,
                         check=True)
    assert "--period" in out.stdout and "--source" in out.stdout


def test_period_must_be_a_month(capsys):
    assert main(["refresh", "--period", "2020-13"]) == 2
    assert "not a month: '2020-13'" in capsys.readouterr().err


def test_every_command_has_help():
    for command in ("refresh", "backfill", "ingest", "status", "report", "query", "datasets", "sql", "server",
                    "sources"):
        out = subprocess.run([sys.executable, "-m", "flows.cli", command, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "Usage" in out.stdout, (command, out.stderr)


def test_unknown_metals_and_sources_are_refused_with_the_known_names(capsys):
    assert main(["query", "unobtainium"]) == 2
    err = capsys.readouterr().err
    assert "unknown metal 'unobtainium'" in err and "rare_earths" in err
    assert main(["backfill", "2020-01", "2020-02", "--source", "nope"]) == 2
    assert "japan_customs" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_refresh_prints_outputs_and_summary(settings_env, capsys):
    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    assert main(["refresh"]) == 0
    out = capsys.readouterr().out
    assert str(settings_env.warehouse) in out and "indicators/" in out
    assert "rare_earths" in out and "China % qty 12M" in out and "2020-12" in out


@pytest.mark.usefixtures("prefect_harness")
def test_refresh_failure_exits_non_zero_with_the_reason(settings_env, capsys):
    folder = settings_env.inbox / "japan_customs"
    folder.mkdir()
    (folder / "broken.csv").write_text("Exp or Imp,Year\n2,2020\n")
    assert main(["refresh"]) == 1
    err = capsys.readouterr().err
    assert "broken.csv" in err and "missing columns" in err


@pytest.mark.usefixtures("prefect_harness")
def test_unknown_source_is_refused(settings_env, capsys):
    assert main(["refresh", "--source", "nope"]) == 2
    assert "unknown source" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_the_analysts_commands_answer_from_the_warehouse(settings_env, capsys):
    """The question of warehouse/README.md by one `rarewatch query` command, and the others."""
    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    shutil.copytree(SAMPLES / "meti", settings_env.inbox / "meti")
    assert main(["refresh"]) == 0
    out = capsys.readouterr().out
    assert "from the inbox" in out and "japan_customs" in out
    assert main(["query", "rare_earths", "--freq", "A"]) == 0
    out = capsys.readouterr().out
    assert "52.5" in out and "stock a 180-day target implies" in out
    assert main(["status"]) == 0 and "4,891" in capsys.readouterr().out
    assert main(["sql", "select count(*) as n from japan_customs_trade_latest"]) == 0
    assert "n" in capsys.readouterr().out
    assert main(["sql", "select * from no_such_view"]) == 1
    assert "DuckDB" in capsys.readouterr().err
    assert main(["datasets", "import_dependency"]) == 0 and "china_share" in capsys.readouterr().out
    assert main(["report"]) == 0 and "reports/latest.html" in capsys.readouterr().out


@pytest.mark.usefixtures("prefect_harness")
def test_ingest_puts_files_in_their_source_folder_and_lands_them(settings_env, capsys, tmp_path):
    drop = tmp_path / "downloads"
    drop.mkdir()
    for f in sorted((SAMPLES / "japan_customs").glob("2020_imp_*_v20200831.csv")) + \
            sorted((SAMPLES / "gacc").glob("table5_2020-0[67]_cny.html")):
        shutil.copy(f, drop / f.name)
    assert main(["ingest", *map(str, sorted(drop.iterdir()))]) == 0
    out = capsys.readouterr().out
    assert "japan_customs/ (3)" in out and "gacc/ (2)" in out
    assert len(list((settings_env.inbox / "japan_customs").iterdir())) == 3
    assert (settings_env.warehouse / "clean" / "japan_customs_trade").exists()
    assert (settings_env.warehouse / "clean" / "china_customs_exports").exists()
    (drop / "notes.txt").write_text("hello")
    assert main(["ingest", str(drop / "notes.txt")]) == 1
    assert "not recognised" in capsys.readouterr().err


def test_the_command_uses_the_checkouts_prefect_home_like_make(tmp_path):
    """`make run` keeps Prefect's state in the checkout's .prefect/ (the Makefile's PREFECT_HOME);
    `.venv/bin/rarewatch server stop` run by hand must look there too (it looked in ~/.prefect and
    said no server was running while make run's kept running). An explicit PREFECT_HOME wins."""
    import os

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_HOME", "PREFECT_API_URL")}
    env["HOME"] = str(tmp_path)
    by_hand = subprocess.run([sys.executable, "-m", "flows.cli", "server", "status"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert str(REPO / ".prefect") in by_hand.stdout, by_hand.stdout + by_hand.stderr
    env["PREFECT_HOME"] = str(tmp_path / "elsewhere")
    told = subprocess.run([sys.executable, "-m", "flows.cli", "server", "status"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert f"PREFECT_HOME={tmp_path / 'elsewhere'}" in told.stdout and told.returncode == 1
