"""China Customs table (5): the real pages (../shared/fixtures/gacc) and pages built for each trap."""

from __future__ import annotations

import datetime as dt
import shutil

import polars as pl
import pytest
from werkzeug import Response

from flows.catalogue import Catalogue
from flows.errors import FetchError, ReleaseFileError
from flows.httpclient import session
from flows.periods import Month, Year
from flows.sources import ReleaseFile
from flows.sources.gacc import Gacc, index, monthly_series

GACC = Gacc()
CAT = Catalogue.load()


def parse(data: bytes, name: str = "page.html"):
    return GACC.parse(ReleaseFile("gacc", name, f"http://127.0.0.1/{name}"), data, "0" * 64, CAT)


def rare_earth(p) -> dict:
    rows = p.frame.filter(pl.col("commodity") == "rare_earths")
    assert rows.height == 1
    return rows.row(0, named=True)


def page(*, title="(5) China's Major Exports by Quantity and Value, May 2020 (in CNY)",
         banner="Value Unit: CNY 100 Million", groups=("May", "Jan-May in Total", "Jan-May 2019 in Total",
                                                       "Jan-May Total Year-on-Year ±%"),
         rows=(("Rare Earth", "Ton", "3,000.0", "2.0", "15,000.0", "10.0", "20,000.0", "12.5", "-25.0", "-20.0"),),
         unit_col=True, date="2020/06/07") -> bytes:
    """A table (5) page in GACC's markup (title row, unit banner, two header rows, data rows)."""
    def td(text, span=1):
        return f'<td colspan="{span}"><span><b>{text}</b></span></td>'
    head1 = td("Commodity") + (td("Quantity Unit") if unit_col else "") + "".join(td(g, 2) for g in groups)
    head2 = "".join(td(x) for _ in groups for x in ("Quantity", "Value"))
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return (f'<html><head><title>{title}</title></head><body><div class="atcl-date">{date}</div>'
            f'<table><tbody><tr>{td(title, 10)}</tr><tr>{td(banner, 10)}</tr><tr>{head1}</tr><tr>{head2}</tr>'
            f"{body}<tr>{td('Note: something', 10)}</tr></tbody></table></body></html>").encode()


# ----------------------------------------------------------------------------- real pages
def test_may_2019_cny(shared_fixtures):
    p = parse((shared_fixtures / "gacc" / "release_section5_major_exports_may2019_cny.html").read_bytes())
    assert p.failures.is_empty()
    r = rare_earth(p)
    assert (r["year"], r["month"], r["jan_feb"], r["quantity_unit"]) == (2019, 5, False, "Ton")
    assert r["quantity_month"] == 3639.5 and r["quantity_ytd"] == 19265.8 and r["quantity_ytd_prior"] == 20769.8
    assert r["value_month"] == pytest.approx(2.4e8) and r["currency"] == "CNY"
    assert (r["ytd_yoy_quantity_pct"], r["ytd_yoy_value_pct"]) == (-7.2, -5.1)
    assert p.frame.height == 32  # every commodity row, notes left out


def test_apr_2025_usd_rows_without_unit_cell(shared_fixtures):
    p = parse((shared_fixtures / "gacc" / "release_section5_major_exports_apr2025_usd.html").read_bytes())
    assert p.failures.is_empty()
    r = rare_earth(p)
    assert r["quantity_month"] == 4784.8 and r["value_month"] == pytest.approx(21.7e6) and r["currency"] == "USD"
    assert r["quantity_ytd"] == 18962.3 and r["quantity_ytd_prior"] == 18049.5
    assert r["quantity_unit"] == "Ton"  # omitted on the page: the commodity's known unit
    assert p.vintage == dt.date(2025, 5, 9)
    aquatic = p.frame.filter(pl.col("commodity_label") == "Aquatic products").row(0, named=True)
    assert aquatic["quantity_month"] == 35.0 and aquatic["quantity_unit"] is None


def test_jan_feb_2025_combined(shared_fixtures):
    p = parse((shared_fixtures / "gacc" / "release_section5_major_exports_janfeb2025_cny.html").read_bytes())
    assert p.failures.is_empty()
    r = rare_earth(p)
    assert r["jan_feb"] and (r["year"], r["month"]) == (2025, 2)
    assert (r["period_start"], r["period_end"]) == (dt.date(2025, 1, 1), dt.date(2025, 2, 28))
    assert r["quantity_month"] == 8511.3 == r["quantity_ytd"] and r["quantity_ytd_prior"] == 8773.9
    assert p.months == [Month(2025, 1), Month(2025, 2)]


