"""Build constructed China Customs table (5) and (6) pages (CNY) for 2019-2020 in samples/inbox/gacc/.

CONSTRUCTED, in the markup of the real pages (../shared/fixtures/gacc): the rare-earth row uses
the published figures docs/sources.md §8 gives (May 2019 3,639.5 t, Jan-May 19,265.8 t and
Jan-May 2018 20,769.8 t; Mar 2020 5,551.4; Apr 4,316.7; Jun 2,893; Jul 1,620.3 (-69.1 % y/y);
Jan-Jul 2020 22,735.8 (-20.2 %); Aug 1,642; years 2018 53,224, 2019 46,330, 2020 35,447.5);
every other figure is invented to fit those totals. Values (CNY 100 million) are invented, and so
is every figure of the table (6) major-imports pages (same layout; docs/sources.md §2).
Usage: python scripts/make_gacc_samples.py [OUT_DIR]   (default samples/inbox)
"""

from __future__ import annotations

import calendar
import sys
from pathlib import Path

# Rare-earth exports, tonnes; key 2 = the combined Jan-Feb release.
RARE_EARTH = {
    2018: {2: 8200.0, 3: 4300.0, 4: 4100.0, 5: 4169.8, 6: 4600.0, 7: 4700.0, 8: 4600.0, 9: 4700.0, 10: 4500.0,
           11: 4600.0, 12: 4754.2},
    2019: {2: 8000.0, 3: 4000.0, 4: 3626.3, 5: 3639.5, 6: 3990.2, 7: 5240.0, 8: 3600.0, 9: 3500.0, 10: 3500.0,
           11: 3600.0, 12: 3634.0},
    2020: {2: 5400.0, 3: 5551.4, 4: 4316.7, 5: 2954.4, 6: 2893.0, 7: 1620.3, 8: 1642.0, 9: 2600.0, 10: 2800.0,
           11: 2900.0, 12: 2769.7},
}
# Rare-earth imports (table (6)), tonnes: INVENTED, of the order of China's imports of ores and compounds.
RARE_EARTH_IMPORTS = {year: {m: round(q * 0.75, 1) for m, q in months.items()} for year, months in RARE_EARTH.items()}
CNY_100M_PER_T = {2018: 0.00072, 2019: 0.00066, 2020: 0.00062}
# Two other rows, for a realistic table: (label, unit, quantity per month, CNY 100 million per unit)
OTHERS = [("Steel Products", "10,000 Tons", 550.0, 0.45), ("Coal & Lignite", "10,000 Tons", 50.0, 0.08)]


def cumulative(year: int, month: int, series: dict = RARE_EARTH) -> float:
    return round(sum(q for m, q in series[year].items() if m <= month), 1)


def value(q: float, year: int) -> float:
    return round(q * CNY_100M_PER_T[year], 1)


def fmt(x: float) -> str:
    return f"{x:,.1f}"


def page(year: int, month: int, table: int = 5) -> str:
    series = RARE_EARTH if table == 5 else RARE_EARTH_IMPORTS
    jan_feb = month == 2
    name = "January-February" if jan_feb else calendar.month_name[month]
    title = f"({table}) China's Major {'Exports' if table == 5 else 'Imports'} by Quantity and Value, {name} {year} (in CNY)"
    short = calendar.month_abbr[month]
    span = "Jan-Feb" if jan_feb else f"Jan-{short}"
    groups = ([] if jan_feb else [short]) + [f"{span} in Total", f"{span} {year - 1} in Total",
                                              f"{span} Total Year-on-Year ±%"]
    rows = []
    q_m, ytd, prior = series[year][month], cumulative(year, month, series), cumulative(year - 1, month, series)
    v_m, v_ytd, v_prior = value(q_m, year), value(ytd, year), value(prior, year - 1)
    cells = ([] if jan_feb else [fmt(q_m), fmt(v_m)]) + [fmt(ytd), fmt(v_ytd), fmt(prior), fmt(v_prior),
                                                          fmt(100 * (ytd / prior - 1)), fmt(100 * (v_ytd / v_prior - 1))]
    rows.append(["Rare Earth", "Ton", *cells])
    for label, unit, q, price in OTHERS:
        months = (month - 1) if not jan_feb else 2
        q_ytd, q_prior = q * months, q * months * 0.97
        c = ([] if jan_feb else [fmt(q), fmt(q * price)]) + [
            fmt(q_ytd), fmt(round(q_ytd * price, 1)), fmt(q_prior), fmt(round(q_prior * price, 1)),
            fmt(100 * (round(q_ytd, 1) / round(q_prior, 1) - 1)),
            fmt(100 * (round(q_ytd * price, 1) / round(q_prior * price, 1) - 1))]
        rows.append([label, unit, *c])

    def td(text: str, span: int = 1) -> str:
        return f'<td colspan="{span}" style="border:0.75pt solid windowtext;"><span><b>{text}</b></span></td>'

    head1 = td("Commodity") + td("Quantity Unit") + "".join(td(g, 2) for g in groups)
    head2 = "".join(td(x) for _ in groups for x in ("Quantity", "Value"))
    body = "\n".join("<tr>" + "".join(td(c + "&nbsp;" if i > 1 else c) for i, c in enumerate(r)) + "</tr>"
                     for r in rows)
    published = f"{year + (month == 12)}/{month % 12 + 1:02d}/09"
    return f"""<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>{title}</title></head>
<body><div class="atcl-date">{published}</div><div class="atcl-cnt">
<table class="ke-zeroborder"><tbody>
<tr>{td(title, 2 + 2 * len(groups))}</tr>
<tr>{td("Value Unit: CNY 100 Million", 2 + 2 * len(groups))}</tr>
<tr>{head1}</tr>
<tr>{head2}</tr>
{body}
<tr>{td("Note: constructed sample page (rarewatch scripts/make_gacc_samples.py), not a GACC release.", 10)}</tr>
</tbody></table></div></body></html>
"""


def main(out: Path) -> None:
    folder = out / "gacc"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.html"):
        old.unlink()
    for year in (2019, 2020):
        for month in range(2, 13):
            for table in (5, 6):
                (folder / f"table{table}_{year}-{month:02d}_cny.html").write_text(page(year, month, table),
                                                                                   encoding="utf-8")
    print(f"wrote {len(list(folder.glob('*.html')))} pages to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "samples" / "inbox")
