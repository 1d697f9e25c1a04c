"""The offline HTML report (issue 11): built by each run, drawn in headless Chromium (Debian's
`chromium`, started here), nothing fetched from elsewhere, no stock figure in it."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import pytest

from conftest import SAMPLES

CANARY = 7777.4321
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory, prefect_harness):
    root = tmp_path_factory.mktemp("report")
    stocks = root / "stocks.csv"
    stocks.write_text(f"metal,as_of,tonnes\nrare_earths,2020-06-30,{CANARY}\n")
    saved = {k: v for k, v in os.environ.items() if k.startswith("RAREWATCH_")}
    os.environ.update(RAREWATCH_WAREHOUSE=str(root / "warehouse"), RAREWATCH_INBOX=str(SAMPLES),
                      RAREWATCH_TASK_RETRIES="0", RAREWATCH_STOCK_POSITIONS=str(stocks),
                      RAREWATCH_RESTRICTED_DIR=str(root / "restricted"))
    try:
        from flows.monthly import monthly_refresh

        monthly_refresh()
    finally:
        for k in [k for k in os.environ if k.startswith("RAREWATCH_")]:
            del os.environ[k]
        os.environ.update(saved)
    assert (root / "restricted").exists()  # the canary went through the restricted computation
    return root / "warehouse" / "reports"


def test_a_report_per_month_and_the_latest(reports):
    assert (reports / "latest.html").read_bytes() == (reports / "2020-12.html").read_bytes()


def test_nothing_is_fetched_and_no_stock_figure_appears(reports):
    page = (reports / "latest.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert "default-src 'none'" in page  # and the page forbids itself any request
    assert str(CANARY) not in page and "7777.43" not in page
    assert struct.pack("<d", CANARY) not in page.encode()


def test_the_july_2020_alert_is_in_the_report(reports):
    page = (reports / "latest.html").read_text()
    assert "China&#x27;s exports of rare_earths in 2020-07: 1620.3 t, -69.1% year on year" in page or \
        "China's exports of rare_earths in 2020-07: 1620.3 t, -69.1% year on year" in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_every_chart_is_drawn_in_headless_chromium_without_console_errors(reports, tmp_path):
    url = (reports / "latest.html").as_uri()
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'a'}", "--enable-logging=stderr", "--v=0",
                          "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    m = re.search(r'data-charts="(\d+)" data-drawn="(\d+)"', run.stdout)
    assert m, "the page's own check did not run"
    charts, drawn = int(m.group(1)), int(m.group(2))
    assert charts >= 20 and drawn == charts
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Refused to" in line]
    assert not console, console[:5]
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'b'}", "--window-size=1280,2000",
                    f"--screenshot={shot}", url], capture_output=True, timeout=180)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.std() > 0.05  # drawn, not a blank page
