"""Build a constructed METI 需給総括 workbook (2018-2019) in samples/inbox/meti/.

CONSTRUCTED: the layout is rarewatch's reading of the survey's 「(1)需給総括」 table (see
flows/sources/meti/parse.py; the real layout is unverified) and every figure is invented, of
a plausible order of magnitude for Japan (t/month). Usage: python scripts/make_meti_samples.py [OUT_DIR]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import openpyxl

# metal: (production, imports, consumption, opening stock), t per month
METALS = {"ニッケル": (4500.0, 9000.0, 13000.0, 12000.0), "コバルト": (350.0, 300.0, 600.0, 900.0),
          "タングステン": (60.0, 500.0, 560.0, 700.0), "モリブデン": (0.0, 1400.0, 1350.0, 2000.0),
          "アンチモン": (0.0, 450.0, 430.0, 600.0)}


def main(out: Path) -> None:
    rng = random.Random(7)
    wb = openpyxl.Workbook()
    wb.active.title = "目次"
    wb.active.append(["非鉄金属等需給動態統計 (constructed sample for rarewatch; not METI data)"])
    ws = wb.create_sheet("(1)需給総括")
    ws.append(["非鉄金属等需給動態統計 (1)需給総括 — constructed sample"])
    ws.append(["単位：t"])
    ws.append(["品目", "年月", "生産", "輸入", "輸出", "消費", "在庫"])
    for name, (prod, imp, cons, stock) in METALS.items():
        for year in (2018, 2019):
            for month in range(1, 13):
                p, i, c = (round(x * rng.uniform(0.85, 1.15), 1) for x in (prod, imp, cons))
                e = round(0.03 * i, 1)
                stock = round(max(stock + p + i - e - c, 0.0), 1)
                ws.append([name, f"{year}年{month}月", p, i, e, c, stock])
    folder = out / "meti"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "meti_supply_demand_2018_2019_constructed_v20200315.xlsx"
    wb.save(target)
    print(f"wrote {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "samples" / "inbox")
