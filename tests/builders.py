"""Build Japan Customs 品別国別表 CSV files in the official layout (docs/sources.md §1.2) for tests."""

from __future__ import annotations

from collections.abc import Sequence

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def header(*, apl: bool = False, custom: bool = False) -> list[str]:
    cols = ["Exp or Imp", "Year"] + (["Custom"] if custom else []) + ["HS", "Country", "Unit1", "Unit2",
                                                                     "Quantity1-Year", "Quantity2-Year", "Value-Year"]
    for m in MONTHS:
        m = "Apl" if (apl and m == "Apr") else m
        cols += [f"Quantity1-{m}", f"Quantity2-{m}", f"Value-{m}"]
    return cols


def row(hs: str, country: str | int, months: dict[int, tuple[int, int]] | dict[int, tuple[int, int, int]], *,
        flow: int = 2, year: int = 2020, unit1: str = "", unit2: str = "KG", custom: str | None = None,
        quote_hs: bool = True, year_totals: tuple[int, int, int] | None = None) -> list[str]:
    """months: {month: (quantity2, value)} or {month: (quantity1, quantity2, value)}."""
    cells = []
    q1y = q2y = vy = 0
    for m in range(1, 13):
        t = months.get(m, (0, 0))
        q1, q2, v = (0, *t) if len(t) == 2 else t
        q1y, q2y, vy = q1y + q1, q2y + q2, vy + v
        cells += [str(q1), str(q2), str(v)]
    if year_totals is not None:
        q1y, q2y, vy = year_totals
    hs_cell = f"'{hs}'" if quote_hs else hs
    lead = [str(flow), str(year)] + ([custom] if custom is not None else [])
    return lead + [hs_cell, str(country), unit1, unit2, str(q1y), str(q2y), str(vy)] + cells


def csv_bytes(rows: Sequence[Sequence[str]], *, apl: bool = False, custom: bool = False, encoding: str = "utf-8",
              bom: bool = False, crlf: bool = False, head: Sequence[str] | None = None) -> bytes:
    nl = "\r\n" if crlf else "\n"
    lines = [",".join(head or header(apl=apl, custom=custom))] + [",".join(r) for r in rows]
    data = (nl.join(lines) + nl).encode(encoding)
    return (b"\xef\xbb\xbf" if bom else b"") + data
