"""Malformed (and tolerated) inputs for the fault suite, each with its policy.

Policy (docs/sources.md, "Refusals"):
- `refused`: the file cannot be trusted as a whole (not the format, a broken layout, a row that
  breaks a release-wide check, a limit passed): nothing of it is published, the message names the
  file (and line and column when one row is to blame), its failure cases go to quarantine.
- `quarantined`: rows that contradict each other where the rest of the file is sound (Comtrade
  records sharing a key with different values): those rows are quarantined, the rest lands.
- `landed`: a variant the real sources produce (BOM, CRLF, Shift-JIS, label case, non-breaking
  spaces, `Apl`, the old .xls format): lands as the canonical file does.
- `skipped`: a file the source recognises and deliberately does not read (another table).
- `nothing`: a sound answer that holds no records (Comtrade `count: 0`: not reported yet), noted.

Seeds are the files the unit tests build in the official layouts (tests/builders.py,
tests/test_comtrade.py, tests/test_gacc.py, tests/test_meti.py, tests/test_estat_api.py); every
case changes one thing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builders import csv_bytes, header, row

POLICY = ("refused: nothing published, file named; quarantined: bad rows kept aside, the rest lands; "
          "landed: a real-world variant; skipped: recognised, not read; nothing: sound but empty")


@dataclass
class Case:
    source: str  # the source that lands it
    name: str  # what was changed
    data: Callable[[], bytes] | None  # the file's bytes (None: `setup` makes the inbox)
    policy: str
    filename: str
    folder: str | None = None  # inbox sub-folder (default the source's); "" = the inbox root
    setup: Callable[[Path], None] | None = None  # builds the inbox itself
    env: dict | None = None

    @property
    def file_named(self) -> str | None:
        return self.filename if self.policy == "refused" and self.setup is None else None


# ----------------------------------------------------------------------------- seeds
JC_ROWS = [row("280530000", 105, {1: (1000, 500), 2: (800, 450)}), row("280530000", 110, {1: (300, 100)}),
           row("284690100", 210, {2: (20, 7)}), row("850511000", 117, {1: (4, 50, 9)}, unit1="NO")]


def jc(rows=None, **kw) -> bytes:
    return csv_bytes(JC_ROWS if rows is None else rows, **kw)


def comtrade(records=None, **kw) -> bytes:
    from test_comtrade import answer, record

    recs = [record(), record(partnerCode=704, primaryValue=50.0)] if records is None else records
    return answer(recs, **kw)


def rec(**kw) -> dict:
    from test_comtrade import record

    return record(**kw)


def gacc(**kw) -> bytes:
    from test_gacc import page

    return page(**kw)


def meti(**kw) -> bytes:
    from test_meti import sheet_rows, xlsx

    return xlsx(sheet_rows(**kw))


def estat_doc(pages=None, meta=None) -> bytes:
    from test_estat_api import TRADE, meta as make_meta, values

    vals = values(TRADE)
    doc_meta = meta if meta is not None else make_meta(sorted({v["@cat01"] for v in vals}))
    pages = pages if pages is not None else [{"GET_STATS_DATA": {"RESULT": {"STATUS": 0},
                                                                 "STATISTICAL_DATA": {"DATA_INF": {"VALUE": vals}}}}]
    return json.dumps({"flow": "import", "statsDataId": "0003313966", "meta": doc_meta, "pages": pages},
                      ensure_ascii=False).encode()


SEEDS: dict[str, tuple[Callable[[], bytes], str, str | None]] = {
    "japan_customs": (jc, "2020_imp_v20200831.csv", None),
    "comtrade": (comtrade, "comtrade_A_2022_m.json", None),
    "gacc": (gacc, "table5_2020-05_cny.html", "gacc"),
    "meti": (meti, "meti_201904_v20190628.xlsx", None),
    "japan_customs/api": (estat_doc, "estat_api_import_2020_v20200831.json", "japan_customs"),
}


def _generic() -> list[Case]:
    """The same blunt damage done to every source's file."""
    out = []
    rnd = random.Random(3)
    for key, (make, filename, folder) in SEEDS.items():
        source = key.split("/")[0]
        damage = {
            "empty file": lambda m: b"",
            "only whitespace": lambda m: b"   \n\n  \n",
            "cut in half": lambda m: m[: len(m) // 2],
            "first 64 bytes": lambda m: m[:64],
            "random bytes": lambda m: rnd.randbytes(len(m)),
            "NUL bytes in the middle": lambda m: m[: len(m) // 2] + b"\0" * 64 + m[len(m) // 2:],
            "invalid UTF-8 in the middle": lambda m: m[: len(m) // 2] + b"\xff\xfe\xfa" + m[len(m) // 2:],
            "another source's file": lambda m, source=source: (comtrade() if source != "comtrade" else jc()),
            "a PDF under the right name": lambda m: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
        }
        for what, fn in damage.items():
            def data(fn=fn, make=make):
                return fn(make())
            out.append(Case(source, f"{key}: {what}", data, "refused", filename, folder))
    return out


def _japan_customs() -> list[Case]:
    f = "2020_imp_v20200831.csv"
    bad_value = [list(r) for r in JC_ROWS]
    bad_value[0][9] = "12a"  # Quantity2-Year... a letter in a number
    negative = [list(r) for r in JC_ROWS]
    negative[1][12] = "-5"
    cols = header()
    no_col = [c for c in cols if c != "Value-Jul"]
    wrong_year = [list(r) for r in JC_ROWS]
    wrong_year[2][1] = "2019"
    dup = [*JC_ROWS, JC_ROWS[0]]
    cells = [[*r[:6], "Z" * 5000, *r[7:]] if i == 0 else r for i, r in enumerate(JC_ROWS)]
    junk = [*JC_ROWS, *[["junk"] * len(cols) for _ in range(100)]]
    total = [*JC_ROWS, ["2", "2020", "S-TOTAL", "", "", "", *["0"] * (len(cols) - 6)]]
    bad_sum = [list(r) for r in JC_ROWS]
    bad_sum[0][8] = "999999"  # Value-Year is not the sum of the months
    return [
        Case("japan_customs", "a letter in a quantity", lambda: jc(bad_value), "refused", f),
        Case("japan_customs", "a negative value", lambda: jc(negative), "refused", f),
        Case("japan_customs", "a month column missing", lambda: jc(head=no_col), "refused", f),
        Case("japan_customs", "an extra unknown column", lambda: jc([[*r, "x"] for r in JC_ROWS], head=[*cols, "Extra"]), "refused", f),
        Case("japan_customs", "tab-separated", lambda: jc().replace(b",", b"\t"), "refused", f),
        Case("japan_customs", "semicolon-separated", lambda: jc().replace(b",", b";"), "refused", f),
        Case("japan_customs", "a row of another year", lambda: jc(wrong_year), "refused", f),
        Case("japan_customs", "the same row twice", lambda: jc(dup), "refused", f),
        Case("japan_customs", "a 5,000-character cell", lambda: jc(cells), "refused", f),
        Case("japan_customs", "100 junk lines", lambda: jc(junk), "refused", f),
        Case("japan_customs", "year total not the sum of months", lambda: jc(bad_sum), "refused", f),
        Case("japan_customs", "the header twice", lambda: jc() + jc(), "refused", f),
        Case("japan_customs", "header only", lambda: jc([]), "refused", f),
        Case("japan_customs", "a 2,000-column line", lambda: jc() + (",1" * 2000).encode() + b"\n", "refused", f),
        Case("japan_customs", "an S-TOTAL row", lambda: jc(total), "landed", f),
        Case("japan_customs", "BOM and CRLF", lambda: jc(bom=True, crlf=True), "landed", f),
        Case("japan_customs", "Shift-JIS (cp932)", lambda: jc(encoding="cp932"), "landed", f),
        Case("japan_customs", "April headed Apl (before 2020)", lambda: jc(apl=True), "landed", f),
        Case("japan_customs", "HS codes unquoted", lambda: jc([row("280530000", 105, {1: (1000, 500)}, quote_hs=False)]), "landed", f),
        Case("japan_customs", "upper-case _V tag in the name", lambda: jc(), "landed", "2020_imp_V20200831.csv"),
        Case("japan_customs", "a file over max_inbox_file_mb", lambda: jc() + b"\n" * 300_000, "refused", f,
             env={"max_inbox_file_mb": 0.1}),
    ]


def _comtrade() -> list[Case]:
    f = "comtrade_A_2022_m.json"
    missing = {k: v for k, v in rec().items() if k != "primaryValue"}
    return [
        Case("comtrade", "not JSON", lambda: b"{'data': [}", "refused", f),
        Case("comtrade", "a list at the root", lambda: json.dumps([rec()]).encode(), "refused", f),
        Case("comtrade", "data not a list", lambda: json.dumps({"count": 1, "data": {"a": 1}, "error": ""}).encode(), "refused", f),
        Case("comtrade", "count 3, data null", lambda: json.dumps({"count": 3, "data": None, "error": ""}).encode(), "refused", f),
        Case("comtrade", "count disagrees with data", lambda: comtrade(count=7), "refused", f),
        Case("comtrade", "a record without primaryValue", lambda: comtrade([rec(), missing]), "refused", f),
        Case("comtrade", "a text value", lambda: comtrade([rec(primaryValue="lots")]), "refused", f),
        Case("comtrade", "a negative value", lambda: comtrade([rec(primaryValue=-5.0)]), "refused", f),
        Case("comtrade", "an error member", lambda: comtrade(error="Internal error"), "refused", f),
        Case("comtrade", "a 5,000-character code", lambda: comtrade([rec(cmdCode="8" * 5000)]), "refused", f),
        Case("comtrade", "two records of one key disagreeing", lambda: comtrade([rec(), rec(primaryValue=999.0), rec(partnerCode=704)]), "quarantined", f),
        Case("comtrade", "exact duplicate records", lambda: comtrade([rec(), rec(), rec(partnerCode=704)]), "landed", f),
        Case("comtrade", "count 0 (not reported)", lambda: comtrade([], count=0), "nothing", f),
    ]


def _gacc() -> list[Case]:
    f = "table5_2020-05_cny.html"
    base_row = ("Rare Earth", "Ton", "3,000.0", "2.0", "15,000.0", "10.0", "20,000.0", "12.5", "-25.0", "-20.0")
    return [
        Case("gacc", "label in another case (Rare earth)", lambda: gacc(rows=(("Rare earth", *base_row[1:]),)), "landed", f, "gacc"),
        Case("gacc", "label in capitals (RARE EARTHS)", lambda: gacc(rows=(("RARE EARTHS", *base_row[1:]),)), "landed", f, "gacc"),
        Case("gacc", "non-breaking spaces in figures", lambda: gacc(rows=((base_row[0], base_row[1], "3,000.0\u00a0", *base_row[3:]),)), "landed", f, "gacc"),
        Case("gacc", "no date on the page", lambda: gacc(date=""), "landed", f, "gacc"),
        Case("gacc", "a row one cell short", lambda: gacc(rows=(base_row[:-1],)), "refused", f, "gacc"),
        Case("gacc", "a figure that is not a number", lambda: gacc(rows=((*base_row[:2], "n/a", *base_row[3:]),)), "refused", f, "gacc"),
        Case("gacc", "year-on-year contradicting the totals", lambda: gacc(rows=((*base_row[:8], "90.0", "-20.0"),)), "refused", f, "gacc"),
        Case("gacc", "title in CNY, banner in USD", lambda: gacc(banner="Value Unit: USD 100 Million"), "refused", f, "gacc"),
        Case("gacc", "the table missing", lambda: gacc().split(b"<table>")[0] + b"</body></html>", "refused", f, "gacc"),
        Case("gacc", "unknown header groups", lambda: gacc(groups=("A", "B", "C", "D")), "refused", f, "gacc"),
        Case("gacc", "table (4) of the release", lambda: __import__("test_gacc").by_country_page(), "skipped", "table4_2020-05_cny.html", "gacc"),
    ]


def _meti() -> list[Case]:
    from test_meti import HEAD1, HEAD2, ROWS

    f = "meti_201904_v20190628.xlsx"
    return [
        # the table is found by its title, whatever its sheet is called (docs/sources.md, METI)
        Case("meti", "the sheet renamed", lambda: __import__("test_meti").xlsx(__import__("test_meti").sheet_rows(), sheet="Sheet9"), "landed", f),
        Case("meti", "a header row missing", lambda: meti(head=(HEAD1,)), "refused", f),
        Case("meti", "an unknown item", lambda: meti(rows=[["ウラン", *ROWS[0][1:]]]), "refused", f),
        Case("meti", "a month after the survey ended", lambda: meti(title="非鉄金属等需給動態統計 令和3年4月分 (1)需給総括"), "refused", f),
        Case("meti", "a text in a figure", lambda: meti(rows=[[ROWS[0][0], "many", *ROWS[0][2:]]]), "refused", f),
        Case("meti", "no unit statement", lambda: meti(unit=""), "refused", f),
        Case("meti", "figures in kg", lambda: meti(unit="単位：kg"), "landed", f),
        Case("meti", "the old .xls format", lambda: __import__("test_meti").xls(__import__("test_meti").sheet_rows()), "landed",
             "meti_201904_v20190628.xls"),
    ]


def _estat_api() -> list[Case]:
    f = "estat_api_import_2020_v20200831.json"
    return [
        Case("japan_customs", "API document: no pages member", lambda: json.dumps({"flow": "import", "meta": {}}).encode(), "refused", f, "japan_customs"),
        Case("japan_customs", "API document: a page of another kind", lambda: estat_doc(pages=[{"GET_META_INFO": {}}]), "refused", f, "japan_customs"),
        Case("japan_customs", "API document: VALUE a number", lambda: estat_doc(pages=[{"GET_STATS_DATA": {"STATISTICAL_DATA": {"DATA_INF": {"VALUE": 5}}}}]), "refused", f, "japan_customs"),
        Case("japan_customs", "API document: no values", lambda: estat_doc(pages=[{"GET_STATS_DATA": {"STATISTICAL_DATA": {"DATA_INF": {}}}}]), "refused", f, "japan_customs"),
        Case("japan_customs", "API document: the sound one", estat_doc, "landed", f, "japan_customs"),
    ]


def _inbox() -> list[Case]:
    """What is wrong with the inbox rather than a file."""
    def link(box: Path) -> None:
        outside = box.parent / "stocks.csv"
        outside.write_text("metal,as_of,tonnes\nrare_earths,2020-06-30,7777.4321\n")
        (box / "japan_customs").mkdir(parents=True)
        (box / "japan_customs" / "2020_imp.csv").symlink_to(outside)

    def linked_folder(box: Path) -> None:
        (box.parent / "elsewhere").mkdir()
        (box.parent / "elsewhere" / "2020_imp.csv").write_bytes(jc())
        box.mkdir(parents=True)
        (box / "japan_customs").symlink_to(box.parent / "elsewhere")

    def drop(name: str, data: bytes, folder: str = "japan_customs"):
        def make(box: Path) -> None:
            (box / folder).mkdir(parents=True, exist_ok=True)
            (box / folder / name).write_bytes(data)
        return make

    def subfolder(box: Path) -> None:
        (box / "japan_customs" / "old").mkdir(parents=True)

    return [
        Case("japan_customs", "inbox: a symbolic link to a file outside", None, "refused", "", setup=link),
        Case("japan_customs", "inbox: the source folder a symbolic link", None, "refused", "", setup=linked_folder),
        Case("japan_customs", "inbox: a hidden file", None, "refused", "", setup=drop(".2020_imp.csv", jc())),
        Case("japan_customs", "inbox: a file of another type", None, "refused", "", setup=drop("notes.pdf", b"%PDF")),
        Case("japan_customs", "inbox: a sub-folder", None, "refused", "", setup=subfolder),
        Case("japan_customs", "inbox: an impossible date tag", None, "refused", "", setup=drop("2020_imp_v20200231.csv", jc())),
        Case("japan_customs", "inbox: an unrecognised file at the root", None, "refused", "", setup=drop("mystery.csv", b"a,b\n1,2\n", "")),
        Case("japan_customs", "inbox: a name with spaces and kana", None, "landed", "", setup=drop("輸入 2020 v20200831.csv", jc())),
        Case("japan_customs", "inbox: editor junk beside the file", None, "landed", "",
             setup=lambda box: (drop("2020_imp.csv", jc())(box), drop(".DS_Store", b"\0")(box))),
    ]


INPUTS: list[Case] = [*_generic(), *_japan_customs(), *_comtrade(), *_gacc(), *_meti(), *_estat_api(), *_inbox()]


def try_input(case: Case, root: Path) -> tuple[str, str, int, int]:
    """Land one case into a fresh warehouse: (outcome, message, rows lost, canaries leaked)."""
    from fault_report import environment, fingerprint, run_inbox

    from flows.errors import RarewatchError

    box, wh = root / "inbox", root / "warehouse"
    root.mkdir(parents=True, exist_ok=True)
    if case.setup is not None:
        case.setup(box)
    else:
        folder = box / (case.folder if case.folder is not None else case.source)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / case.filename).write_bytes(case.data())  # type: ignore[misc]
    outcome, message = "landed", ""
    with environment(warehouse=wh, inbox=box, **(case.env or {})):
        try:
            report = run_inbox(case.source)
        except RarewatchError as e:
            outcome, message = "refused", str(e)
        except Exception as e:  # noqa: BLE001
            outcome, message = "traceback", "".join(traceback.format_exception(e))
        else:
            if report.rows_rejected:  # type: ignore[attr-defined]
                outcome = "quarantined"
            elif report.rows_written:  # type: ignore[attr-defined]
                outcome = "landed"
            elif report.skipped_files:  # type: ignore[attr-defined]
                outcome = "skipped"
            else:
                outcome = "nothing"
    published = fingerprint(wh) if wh.exists() else {}
    if outcome == "refused" and any(k[0].startswith(("clean", "indicators")) for k in published):
        outcome = "refused but published"
    leaked = 0
    if wh.exists():
        for f in wh.rglob("*"):
            if f.is_file() and b"7777.4321" in f.read_bytes():
                leaked += 1
    shutil.rmtree(root, ignore_errors=True)
    return outcome, message, 0, leaked


__all__ = ["INPUTS", "POLICY", "Case", "try_input"]