def test_may_2025_cny(shared_fixtures):
    r = rare_earth(parse((shared_fixtures / "gacc" / "release_section5_major_exports_may2025_cny.html").read_bytes()))
    assert (r["quantity_month"], r["quantity_ytd"], r["quantity_ytd_prior"]) == (5864.6, 24827.0, 24266.5)
    assert r["value_month"] == pytest.approx(1.3e8)


def test_index_links(shared_fixtures):
    links = index.release_links((shared_fixtures / "gacc" / "preliminary2026_index.html").read_text())
    assert set(links) == {("CNY", 2), ("USD", 2), ("CNY", 3), ("USD", 3)}
    assert links[("USD", 3)].endswith("/Statics/cad31c59-6a89-4070-9dbb-4490e6b6e1d8.html")


def test_index_link_wordings():
    row = ("<table><tr><td>(5) China's Major Exports by Quantity and Value (in USD)</td><td>"
           "<a href='/Statics/a.html'>Jan.-Feb.</a><a href=\"/Statics/b.html\"><span>March</span></a></td></tr></table>")
    assert index.release_links(row) == {("USD", 2): "/Statics/a.html", ("USD", 3): "/Statics/b.html"}


# ----------------------------------------------------------------------------- traps
def test_banners_convert_values_to_currency_units():
    usd_thousand = page(title="(5) China's Major Exports by Quantity and Value, May 2020 (in USD)",
                        banner="Unit: US$1,000",
                        rows=(("Rare earth", "Ton", "3,000.0", "21,700.0", "15,000.0", "100,000.0", "20,000.0",
                               "125,000.0", "-25.0", "-20.0"),))
    assert rare_earth(parse(usd_thousand))["value_month"] == pytest.approx(21.7e6)
    usd_million = page(title="(5) China's Major Exports by Quantity and Value, May 2020 (in USD)",
                       banner="Unit: USD1 Million")
    r = rare_earth(parse(usd_million))
    assert r["value_month"] == pytest.approx(2e6) and r["value_unit_published"] == 1e6


def test_number_first_banner_in_yuan():
    r = rare_earth(parse(page(banner="Unit: 100 million yuan")))
    assert r["value_month"] == pytest.approx(2e8) and r["currency"] == "CNY"


def test_title_and_unit_currency_must_agree():
    with pytest.raises(ReleaseFileError, match="title says CNY but the unit row says 'Unit: USD1 Million'"):
        parse(page(banner="Unit: USD1 Million"))


def test_page_without_table_is_rejected():
    img = b'<html><body><div class="atcl-cnt"><img src="/u/2018/table5.png"></div></body></html>'
    with pytest.raises(ReleaseFileError, match="no data table"):
        parse(img)


def test_unmappable_headers_are_rejected():
    with pytest.raises(ReleaseFileError, match="cannot map the period headers"):
        parse(page(groups=("May", "Jan-May in Total", "Share of total", "Jan-May Total Year-on-Year ±%")))


@pytest.mark.parametrize("label", ["Rare earth", "RARE EARTH", "Rare-earth", "Rare earths",
                                   "Rare earth ores, metals and compounds", "  Rare Earth"])
def test_label_variants_normalise(label):
    rows = ((label, "Ton", "3,000.0", "2.0", "15,000.0", "10.0", "20,000.0", "12.5", "-25.0", "-20.0"),)
    assert rare_earth(parse(page(rows=rows)))["commodity_label"] == label.strip()


def test_magnets_are_not_rare_earths():
    rows = (("Rare earth permanent magnets", "Ton", "5.0", "1.0", "25.0", "5.0", "20.0", "4.0", "25.0", "25.0"),)
    assert parse(page(rows=rows)).frame["commodity"].to_list() == [None]


