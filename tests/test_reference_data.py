"""Reference data in the repo: commodity catalogue (docs/sources.md §6) and Japan's country codes (docs/sources.md §1.5)."""

from __future__ import annotations

import csv
import datetime as dt

import polars as pl
import pytest

from flows.catalogue import Catalogue, japan_customs_countries

CAT = Catalogue.load()

# docs/sources.md §6, HS6 codes per metal id required by issue 2.
REQUIRED = {
    "rare_earths": {"280530", "284610", "284690"},
    "rare_earth_magnets": {"850511"},
    "tungsten": {"261100", "284180", "810110", "810194", "810199", "720280"},
    "molybdenum": {"261310", "261390", "282570", "810210", "810294", "720270"},
    "cobalt": {"260500", "282200", "810520", "810530"},
    "nickel": {"260400", "750110", "750210", "750220", "720260"},
    "chromium": {"261000", "720241", "720249", "720250", "811221", "811222", "811229"},
    "manganese": {"260200", "811100", "720211", "720219", "720230"},
    "vanadium": {"282530", "720292"},
    "lithium": {"283691", "282520"},
    "antimony": {"261710", "282580", "811010", "811020", "811090"},
    "platinum_group": {"711011", "711019", "711021", "711029", "711031", "711039", "711041", "711049"},
    "graphite": {"250410", "250490", "380110"},
    "silicon": {"280461", "280469", "720221", "720229"},
    "titanium": {"261400", "810820"},
    "magnesium": {"810411", "810419", "810430"},
    "niobium": {"261590", "720293"},
    "tantalum": {"810320"},
}


@pytest.mark.parametrize("metal", sorted(REQUIRED))
def test_catalogue_covers_reference_codes(metal):
    assert REQUIRED[metal] <= set(CAT.codes_of(metal))


def test_every_code_belongs_to_one_metal_at_a_time():
    e = CAT.entries
    assert e.select("code", "valid_from").is_duplicated().sum() == 0


def assign(codes_periods: list[tuple[str, dt.date]]) -> dict[str, str]:
    df = pl.DataFrame({"hs9": [c for c, _ in codes_periods], "period": [p for _, p in codes_periods]})
    out = CAT.assign_metal(df)
    return dict(zip(out["hs9"] + "@" + out["period"].cast(pl.String), out["metal"]))


def test_longest_prefix_wins_for_japanese_national_splits():
    d = dt.date(2020, 1, 1)
    got = assign([("811292100", d), ("811292200", d), ("811292910", d), ("811292990", d), ("811292500", d),
                  ("280530000", d), ("850511000", d)])
    assert got["811292100@2020-01-01"] == "indium"
    assert got["811292200@2020-01-01"] == "vanadium"
    assert got["811292910@2020-01-01"] == "germanium"
    assert got["811292990@2020-01-01"] == "gallium"
    assert "811292500@2020-01-01" not in got  # a heading code of no listed metal is left out, not guessed
    assert got["280530000@2020-01-01"] == "rare_earths"
    assert got["850511000@2020-01-01"] == "rare_earth_magnets"


def test_hs_revision_validity():
    got = assign([("810390000", dt.date(2021, 12, 1)), ("810390000", dt.date(2022, 1, 1)),
                  ("810399000", dt.date(2022, 1, 1)), ("811231000", dt.date(2021, 6, 1)),
                  ("811231000", dt.date(2022, 6, 1))])
    assert got == {"810390000@2021-12-01": "tantalum", "810399000@2022-01-01": "tantalum",
                   "811231000@2022-06-01": "hafnium"}


def test_key_country_codes():
    c = japan_customs_countries()
    iso = dict(zip(c["code"], c["iso3"]))
    assert iso["105"] == "CHN" and iso["110"] == "VNM" and iso["113"] == "MYS" and iso["117"] == "PHL"
    assert iso["210"] == "FRA" and iso["213"] == "DEU" and iso["103"] == "KOR" and iso["304"] == "USA"
    assert iso["235"] == "EST" and iso["224"] == "RUS" and iso["601"] == "AUS"
    special = set(c.filter(pl.col("special_area"))["code"])
    assert special == {"701", "702", "703"}
    assert c["iso3"].drop_nulls().is_duplicated().sum() == 0


def test_country_table_matches_the_official_list(shared_fixtures):
    with open(shared_fixtures / "japan_customs" / "country_codes.csv", newline="", encoding="utf-8") as f:
        official = {r["Code"].strip().zfill(3): r["Country"].strip() for r in csv.DictReader(f)}
    ours = japan_customs_countries()
    assert dict(zip(ours["code"], ours["name"])) == official
