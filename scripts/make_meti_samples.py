"""Build constructed METI 需給総括 monthly workbooks (2018-2019) in samples/inbox/meti/.

CONSTRUCTED: the layout is rarewatch's reading of the survey's 「(1)需給総括」 table (docs/sources.md,
"METI"; flows/sources/meti/parse.py): items as rows under their survey names, the month in the
title, 月初在庫 / 受入 (生産, 輸入, その他, 計) / 払出 (消費, 輸出, その他, 計) / 月末在庫 on two header
rows, a dealers' breakdown row. Every figure is invented, of a plausible order of magnitude for
Japan (t/month). Usage: python scripts/make_meti_samples.py [OUT_DIR]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import openpyxl

# item: (production, imports, consumption, opening stock), t per month
ITEMS = {"ニッケル": (4500.0, 9000.0, 13000.0, 12000.0), "コバルト": (350.0, 300.0, 600.0, 900.0),
         "タングステン": (60.0, 500.0, 560.0, 700.0), "タングステン鉱": (0.0, 150.0, 140.0, 400.0),
         "モリブデン": (0.0, 1400.0, 1350.0, 2000.0), "モリブデン鉱": (0.0, 900.0, 880.0, 1500.0),
         "アンチモン": (0.0, 450.0, 430.0, 600.0), "ニッケルの故又はくず": (0.0, 800.0, 790.0, 1000.0)}
ERA = [(2019, 5, "令和", 2018), (1989, 1, "平成", 1988)]


def era_month(year: int, month: int) -> str:
    for y, m, name, base in ERA:
        if (year, month) >= (y, m):
            n = year - base
            return f"{name}{'元' if n == 1 else n}年{month}月分"
    raise ValueError(year)


def main(out: Path) -> None:
    rng = random.Random(7)
    folder = out / "meti"
    folder.mkdir(parents=True, exist_ok=True)
    stocks = {name: v[3] for name, v in ITEMS.items()}
    for year in (2018, 2019):
        for month in range(1, 13):
            wb = openpyxl.Workbook()
            wb.active.title = "目次"
            wb.active.append(["非鉄金属等需給動態統計 (constructed sample for rarewatch; not METI data)"])
            ws = wb.create_sheet("(1)需給総括")
            ws.append([f"非鉄金属等需給動態統計 {era_month(year, month)} (1)需給総括 — constructed sample"])
            ws.append(["単位：t"])
            ws.append(["区分", "月初在庫", "受入", None, None, None, "払出", None, None, None, "月末在庫"])
            ws.append([None, None, "生産", "輸入", "その他", "計", "消費", "輸出", "その他", "計", None])
            ws.merge_cells("C3:F3")
            ws.merge_cells("G3:J3")
            for name, (prod, imp, cons, _) in ITEMS.items():
                p, i, c = (round(x * rng.uniform(0.85, 1.15), 1) for x in (prod, imp, cons))
                e = round(0.03 * i, 1)
                opening = stocks[name]
                closing = round(max(opening + p + i - e - c, 0.0), 1)
                c = round(opening + p + i - e - closing, 1)
                stocks[name] = closing
                ws.append([name, opening, p, i, 0.0, round(p + i, 1), c, e, 0.0, round(c + e, 1), closing])
                if name == "ニッケル":
                    ws.append(["うち販売業者", round(0.1 * opening, 1), None, None, None, None, None, None, None, None,
                               round(0.1 * closing, 1)])
            target = folder / f"meti_jukyu_{year}{month:02d}_constructed_v{year + (month == 12)}{month % 12 + 1:02d}28.xlsx"
            wb.save(target)
    print(f"wrote 24 workbooks in {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "samples" / "inbox")