def test_numeric_headers_and_nbsp():
    data = page(groups=("5", "1-5 Total", "1-5 Total, 2019", "1-5 Total, Year-On-Year(%)"),
                rows=(("&nbsp;&nbsp;Rare earth", "Ton", "3,000.0&nbsp;", "2.0", "15,000.0", "10.0", "20,000.0",
                       "12.5", "-25.0", "-20.0"),))
    r = rare_earth(parse(data))
    assert r["quantity_month"] == 3000.0 and r["commodity_label"] == "Rare earth"


def test_row_of_wrong_width_and_bad_numbers_are_failures():
    rows = (("Rare Earth", "Ton", "3,000.0", "2.0", "15,000.0"),
            ("Coal", "10,000 Tons", "x1", "2.0", "15,000.0", "10.0", "20,000.0", "12.5", "-25.0", "-20.0"))
    f = parse(page(rows=rows)).failures
    assert f.height == 2
    assert "row has 5 cells" in f["check"][0] and f["column"][1].startswith("Coal / May quantity")


def test_ytd_yoy_inconsistent_with_ytd_is_a_failure():
    rows = (("Rare Earth", "Ton", "3,000.0", "2.0", "15,000.0", "10.0", "20,000.0", "12.5", "-20.0", "-20.0"),)
    f = parse(page(rows=rows)).failures
    assert f.height == 1 and f["column"][0] == "Rare Earth / YoY quantity" and "-25.00" in f["check"][0]


def test_monthly_series_yoy_from_prior_ytd_differences():
    """Apr 2020: ytd prior (Jan-Apr 2019) 16,000 t; May 2020: ytd prior (Jan-May 2019) 20,000 t.

    May 2019 = 20,000 - 16,000 = 4,000 t; May 2020 = 3,000 t -> YoY = 100 * (3,000/4,000 - 1) = -25 %.
    Value (CNY 100 million): prior ytd 12.5 - 10.0 = 2.5e8; May 2020 2.0e8 -> -20 %.
    """
    apr = page(title="(5) China's Major Exports by Quantity and Value, April 2020 (in CNY)",
               groups=("Apr", "Jan-Apr in Total", "Jan-Apr 2019 in Total", "Jan-Apr Total Year-on-Year ±%"),
               rows=(("Rare Earth", "Ton", "2,000.0", "1.5", "12,000.0", "8.0", "16,000.0", "10.0", "-25.0", "-20.0"),))
    may = page()
    frame = pl.concat([parse(apr, "apr.html").frame, parse(may, "may.html").frame])
    s = monthly_series(frame).filter(pl.col("period_start") == dt.date(2020, 5, 1)).row(0, named=True)
    assert s["quantity_t"] == 3000.0 and s["quantity_t_prior_year"] == pytest.approx(4000.0)
    assert s["yoy_quantity_pct"] == pytest.approx(-25.0)
    assert s["value_prior_year"] == pytest.approx(2.5e8) and s["yoy_value_pct"] == pytest.approx(-20.0)
    april = monthly_series(frame).filter(pl.col("period_start") == dt.date(2020, 4, 1)).row(0, named=True)
    assert april["yoy_quantity_pct"] is None  # March 2020's release is missing: not derivable


# ----------------------------------------------------------------------------- through the flow
@pytest.mark.usefixtures("prefect_harness")
def test_real_pages_land_through_the_inbox(shared_fixtures, settings_env):
    from flows.monthly import monthly_refresh

    folder = settings_env.inbox / "gacc"
    folder.mkdir()
    for f in (shared_fixtures / "gacc").glob("release_*.html"):
        shutil.copy(f, folder / f.name)
    result = monthly_refresh(sources=["gacc"])
    assert result["gacc"]["status"] == "ok"
    wh = settings_env.warehouse
    clean = pl.scan_parquet(wh / "clean" / "china_customs_exports", hive_partitioning=True).collect()
    re_rows = clean.filter(pl.col("commodity") == "rare_earths")
    may19 = re_rows.filter((pl.col("year") == 2019) & (pl.col("month") == 5)).row(0, named=True)
    assert (may19["quantity_month"], may19["quantity_ytd"]) == (3639.5, 19265.8)
    apr25 = re_rows.filter((pl.col("year") == 2025) & (pl.col("month") == 4)).row(0, named=True)
    assert apr25["quantity_month"] == 4784.8 and apr25["value_month"] == pytest.approx(21.7e6)
    assert apr25["currency"] == "USD"
    monthly = pl.read_parquet(wh / "indicators" / "china_exports_monthly" / "part-0.parquet")
    assert monthly.filter(pl.col("jan_feb"))["quantity_t"].to_list() == [8511.3]


