"""Reserve coverage, reference consumption, reliance, METI workbooks, confidential stock positions."""

from __future__ import annotations

import datetime as dt
import shutil

import polars as pl
import pytest

from conftest import SAMPLES
from flows.errors import RarewatchError
from flows.indicators import reserves
from flows.periods import Month


def test_reference_year_rule():
    """EU 2009/119/EC Art. 3(3): previous calendar year; January to June the year before last."""
    assert reserves.reference_year(Month(2020, 6)) == 2018
    assert reserves.reference_year(Month(2020, 7)) == 2019
    assert reserves.reference_year(Month(2020, 1)) == 2018
    assert reserves.reference_year(Month(2019, 12)) == 2018


def candidates(rows):
    return pl.DataFrame(rows, schema=["metal", "year", "method", "tonnes", "citation", "note"], orient="row")


def test_method_precedence_and_fallback():
    c = candidates([("nickel", 2019, "meti", 100.0, "m", None), ("nickel", 2019, "apparent", 90.0, "a", None),
                    ("nickel", 2021, "apparent", 80.0, "a", None), ("tungsten", 2019, "meti", 5.0, "m", None),
                    ("tungsten", 2019, "baseline", 7.0, "b", None)])
    chosen = reserves.select(c, reserves.Precedence.parse("meti,baseline,apparent"))
    picked = {(r["metal"], r["year"]): r["method"] for r in chosen.filter(pl.col("selected")).iter_rows(named=True)}
    assert picked == {("nickel", 2019): "meti", ("nickel", 2021): "apparent", ("tungsten", 2019): "meti"}
    per_metal = reserves.select(c, reserves.Precedence.parse("meti,baseline,apparent|tungsten=baseline,apparent"))
    assert per_metal.filter(pl.col("selected") & (pl.col("metal") == "tungsten"))["method"].item() == "baseline"
    with pytest.raises(RarewatchError, match="unknown method"):
        reserves.Precedence.parse("meti,guess")


def test_baseline_carried_forward_at_most_five_years():
    b = reserves.baseline_consumption([2018, 2019, 2023, 2030])
    re_ = b.filter(pl.col("metal") == "rare_earths")
    assert dict(zip(re_["year"], re_["tonnes"])) == {2018: 18550.0, 2019: 18550.0, 2023: 16039.0}
    assert re_.filter(pl.col("year") == 2019)["note"].item() == "carried forward from 2018"


def test_coverage_by_hand():
    """Baseline 18,550 t for 2018, 180-day target, March 2020 (reference year 2018, 365 days).

    daily = 18,550 / 365 = 50.8219 t; required 180 d = 9,147.9 t; 60 d = 3,049.3 t.
    Stock 5,000 t: cover_days = 5,000 / 50.8219 = 98.4; China 12M share 0.6 ->
    china_disruption_days = 5,000 / (50.8219 x 0.6) = 163.96 = 98.38 / 0.6; gap = 9,147.9 - 5,000 = 4,147.9.
    """
    c = reserves.select(candidates([("rare_earths", 2018, "baseline", 18550.0, "c", None)]),
                        reserves.Precedence.parse("meti,baseline,apparent"))
    china = pl.DataFrame({"metal": ["rare_earths"], "period_end": [dt.date(2020, 3, 31)], "china_share": [0.6]})
    public = reserves.coverage([Month(2020, 3)], c, reserves.stockpile_policy(), china)
    r = public.row(0, named=True)
    assert r["reference_year"] == 2018 and r["target_days"] == 180 and r["days_in_reference_year"] == 365
    assert round(r["required_stock_180d_t"], 1) == 9147.9 and round(r["required_stock_60d_t"], 1) == 3049.3
    assert r["required_stock_target_t"] == r["required_stock_180d_t"]
    stocks = pl.DataFrame({"metal": ["rare_earths"], "as_of": [dt.date(2020, 1, 31)], "tonnes": [5000.0]})
    s = reserves.restricted_coverage(public, stocks).row(0, named=True)
    assert round(s["cover_days"], 1) == 98.4
    assert s["china_disruption_days"] == pytest.approx(s["cover_days"] / 0.6)
    assert round(s["gap_to_target_t"], 1) == 4147.9 and s["ratio_to_target"] == pytest.approx(s["cover_days"] / 180)


def test_leap_reference_year_has_366_days():
    c = reserves.select(candidates([("cobalt", 2020, "apparent", 366.0, "c", None)]),
                        reserves.Precedence.parse("apparent"))
    empty = pl.DataFrame(schema={"metal": pl.String, "period_end": pl.Date, "china_share": pl.Float64})
    r = reserves.coverage([Month(2021, 7)], c, reserves.stockpile_policy(), empty).row(0, named=True)
    assert r["days_in_reference_year"] == 366 and r["daily_reference_t"] == 1.0 and r["target_days"] == 60


