"""The offline HTML report: `reports/latest.html` and `reports/<YYYY-MM>.html`, rebuilt by each run.

One self-contained file: charts are SVG drawn by matplotlib and inlined, tables are HTML, and
nothing is fetched when it is opened (no script, style sheet, font or image from elsewhere).
Built from public datasets only (never the restricted root), so no stock figure can reach it.
"""

from __future__ import annotations

import datetime as dt
import html
import io

import polars as pl

from flows.warehouse import Warehouse

SOURCE = "japan_customs"  # the dependency figures shown per metal (Comtrade's are annual and partial)

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem} h2{margin-top:2.2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem} h3{margin-bottom:.3rem}
table{border-collapse:collapse;margin:.5rem 0 1rem} td,th{border:1px solid #ddd;padding:.2rem .5rem;font-size:.85rem}
th{background:#f3f3f3;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:1rem} figure{margin:0} figcaption{font-size:.8rem;color:#555}
.alert{background:#fff4e5;border-left:4px solid #e8590c;padding:.3rem .6rem;margin:.3rem 0;font-size:.9rem}
.muted{color:#666;font-size:.85rem} nav a{margin-right:.6rem;font-size:.85rem}
"""

# Sets data-charts on <body>: how many figures hold a drawn chart (checked by the headless test).
_SCRIPT = """
document.addEventListener("DOMContentLoaded", function () {
  var figs = document.querySelectorAll("figure.chart"), drawn = 0;
  figs.forEach(function (f) { if (f.querySelectorAll("svg path, svg rect, svg line").length > 3) drawn++; });
  document.body.dataset.charts = figs.length; document.body.dataset.drawn = drawn;
});
"""


def _svg(fig) -> str:  # noqa: ANN001 (a matplotlib Figure)
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _setup():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "rarewatch", "svg.fonttype": "none", "font.size": 8,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _figure(title: str, svg: str, caption: str) -> str:
    return (f'<figure class="chart" aria-label="{html.escape(title)}">{svg}'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _lines(plt, series: list[tuple[str, pl.DataFrame, str]], ylabel: str, *, percent: bool = False,  # noqa: ANN001
           size: tuple[float, float] = (4.6, 2.2)) -> str:
    fig, ax = plt.subplots(figsize=size)
    for label, frame, style in series:
        if frame.height:
            ys = frame["y"].to_list()
            ax.plot(frame["x"].to_list(), [None if v is None else (100 * v if percent else v) for v in ys], style,
                    label=label, linewidth=1.2)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if sum(1 for _, frame, _ in series if frame.height) > 1:
        ax.legend(fontsize=7, frameon=False)
    fig.autofmt_xdate()
    return _svg(fig)


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, heading, format: '' text, 'pct' fraction as %, 'n0' number, 'n1', 'pp')."""
    def cell(v, fmt):  # noqa: ANN001, ANN202
        if v is None:
            return '<td class="n">-</td>'
        if fmt == "pct":
            return f'<td class="n">{100 * v:.1f} %</td>'
        if fmt in ("n0", "n1"):
            return f'<td class="n">{v:,.{fmt[1]}f}</td>'
        if fmt == "pp":
            return f'<td class="n">{v:+.1f}</td>'
        return f"<td>{html.escape(str(v))}</td>"
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in columns)
    body = "".join("<tr>" + "".join(cell(r.get(k), f) for k, _, f in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build(wh: Warehouse) -> tuple[str | None, str]:
    """(the month the report is about, its HTML)."""
    from flows.indicators import IMPORT_DEPENDENCY, PARTNER_SHARES
    from flows.pipeline import ALERTS, MIRROR_GAPS, RESERVE_COVERAGE
    from flows.sources.gacc import MONTHLY, MONTHLY_IMPORTS

    plt = _setup()
    jc = wh.read_dataset(IMPORT_DEPENDENCY, {"source": SOURCE})
    scan = wh.scan_dataset(PARTNER_SHARES)  # the largest indicator: only the 12M quantity rows are read
    shares = None if scan is None else scan.filter(
        (pl.col("source") == SOURCE) & (pl.col("freq") == "12M") & (pl.col("basis") == "quantity")).collect()
    coverage = wh.read_dataset(RESERVE_COVERAGE)
    mirror = wh.read_dataset(MIRROR_GAPS)
    alerts = wh.read_dataset(ALERTS)
    exports = wh.read_dataset(MONTHLY)
    imports = wh.read_dataset(MONTHLY_IMPORTS)
    month = None
    if jc is not None and jc.height:
        month = jc.filter(pl.col("freq") == "M")["period_end"].max()
    elif exports is not None and exports.height:
        month = exports["period_end"].max()
    label = month.strftime("%Y-%m") if month else None
    parts = [f"<h1>rarewatch: Japan's exposure to a cut-off of rare metals{f' — {label}' if label else ''}</h1>",
             f'<p class="muted">Built {dt.date.today().isoformat()} from the public datasets of the warehouse '
             "(Japan Customs, China Customs, UN Comtrade, METI). Shares are of Japan's imports excluding special "
             "areas; 12M = the twelve months ending in the month. Stock positions are confidential and never "
             "shown here.</p>"]

    # alerts
    parts.append("<h2 id='alerts'>Alerts</h2>")
    if alerts is not None and alerts.height:
        for a in alerts.sort("period_end", descending=True).head(25).iter_rows(named=True):
            parts.append(f'<div class="alert"><b>{html.escape(a["kind"])}</b> {html.escape(a["message"])}</div>')
    else:
        parts.append("<p class='muted'>No alert.</p>")

    # China's rare-earth trade
    parts.append("<h2 id='china'>China's rare-earth exports and imports (China Customs)</h2>")
    series, rows = [], []
    for name, frame in (("exports", exports), ("imports", imports)):
        if frame is None or frame.is_empty():
            continue
        re_ = (frame.filter(pl.col("commodity") == "rare_earths")
               .unique(subset=["period_start", "period_end"], keep="first").sort("period_end"))
        series.append((name, re_.select(pl.col("period_start").alias("x"), pl.col("quantity_t").alias("y")),
                       "-o" if name == "exports" else "--s"))
        rows += [{"flow": name, "month": r["period_end"].strftime("%Y-%m") + (" (Jan-Feb)" if r["jan_feb"] else ""),
                  "t": r["quantity_t"], "prior": r["quantity_t_prior_year"], "yoy": r["yoy_quantity_pct"]}
                 for r in re_.tail(6).iter_rows(named=True)]
    if series:
        parts.append('<div class="charts">' + _figure(
            "China's rare-earth trade", _lines(plt, series, "tonnes per month", size=(7.0, 2.6)),
            "China's monthly rare-earth exports and imports, tonnes (Jan and Feb are published together)") + "</div>")
        parts.append(_table(rows, [("flow", "flow", ""), ("month", "month", ""), ("t", "tonnes", "n1"),
                                   ("prior", "a year earlier", "n1"), ("yoy", "y/y %", "pp")]))
    else:
        parts.append("<p class='muted'>No China Customs data in this warehouse.</p>")

    # per metal
    parts.append("<h2 id='metals'>Japan's dependency, metal by metal (Japan Customs)</h2>")
    if jc is None or jc.is_empty():
        parts.append("<p class='muted'>No Japan Customs indicators in this warehouse.</p>")
        metals: list[str] = []
    else:
        order = (jc.filter((pl.col("freq") == "12M") & (pl.col("basis") == "quantity") & (pl.col("period_end") == month))
                 .sort("china_share", descending=True, nulls_last=True)["metal"].to_list())
        metals = order + sorted(set(jc["metal"]) - set(order))
        parts.append("<nav>" + "".join(f'<a href="#m-{m}">{m}</a>' for m in metals) + "</nav>")
    for metal in metals:
        m = jc.filter(pl.col("metal") == metal).sort("period_end")  # type: ignore[union-attr]

        def pick(freq: str, basis: str, col: str) -> pl.DataFrame:
            return m.filter((pl.col("freq") == freq) & (pl.col("basis") == basis)).select(
                pl.col("period_start").alias("x"), pl.col(col).alias("y"))
        parts.append(f"<h3 id='m-{metal}'>{html.escape(metal)}</h3>")
        series = [("quantity 12M", "12M", "quantity", "-"), ("value 12M", "12M", "value", "--"),
                  ("quantity M", "M", "quantity", ":"), ("value M", "M", "value", "-.")]
        share = _lines(plt, [(n, pick(f, b, "china_share"), s) for n, f, b, s in series], "China share, %", percent=True)
        hhi = _lines(plt, [(n, pick(f, b, "hhi"), s) for n, f, b, s in series], "HHI (0-10,000)")
        parts.append('<div class="charts">' + _figure(f"{metal} China share", share, "China's share of Japan's imports")
                     + _figure(f"{metal} HHI", hhi, "Concentration of suppliers (HHI; > 2,500 highly concentrated)")
                     + "</div>")
        if shares is not None and month is not None:
            top = shares.filter((pl.col("metal") == metal) & (pl.col("period_end") == month)).sort("rank").head(5)
            if top.height:
                parts.append("<p class='muted'>Top suppliers, 12 months to " + label + " (quantity)</p>"  # type: ignore[operator]
                             + _table(top.to_dicts(), [("rank", "#", ""), ("partner_name", "partner", ""),
                                                       ("partner_iso3", "ISO3", ""), ("share", "share", "pct")]))
        if coverage is not None:
            cov = coverage.filter(pl.col("metal") == metal).sort("period_end")
            if cov.height:
                # a table, not a chart: the figure changes once a year, with the reference year
                last = cov.tail(1).to_dicts()
                parts.append("<p class='muted'>Stock the target implies (reference consumption x days)</p>")
                parts.append(_table(last, [("period_end", "month", ""), ("consumption_method", "consumption from", ""),
                                           ("reference_consumption_t", "t/year", "n0"), ("target_days", "target days", ""),
                                           ("required_stock_target_t", "stock for target, t", "n0"),
                                           ("required_stock_180d_t", "for 180 days, t", "n0")]))
        if mirror is not None:
            gaps = mirror.filter(pl.col("metal") == metal).sort("period_end", "partner_iso3").tail(5)
            if gaps.height:
                parts.append("<p class='muted'>Mirror gaps (partners' reported exports to Japan against Japan's imports)</p>"
                             + _table(gaps.to_dicts(), [("period_end", "period", ""), ("partner_iso3", "partner", ""),
                                                        ("japan_quantity_kg", "Japan, kg", "n0"),
                                                        ("partner_quantity_kg", "partner, kg", "n0"),
                                                        ("quantity_ratio", "ratio", "n1")]))
    body = "\n".join(parts)
    title = f"rarewatch report {label or ''}".strip()
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            'script-src \'unsafe-inline\'; img-src data:">'
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>{body}</body></html>")
    return label, page


def publish(wh: Warehouse) -> list[str]:
    """Write `reports/latest.html` and `reports/<YYYY-MM>.html` (in the run's transaction)."""
    label, page = build(wh)
    data = page.encode()
    out = [wh.write_bytes_atomic("reports/latest.html", data)]
    if label:
        out.append(wh.write_bytes_atomic(f"reports/{label}.html", data))
    return out
