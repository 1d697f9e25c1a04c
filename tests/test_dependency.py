"""Dependency indicators against hand-computed values (docs/sources.md §7)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from flows.indicators.dependency import compute, windows
from flows.periods import Month, month_range


def trade(rows: list[tuple]) -> pl.DataFrame:
    """rows: (year, month, metal, code, iso3, special, value, quantity_kg)."""
    return pl.DataFrame(
        [(y, m, metal, code, iso, f"name {code}", special, iso is None and not special, v, q)
         for y, m, metal, code, iso, special, v, q in rows],
        schema={"year": pl.Int64, "month": pl.Int64, "metal": pl.String, "partner_code": pl.String,
                "partner_iso3": pl.String, "partner_name": pl.String, "special_area": pl.Boolean,
                "unknown_partner": pl.Boolean, "value": pl.Float64, "quantity": pl.Float64},
        orient="row",
    )


def one(df: pl.DataFrame, **where) -> dict:
    out = df.filter(pl.all_horizontal([pl.col(k) == v for k, v in where.items()]))
    assert out.height == 1, out
    return out.row(0, named=True)


def test_shares_hhi_and_special_areas_by_hand():
    """July 2020, rare earths, quantity (kg): China 600, Viet Nam 250, France 150, special area 703: 100.

    total (special areas excluded) = 1,000; shares 0.60, 0.25, 0.15;
    HHI = 60^2 + 25^2 + 15^2 = 3,600 + 625 + 225 = 4,450; effective suppliers = 10,000/4,450 = 2.2472;
    top3 = 1.0; special_areas_amount = 100.
    Value basis (thousand yen): China 900, Viet Nam 100 -> shares 0.9, 0.1; HHI 8,100 + 100 = 8,200.
    """
    t = trade([
        (2020, 7, "rare_earths", "105", "CHN", False, 900.0, 600.0),
        (2020, 7, "rare_earths", "110", "VNM", False, 100.0, 250.0),
        (2020, 7, "rare_earths", "210", "FRA", False, 0.0, 150.0),
        (2020, 7, "rare_earths", "703", None, True, 50.0, 100.0),
    ])
    shares, dep = compute(t, [Month(2020, 7)], source="japan_customs", value_unit="JPY_thousand")
    q = one(dep, freq="M", basis="quantity", metal="rare_earths")
    assert q["total"] == 1000.0 and q["partners"] == 3
    assert q["china_share"] == pytest.approx(0.60)
    assert q["hhi"] == pytest.approx(4450.0)
    assert q["effective_suppliers"] == pytest.approx(10_000 / 4450)
    assert q["top3_share"] == pytest.approx(1.0)
    assert q["top_partner_iso3"] == "CHN" and q["top_partner_share"] == pytest.approx(0.6)
    assert q["special_areas_amount"] == 100.0 and q["unit"] == "kg"
    assert (q["period_start"], q["period_end"], q["months"]) == (dt.date(2020, 7, 1), dt.date(2020, 7, 31), 1)
    v = one(dep, freq="M", basis="value", metal="rare_earths")
    assert v["hhi"] == pytest.approx(8200.0) and v["partners"] == 2 and v["unit"] == "JPY_thousand"
    qs = shares.filter((pl.col("basis") == "quantity")).sort("rank")
    assert qs["partner_iso3"].to_list() == ["CHN", "VNM", "FRA"]
    assert qs["share"].to_list() == pytest.approx([0.6, 0.25, 0.15])
    assert "703" not in shares["partner_code"].to_list()


def test_unknown_partner_counts_in_total_and_is_reported():
    """China 300, unknown code 999: 100 -> total 400, China 0.75, unknown 100 reported."""
    t = trade([(2020, 1, "cobalt", "105", "CHN", False, 3.0, 300.0),
               (2020, 1, "cobalt", "999", None, False, 1.0, 100.0)])
    _, dep = compute(t, [Month(2020, 1)], source="s", value_unit="JPY_thousand")
    q = one(dep, freq="M", basis="quantity")
    assert q["total"] == 400.0 and q["china_share"] == pytest.approx(0.75)
    assert q["unknown_partners_amount"] == 100.0


def test_missing_mass_is_left_out_of_quantity_basis_only():
    t = trade([(2020, 1, "x", "105", "CHN", False, 10.0, None), (2020, 1, "x", "110", "VNM", False, 10.0, 5.0)])
    _, dep = compute(t, [Month(2020, 1)], source="s", value_unit="JPY_thousand")
    assert one(dep, basis="value")["china_share"] == pytest.approx(0.5)
    assert one(dep, basis="quantity")["china_share"] == 0.0


def test_only_special_areas_gives_a_row_without_shares():
    t = trade([(2020, 1, "x", "701", None, True, 10.0, 5.0)])
    shares, dep = compute(t, [Month(2020, 1)], source="s", value_unit="JPY_thousand")
    q = one(dep, basis="quantity")
    assert q["total"] == 0.0 and q["china_share"] is None and q["hhi"] is None and q["special_areas_amount"] == 5.0
    assert shares.is_empty()


def test_12m_window_and_annual_need_complete_months():
    """China 10 kg a month in 2019, Viet Nam 30 kg in Dec 2019 only; months 2019-01..2020-02 available.

    12M ending 2019-12: China 120, Viet Nam 30 -> China share 0.8; HHI 80^2 + 20^2 = 6,800.
    12M ending 2020-01 = Feb 2019..Jan 2020: China 120 (2020-01 included), Viet Nam 30.
    No 12M ending before 2019-12; A only for 2019 (2020 incomplete).
    """
    rows = [(2019, m, "x", "105", "CHN", False, 1.0, 10.0) for m in range(1, 13)]
    rows += [(2019, 12, "x", "110", "VNM", False, 1.0, 30.0), (2020, 1, "x", "105", "CHN", False, 1.0, 10.0),
             (2020, 2, "x", "105", "CHN", False, 1.0, 10.0)]
    months = month_range(Month(2019, 1), Month(2020, 2))
    _, dep = compute(trade(rows), months, source="s", value_unit="JPY_thousand")
    q = dep.filter(pl.col("basis") == "quantity")
    r12 = q.filter(pl.col("freq") == "12M").sort("period_end")
    assert r12["period_end"].to_list() == [dt.date(2019, 12, 31), dt.date(2020, 1, 31), dt.date(2020, 2, 29)]
    first = r12.row(0, named=True)
    assert first["period_start"] == dt.date(2019, 1, 1)
    assert first["total"] == 150.0 and first["china_share"] == pytest.approx(0.8)
    assert first["hhi"] == pytest.approx(6800.0) and first["months"] == 12
    assert r12.row(1, named=True)["total"] == 150.0
    annual = q.filter(pl.col("freq") == "A")
    assert annual["period_start"].to_list() == [dt.date(2019, 1, 1)]
    assert annual.row(0, named=True)["total"] == 150.0


def test_gap_month_blocks_windows_containing_it():
    months = [Month(2019, m) for m in range(1, 13) if m != 6] + [Month(2020, 1)]
    w = windows(months)
    assert w.filter(pl.col("freq") == "A").is_empty()
    assert w.filter(pl.col("freq") == "12M").is_empty()


def test_rank_ties_are_broken_by_partner_code():
    t = trade([(2020, 1, "x", "210", "FRA", False, 1.0, 5.0), (2020, 1, "x", "110", "VNM", False, 1.0, 5.0)])
    shares, _ = compute(t, [Month(2020, 1)], source="s", value_unit="JPY_thousand")
    q = shares.filter(pl.col("basis") == "quantity").sort("rank")
    assert q["partner_code"].to_list() == ["110", "210"]