def test_discovery_from_the_real_index(shared_fixtures, httpserver, settings_env):
    idx = (shared_fixtures / "gacc" / "preliminary2026_index.html").read_text()
    httpserver.expect_request("/statics/report/preliminary2026.html").respond_with_data("", status=404)
    httpserver.expect_request("/statics/report/preliminary.html").respond_with_data(idx, content_type="text/html")
    settings = settings_env(gacc_base_url=httpserver.url_for("").rstrip("/"), http_retries=0)
    http = session(settings, "gacc")
    refs = GACC.discover(settings, http, Month(2026, 1))  # January: the Jan-Feb release
    assert [r.name for r in refs] == ["table5_2026-02_cny.html", "table5_2026-02_usd.html"]
    assert refs[0].url == httpserver.url_for("/Statics/2e12d3d0-91fe-4567-9734-32ce2880f05a.html")
    assert len(GACC.discover(settings, http, Year(2026))) == 4
    with pytest.raises(FetchError, match=r"no table \(5\) release linked for 2026-04"):
        GACC.discover(settings, http, Month(2026, 4))
    httpserver.expect_request("/statics/report/preliminary2025.html").respond_with_data("", status=404)
    with pytest.raises(FetchError, match="shows 2026"):  # the current-year page is not 2025's
        GACC.discover(settings, http, Month(2025, 5))


def test_fetch_release_page(httpserver, settings_env):
    httpserver.expect_request("/Statics/abc.html").respond_with_handler(
        lambda r: Response(page(), content_type="text/html"))
    settings = settings_env(gacc_base_url=httpserver.url_for("").rstrip("/"))
    ref = ReleaseFile("gacc", "p.html", httpserver.url_for("/Statics/abc.html"))
    assert rare_earth(parse(GACC.fetch(settings, session(settings, "gacc"), ref)))["quantity_month"] == 3000.0


# ----------------------------------------------------------------------------- whole releases
def imports_page(month: str = "May", year: int = 2020, qty: str = "1,000.0") -> bytes:
    """Table (6) major imports: the same template and layout as table (5) (docs/sources.md)."""
    return page(title=f"(6) China's Major Imports by Quantity and Value, {month} {year} (in CNY)",
                rows=(("Rare Earth", "Ton", qty, "0.5", "5,000.0", "2.5", "4,000.0", "2.0", "25.0", "25.0"),
                      ("Iron ore", "10,000 tons", "9,000.0", "600.0", "45,000.0", "3,000.0", "44,000.0",
                       "2,900.0", "2.3", "3.4")))


def by_country_page() -> bytes:
    """Table (4), by country/region: same page template, another table; recognised by its title."""
    title = "(4) China's Total Export &amp; Import Values by Country/Region, May 2020 (in CNY)"

    def td(text, span=1):
        return f'<td colspan="{span}">{text}</td>'
    rows = "".join(f"<tr>{td(c)}{td('1,000.0')}{td('2,000.0')}{td('3.5')}</tr>" for c in ("Japan", "Korea", "ASEAN"))
    return (f"<html><head><title>{title}</title></head><body><table><tr>{td(title, 4)}</tr>"
            f"<tr>{td('Unit: CNY 100 Million', 4)}</tr>"
            f"<tr>{td('Country/Region')}{td('Export')}{td('Import')}{td('%')}</tr>{rows}</table></body></html>").encode()


def test_other_tables_of_a_release_are_skipped_not_failed():
    assert parse(by_country_page()).skip.startswith("table (4) China's Total Export & Import Values by Country/Region")
    assert "read by source gacc_imports" in parse(imports_page()).skip
    from flows.sources.gacc import GaccImports

    imp = GaccImports().parse(ReleaseFile("gacc_imports", "p.html", "http://127.0.0.1/p.html"), imports_page(), "0" * 64, CAT)
    assert imp.skip is None and imp.failures.is_empty()
    assert rare_earth(imp)["quantity_month"] == 1000.0
    assert "read by source gacc" in GaccImports().parse(ReleaseFile("gacc_imports", "q.html", "http://127.0.0.1/q.html"), page(),
                                                         "0" * 64, CAT).skip
    with pytest.raises(ReleaseFileError, match="not a China Customs release table: looked for"):
        parse(b"<html><body><table>" + b"<tr><td>a</td><td>b</td></tr>" * 6 + b"</table></body></html>")


