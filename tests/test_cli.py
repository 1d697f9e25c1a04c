"""The `rarewatch` console script: a thin door onto the same flow."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import SAMPLES
from flows.cli import build_parser, main


def test_help_lists_refresh():
    out = subprocess.run([sys.executable, "-m", "flows.cli", "--help"], capture_output=True, text=True, check=True)
    assert "refresh" in out.stdout and "RAREWATCH_" in out.stdout
    out = subprocess.run([sys.executable, "-m", "flows.cli", "refresh", "--help"], capture_output=True, text=True,
                         check=True)
    assert "--period" in out.stdout and "--source" in out.stdout


def test_period_must_be_a_month():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["refresh", "--period", "2020-13"])
    args = build_parser().parse_args(["refresh", "--period", "2020-07", "--source", "japan_customs"])
    assert (args.period, args.sources) == ("2020-07", ["japan_customs"])
    args = build_parser().parse_args(["refresh", "--source", "comtrade", "--period", "2024"])
    assert (args.period, args.sources) == ("2024", ["comtrade"])


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
    assert main(["refresh", "--source", "nope"]) == 1
    assert "unknown source" in capsys.readouterr().err