def test_reliance_by_hand():
    """Nickel 2019: P 50, I 200, E 30, stocks Dec-2018 10 -> Dec-2019 20 (dS = +10).

    AC = 50 + 200 - 30 - 10 = 210; NIR = (200 - 30 - 10) / 210 = 0.7619; IR = 170 / (50 + 170) = 0.7727.
    Antimony 2019: I 5, E 9 -> net exporter: NIR null, flag set (never a negative share).
    """
    trade = pl.DataFrame({"metal": ["nickel", "antimony"], "year": [2019, 2019], "imports_t": [200.0, 5.0],
                          "exports_t": [30.0, 9.0]})
    meti_rows = [("nickel", y, m, 50 / 12, 10.0 if y == 2018 else 20.0) for y in (2018, 2019) for m in range(1, 13)]
    meti = pl.DataFrame(meti_rows, schema=["metal", "year", "month", "production_t", "stocks_t"], orient="row")
    cons = reserves.select(candidates([("antimony", 2019, "baseline", 4.0, "c", None)]),
                           reserves.Precedence.parse("baseline"))
    r = reserves.reliance(trade, meti, cons)
    ni = r.filter(pl.col("metal") == "nickel").row(0, named=True)
    assert ni["apparent_consumption_t"] == pytest.approx(210.0)
    assert ni["net_import_reliance"] == pytest.approx(160 / 210) and ni["import_reliance"] == pytest.approx(170 / 220)
    sb = r.filter(pl.col("metal") == "antimony").row(0, named=True)
    assert sb["net_exporter"] and sb["net_import_reliance"] is None and sb["import_reliance"] is None


# ----------------------------------------------------------------------------- confidential stocks
CANARY = 4321.987


@pytest.fixture
def reserve_inbox(settings_env):
    shutil.copytree(SAMPLES / "japan_customs", settings_env.inbox / "japan_customs")
    return settings_env


def public_text(root) -> str:
    """Every value of every public file, as text (Parquet read back, the rest raw)."""
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "restricted" in p.parts:
            continue
        if p.suffix == ".parquet":
            out.append(pl.read_parquet(p).write_csv())
        else:
            out.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)


@pytest.mark.usefixtures("prefect_harness")
def test_stock_figures_only_under_the_restricted_root(reserve_inbox, tmp_path, caplog):
    from flows.monthly import monthly_refresh

    stock_file = tmp_path / "secret" / "stocks.csv"
    stock_file.parent.mkdir()
    stock_file.write_text(f"metal,as_of,tonnes\nrare_earths,2019-12-31,5000\ncobalt,2019-06-30,{CANARY}\n")
    restricted = tmp_path / "vault"
    reserve_inbox(stock_positions=stock_file, restricted_dir=restricted)
    result = monthly_refresh()
    assert result["reserve_coverage"]["restricted_reserve_coverage"] > 0
    rows = pl.read_parquet(restricted / "reserve_coverage" / "part-0.parquet")
    mar = rows.filter((pl.col("metal") == "rare_earths") & (pl.col("period_start") == dt.date(2020, 3, 1)))
    r = mar.row(0, named=True)
    assert (r["reference_year"], r["consumption_method"], r["reference_consumption_t"]) == (2018, "baseline", 18550.0)
    assert round(r["cover_days"], 1) == 98.4 and round(r["required_stock_180d_t"], 1) == 9147.9
    assert r["china_disruption_days"] == pytest.approx(r["cover_days"] / r["china_share_12m_qty"])
    assert (restricted / "NOT_FOR_DISTRIBUTION.txt").exists()

    wh = reserve_inbox.warehouse
    text = public_text(wh)
    cobalt_cover = rows.filter(pl.col("metal") == "cobalt")["cover_days"][0]
    for secret in (str(CANARY), repr(cobalt_cover)[:10], repr(r["cover_days"])[:10],
                   repr(r["china_disruption_days"])[:10]):
        assert secret not in text, secret
    public = pl.read_parquet(wh / "indicators" / "reserve_coverage" / "part-0.parquet")
    assert not {"stock_t", "cover_days", "china_disruption_days"} & set(public.columns)
    assert str(CANARY) not in caplog.text

    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
        logs = client.read_logs()
    assert all(str(CANARY) not in str(a.data) for a in artifacts)
    assert all(str(CANARY) not in (log.message or "") for log in logs)


@pytest.mark.usefixtures("prefect_harness")
def test_without_stock_file_no_stock_figure_anywhere(reserve_inbox):
    from flows.monthly import monthly_refresh

    result = monthly_refresh()
    assert "restricted_reserve_coverage" not in result["reserve_coverage"]
    wh = reserve_inbox.warehouse
    assert not (wh / "restricted").exists()
    public = pl.read_parquet(wh / "indicators" / "reserve_coverage" / "part-0.parquet")
    assert public.filter(pl.col("metal") == "rare_earths")["target_days"].unique().to_list() == [180]
    consumption = pl.read_parquet(wh / "indicators" / "reference_consumption" / "part-0.parquet")
    assert consumption.filter(pl.col("selected")).select("metal", "year").is_duplicated().sum() == 0


@pytest.mark.usefixtures("prefect_harness")
def test_malformed_stock_file_fails_without_showing_figures(reserve_inbox, tmp_path):
    from flows.errors import SourceFailed
    from flows.monthly import monthly_refresh

    bad = tmp_path / "stocks.csv"
    bad.write_text(f"metal,as_of,tonnes\nrare_earths,2019-12-31,{CANARY}\ncobalt,31/12/2019,-{CANARY}\n")
    reserve_inbox(stock_positions=bad)
    with pytest.raises(SourceFailed) as err:
        monthly_refresh()
    message = str(err.value)
    assert "stocks.csv: row 3, column 'as_of'" in message and str(CANARY) not in message
    assert not (reserve_inbox.warehouse / "restricted").exists()


def test_stock_positions_read_from_parquet(tmp_path):
    path = tmp_path / "stocks.parquet"
    pl.DataFrame({"metal": ["rare_earths"], "as_of": [dt.date(2019, 12, 31)], "tonnes": [5000.0]}).write_parquet(path)
    got = reserves.read_stock_positions(path)
    assert got.row(0) == ("rare_earths", dt.date(2019, 12, 31), 5000.0)