def test_index_year_is_the_selected_option_and_table6_links(shared_fixtures):
    idx = (shared_fixtures / "gacc" / "preliminary2026_index.html").read_text()
    assert index.shown_year(idx) == 2026
    assert index.shown_year(idx.replace('<option value="2024">', '<option value="2024" selected="selected">')) == 2024
    imports = index.release_links(idx, "imports")
    assert {m for _, m in imports} == {2, 3} and set(imports.values()).isdisjoint(index.release_links(idx).values())


@pytest.mark.usefixtures("prefect_harness")
def test_whole_release_in_the_inbox_lands_exports_and_imports(settings_env):
    from flows.monthly import monthly_refresh

    folder = settings_env.inbox / "gacc"
    folder.mkdir()
    (folder / "t5_2020-05.html").write_bytes(page())
    (folder / "t6_2020-05.html").write_bytes(imports_page())
    (folder / "t4_2020-05.html").write_bytes(by_country_page())
    result = monthly_refresh(sources=["gacc", "gacc_imports"])
    assert result["gacc"]["status"] == "ok" and result["gacc_imports"]["status"] == "ok"
    wh = settings_env.warehouse
    exports = pl.scan_parquet(wh / "clean" / "china_customs_exports", hive_partitioning=True).collect()
    imports = pl.scan_parquet(wh / "clean" / "china_customs_imports", hive_partitioning=True).collect()
    assert exports.filter(pl.col("commodity") == "rare_earths")["quantity_month"].to_list() == [3000.0]
    assert imports.filter(pl.col("commodity") == "rare_earths")["quantity_month"].to_list() == [1000.0]
    monthly = pl.read_parquet(wh / "indicators" / "china_imports_monthly" / "part-0.parquet")
    assert monthly["quantity_t"].to_list() == [1000.0]
    skipped = [f for f in result["gacc"]["files"] if f["status"].startswith("skipped")]
    assert {f["file"] for f in skipped} == {"t4_2020-05.html", "t6_2020-05.html"}
    manifest = pl.read_parquet(wh / "raw" / "gacc" / "manifest.parquet")
    t4 = manifest.filter(pl.col("file") == "t4_2020-05.html").row(0, named=True)
    assert t4["status"] == "skipped" and "by Country/Region" in t4["note"]


def test_a_page_republished_with_a_label_variant_replaces_the_earlier_row(settings_env):
    """Finding 2: a page republished with "Rare earth" for "Rare Earth" (real pages differ in case
    between 2019 and 2025) left both rows as the latest and failed the run. Labels are compared
    normalised: the later vintage replaces the earlier, and the monthly series holds one row."""
    from flows import pipeline
    from flows.sources import inbox_files
    from flows.warehouse import Warehouse

    folder = settings_env.inbox / "gacc"
    folder.mkdir()
    first = page(title="(5) China's Major Exports by Quantity and Value, July 2020 (in CNY)", date="2020/08/09",
                 groups=("July", "Jan-Jul in Total", "Jan-Jul 2019 in Total", "Year-on-Year ±%"))
    (folder / "table5_2020-07_cny.html").write_bytes(first)
    settings = settings_env()

    def run():
        with Warehouse(settings.warehouse).transaction("test"):
            pipeline.land(settings, GACC, [pipeline.Fetched(r) for r in inbox_files(GACC, settings.inbox)], CAT)
            return pipeline.compute_indicators(settings, GACC, CAT)

    assert run()["china_exports_monthly"] == 1
    again = first.replace(b"Rare Earth", b"Rare earth").replace(b"3,000.0", b"3,100.0").replace(b"2020/08/09", b"2020/08/20")
    (folder / "table5_2020-07_cny_republished.html").write_bytes(again)
    assert run()["china_exports_monthly"] == 1
    monthly = pl.read_parquet(settings_env.warehouse / "indicators" / "china_exports_monthly")
    assert monthly.filter(pl.col("commodity") == "rare_earths")["quantity_t"].to_list() == [3100.0]
