"""The data dictionary: every dataset of the warehouse and its columns.

Columns come from the pandera models (schemas/), the one place they are described; what a model
does not say (grain, sources, cadence, vintage policy) is declared here, once per dataset. From
this module come `docs/data_dictionary.md` (committed; a test fails when it and the models
disagree), `warehouse/data_dictionary.json`, the field descriptions in every Parquet file's
schema (`description` key of each field) and the `COMMENT ON` statements of the DuckDB catalogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import pandera.polars as pa


@dataclass(frozen=True)
class Dataset:
    name: str
    path: str  # under the warehouse root; `<source>` and Hive keys as `key=...`
    partition_by: tuple[str, ...]
    model: type[pa.DataFrameModel]
    grain: str  # one row per ...
    sources: str  # which sources feed it
    cadence: str  # when it changes
    vintages: str  # every vintage kept, or the newest only, or none
    zone: str  # raw, clean, indicators, reference

    @property
    def keys(self) -> list[str]:
        unique = self.model.to_schema().unique
        return list(unique) if unique else []

    @property
    def summary(self) -> str:
        doc = (self.model.__doc__ or "").strip().split("\n\n", 1)
        first = doc[0].replace("\n", " ")
        return first.split(": ", 1)[1] if first.startswith("`") and ": " in first else first


_EVERY_VINTAGE = "every vintage kept (column `vintage`); the newest per key is the `<name>_latest` view"
_RECOMPUTED = "recomputed from the newest vintage of the clean data at each run (no vintages of its own)"


@cache
def datasets() -> tuple[Dataset, ...]:
    from schemas.alerts import Alerts
    from schemas.comtrade import ComtradeTrade
    from schemas.gacc import ChinaCustomsExports, ChinaCustomsImports, ChinaExportsMonthly, ChinaImportsMonthly
    from schemas.indicators import ImportDependency, MirrorGaps, PartnerShares, Revisions
    from schemas.japan_customs import JapanCustomsTrade
    from schemas.meti import MetiSupplyDemand
    from schemas.raw import RawManifest
    from schemas.reference import ComtradePartners, ConsumptionBaseline, Countries, Metals, StockpilePolicy
    from schemas.reserves import ImportReliance, ReferenceConsumption, ReserveCoverage

    monthly = "monthly, after each release (Japan Customs ~end of the following month, China Customs ~7th-10th)"
    return (
        Dataset("japan_customs_trade", "clean/japan_customs_trade", ("year", "month"), JapanCustomsTrade,
                "flow x 9-digit code x country x month x vintage", "japan_customs (e-Stat files or API)",
                "monthly (9-digit imports ~end of the following month), revised in March and November",
                _EVERY_VINTAGE, "clean"),
        Dataset("china_customs_exports", "clean/china_customs_exports", ("year", "month"), ChinaCustomsExports,
                "table (5) row x currency x month x vintage", "gacc", "monthly (~7th-10th of the following month)",
                _EVERY_VINTAGE + "; preliminary pages never change", "clean"),
        Dataset("china_customs_imports", "clean/china_customs_imports", ("year", "month"), ChinaCustomsImports,
                "table (6) row x currency x month x vintage", "gacc_imports", "monthly (~7th-10th)", _EVERY_VINTAGE,
                "clean"),
        Dataset("comtrade_trade", "clean/comtrade_trade", ("freq", "year"), ComtradeTrade,
                "record (reporter x partner x code x flow x period, with breakdown codes) x vintage", "comtrade",
                "annual data about six months after the year; monthly where reported", _EVERY_VINTAGE, "clean"),
        Dataset("meti_supply_demand", "clean/meti_supply_demand", ("year",), MetiSupplyDemand,
                "survey item x month (or year) x vintage", "meti", "none since the survey ended in December 2020",
                _EVERY_VINTAGE, "clean"),
        Dataset("partner_shares", "indicators/partner_shares", ("source",), PartnerShares,
                "source x metal x freq x basis x period x partner", "japan_customs, comtrade", monthly,
                _RECOMPUTED, "indicators"),
        Dataset("import_dependency", "indicators/import_dependency", ("source",), ImportDependency,
                "source x metal x freq x basis x period", "japan_customs, comtrade", monthly, _RECOMPUTED,
                "indicators"),
        Dataset("revisions", "indicators/revisions", ("source",), Revisions,
                "source x metal x period x vintage pair", "japan_customs", "when a release revises earlier months",
                "one row per pair of consecutive vintages", "indicators"),
        Dataset("china_exports_monthly", "indicators/china_exports_monthly", (), ChinaExportsMonthly,
                "commodity x currency x month", "gacc", monthly, _RECOMPUTED, "indicators"),
        Dataset("china_imports_monthly", "indicators/china_imports_monthly", (), ChinaImportsMonthly,
                "commodity x currency x month", "gacc_imports", monthly, _RECOMPUTED, "indicators"),
        Dataset("mirror_gaps", "indicators/mirror_gaps", (), MirrorGaps, "freq x period x metal x partner x Japan's side",
                "japan_customs against comtrade", "when either side changes", _RECOMPUTED, "indicators"),
        Dataset("reference_consumption", "indicators/reference_consumption", (), ReferenceConsumption,
                "metal x year x method", "meti, reference/consumption_baseline, japan_customs (apparent)",
                "each run", _RECOMPUTED, "indicators"),
        Dataset("reserve_coverage", "indicators/reserve_coverage", (), ReserveCoverage, "metal x month",
                "reference_consumption, stockpile policy, import_dependency", "each run", _RECOMPUTED, "indicators"),
        Dataset("import_reliance", "indicators/import_reliance", (), ImportReliance, "metal x year",
                "japan_customs, meti", "each run (complete years only)", _RECOMPUTED, "indicators"),
        Dataset("alerts", "indicators/alerts", (), Alerts, "kind x subject x source x period",
                "china_exports_monthly, import_dependency, partner_shares, reserve_coverage", "each run",
                _RECOMPUTED + "; an alert not in the previous file is new (a Prefect event)", "indicators"),
        Dataset("metals", "reference/metals", (), Metals, "metal x code x validity", "flows/reference/commodities.csv",
                "with rarewatch releases", "none", "reference"),
        Dataset("countries", "reference/countries", (), Countries, "Japan Customs country code",
                "flows/reference/japan_customs_countries.csv", "with rarewatch releases", "none", "reference"),
        Dataset("comtrade_partners", "reference/comtrade_partners", (), ComtradePartners, "Comtrade partner code",
                "flows/reference/comtrade_partners.csv", "with rarewatch releases", "none", "reference"),
        Dataset("stockpile_policy", "reference/stockpile_policy", (), StockpilePolicy, "metal",
                "flows/reference/stockpile_policy.csv or RAREWATCH_STOCKPILE_POLICY", "each run", "none", "reference"),
        Dataset("consumption_baseline", "reference/consumption_baseline", (), ConsumptionBaseline, "metal x year",
                "flows/reference/consumption_baseline.csv", "with rarewatch releases", "none", "reference"),
        Dataset("raw_manifest", "raw/<source>/manifest.parquet", (), RawManifest, "original file (sha256 x URL)",
                "every source", "each run that reads a file", "first retrieval kept, latest outcome", "raw"),
    )


def dataset(name: str) -> Dataset:
    for d in datasets():
        if d.name == name:
            return d
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(d.name for d in datasets())}")


def unit_of(column: str, description: str) -> str:
    """The unit of a column, from rarewatch's naming rules (a suffix names the unit) and the
    description; empty for codes, names and dates."""
    c, d = column.lower(), description.lower()
    for said in ("t/day", "t/year"):
        if d.startswith(said) or f", {said}" in d or d.endswith(said):
            return said
    rules = (("_jpy_thousand", "JPY thousand"), ("_usd", "USD"), ("_kg", "kg"), ("_pct", "%"), ("_days", "days"),
             ("days", "days"), ("_t", "t"), ("tonnes", "t"))
    for suffix, unit in rules:
        if c.endswith(suffix) or (suffix in ("_t", "_kg", "_usd") and f"{suffix}_" in c):
            return unit
    if c in ("share", "china_share", "top_partner_share", "top3_share") or c.endswith("_share"):
        return "fraction 0..1"
    if c == "hhi":
        return "index 0..10,000"
    if "currency units" in d:
        return "see column `currency`"
    if "in japan_value_unit" in d:
        return "see column `japan_value_unit`"
    if "in `unit`" in description or c in ("amount", "total", "special_areas_amount"):
        return "see column `unit`"
    return ""


def _allowed(column: pa.Column) -> str:
    out = []
    for check in column.checks:
        stats = getattr(check, "statistics", {}) or {}
        if check.name == "isin":
            out.append(", ".join(map(str, stats.get("allowed_values", []))))
        elif check.name == "in_range":
            out.append(f"{stats.get('min_value')}..{stats.get('max_value')}")
        elif check.name == "str_matches":
            out.append(f"matches {stats.get('pattern')}")
        elif check.name in ("greater_than", "gt"):
            out.append(f"> {stats.get('min_value')}")
        elif check.name in ("greater_than_or_equal_to", "ge"):
            out.append(f">= {stats.get('min_value')}")
    return "; ".join(out)


@cache
def _enumerations() -> dict[str, str]:
    """Values of the enumerated columns the models check only by pattern: metal ids (the
    commodity catalogue) and source names (the source registry)."""
    from flows.catalogue import Catalogue
    from flows.sources import registry

    return {"metal": ", ".join(sorted(Catalogue.load().metals)), "source": ", ".join(registry())}


def columns(ds: Dataset) -> list[dict[str, object]]:
    schema = ds.model.to_schema()
    out = []
    for name, col in schema.columns.items():
        desc = col.description or ""
        allowed = _allowed(col)
        if name in ("metal", "source") and "," not in allowed and ds.zone != "reference" and ds.name != "alerts":
            allowed = _enumerations()[name]
        out.append({"dataset": ds.name, "column": name, "type": str(col.dtype), "nullable": bool(col.nullable),
                    "unit": unit_of(name, desc), "description": desc, "allowed_values": allowed,
                    "hive_key": name in ds.partition_by})
    return out


def dictionary() -> dict[str, object]:
    """Everything, as `warehouse/data_dictionary.json` holds it."""
    return {"datasets": [
        {"dataset": d.name, "path": d.path, "zone": d.zone, "summary": d.summary, "grain": d.grain,
         "keys": d.keys, "partitioned_by": list(d.partition_by), "sources": d.sources, "cadence": d.cadence,
         "vintages": d.vintages, "columns": columns(d)}
        for d in datasets()]}


def dictionary_json() -> bytes:
    return (json.dumps(dictionary(), ensure_ascii=False, indent=1) + "\n").encode()


def dictionary_markdown() -> str:
    lines = ["# rarewatch data dictionary", "",
             "Generated from the pandera models (`schemas/`) by `flows/dictionary.py`: do not edit; "
             "`python -m flows.dictionary > docs/data_dictionary.md` rewrites it, and a test fails when it and "
             "the models disagree. Each run also writes it as `warehouse/data_dictionary.json`; every Parquet "
             "field carries its description, every DuckDB column its comment.", ""]
    for d in datasets():
        lines += [f"## {d.name}", "", d.summary, "",
                  f"- path: `{d.path}`" + (f", partitioned by {', '.join(f'`{k}`' for k in d.partition_by)}"
                                           if d.partition_by else ""),
                  f"- one row per: {d.grain}", f"- key: {', '.join(f'`{k}`' for k in d.keys) or '-'}",
                  f"- fed by: {d.sources}", f"- updated: {d.cadence}", f"- vintages: {d.vintages}", "",
                  "| column | type | unit | description | allowed values |", "|---|---|---|---|---|"]
        for c in columns(d):
            null = " (nullable)" if c["nullable"] else ""
            key = " (Hive key)" if c["hive_key"] else ""
            text = str(c["description"]).replace("|", "\\|")
            allowed = str(c["allowed_values"]).replace("|", "\\|")
            lines.append(f"| `{c['column']}` | {c['type']}{null}{key} | {c['unit']} | {text} | {allowed} |")
        lines.append("")
    return "\n".join(lines)


@cache
def _by_path() -> dict[str, dict[str, str]]:
    return {d.path: {str(c["column"]): str(c["description"]) for c in columns(d)} for d in datasets()}


def field_descriptions(rel: str) -> dict[str, str]:
    """Column descriptions of the dataset a file under the warehouse belongs to ({} when none)."""
    for path, desc in _by_path().items():
        if rel.startswith(path + "/") or rel == path:
            return desc
    if rel.startswith("raw/") and rel.endswith("/manifest.parquet"):
        return _by_path()["raw/<source>/manifest.parquet"]
    return {}


if __name__ == "__main__":
    print(dictionary_markdown(), end="")
