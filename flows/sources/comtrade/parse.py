"""Parse a UN Comtrade API answer (docs/sources.md, "UN Comtrade") to clean rows.

Envelope `{"elapsedTime", "count", "data": [...], "error"}`: a non-empty `error` is a failed
answer; `count: 0` means **not reported (yet)**, never zero trade, and is recorded as such.
Real answers can hold exact duplicate records: removed on the full record (counted). Records that
share the full key but disagree are quarantined (`Parsed.rejected`); `netWgt` 0 with a positive
quantity in kg is unknown (null), not zero.
"""

from __future__ import annotations

import json

import polars as pl

from flows.catalogue import comtrade_partners
from flows.errors import ReleaseFileError
from flows.periods import Month
from flows.sources import FAILURE_SCHEMA, Parsed, ReleaseFile

SOURCE = "comtrade"
FIELDS = ["freqCode", "refYear", "refMonth", "reporterCode", "flowCode", "partnerCode", "partner2Code", "cmdCode",
          "customsCode", "motCode", "qtyUnitCode", "qty", "netWgt", "primaryValue"]
ANNUAL_MONTH = 52  # refMonth of annual records
# A record's identity: without the breakdown codes a total and its parts would collide (docs/sources.md).
RECORD_KEY = ["freq", "reporter_code", "partner_code", "partner2_code", "cmd_code", "flow", "customs_code",
              "mot_code", "period"]
KG = 8  # qtyUnitCode of kilograms


def parse_answer(ref: ReleaseFile, data: bytes) -> Parsed:
    """Records of one answer to rows of `schemas.comtrade.ComtradeTrade`."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReleaseFileError(SOURCE, ref.name, f"not JSON: {e}") from None
    if not isinstance(doc, dict) or "data" not in doc:
        raise ReleaseFileError(SOURCE, ref.name, "not a Comtrade answer (no 'data' member)")
    if doc.get("error"):
        raise ReleaseFileError(SOURCE, ref.name, f"Comtrade answered with an error: {str(doc['error'])[:300]}")
    records = doc.get("data") or []
    if not isinstance(records, list):
        raise ReleaseFileError(SOURCE, ref.name, "'data' is not a list")
    count = doc.get("count", len(records))
    if not isinstance(count, int) or isinstance(count, bool) or count != len(records):
        # `count: 3, data: null` is a broken answer, not "nothing reported"
        raise ReleaseFileError(SOURCE, ref.name, f"'count' is {count!r} but the answer holds {len(records)} "
                               "record(s)", column="count")
    failures = []
    rows = []
    for i, rec in enumerate(records, start=1):
        missing = [f for f in FIELDS if f not in rec]
        if missing:
            failures.append({"line": i, "column": ",".join(missing), "check": "field present", "value": "missing"})
            continue
        rows.append({**{f: rec[f] for f in FIELDS}, "line": i})
    frame = _frame(rows, ref)
    before = frame.height
    frame = frame.unique(subset=[c for c in frame.columns if c != "line"], keep="first", maintain_order=True)
    # Records sharing the full key but disagreeing in value or weight: which one is right cannot
    # be told, so all of them are quarantined with the reason; the rest of the answer lands.
    clash = pl.len().over(RECORD_KEY) > 1
    conflicting = frame.filter(clash)
    frame = frame.filter(~clash)
    rejected = conflicting.select(
        "line", pl.lit("primaryValue").alias("column"),
        pl.lit("one record per key (reporter, partner, partner2, cmd, flow, customs, mot, period)").alias("check"),
        pl.format("{} of {} records with this key disagree: value {}, netWgt {}", pl.len().over(RECORD_KEY),
                  pl.len().over(RECORD_KEY), "value_usd", "net_weight_kg").alias("value"))
    months = sorted({Month(y, m if m else 12) for y, m in frame.select("year", "ref_month").iter_rows()})
    return Parsed(frame=frame, failures=pl.DataFrame(failures, schema=FAILURE_SCHEMA), months=months,
                  skipped={"exact_duplicates": before - frame.height - conflicting.height,
                           "not_reported": int(count == 0), "conflicting_duplicates": conflicting.height},
                  release="api", rejected=rejected if rejected.height else None)


def _frame(rows: list[dict], ref: ReleaseFile) -> pl.DataFrame:
    raw = pl.DataFrame(rows, schema={
        "freqCode": pl.String, "refYear": pl.Int64, "refMonth": pl.Int64, "reporterCode": pl.Int64,
        "flowCode": pl.String, "partnerCode": pl.Int64, "partner2Code": pl.Int64, "cmdCode": pl.String,
        "customsCode": pl.String, "motCode": pl.Int64, "qtyUnitCode": pl.Int64, "qty": pl.Float64,
        "netWgt": pl.Float64, "primaryValue": pl.Float64, "line": pl.Int64}, strict=False)
    partners = comtrade_partners().select(pl.col("code").cast(pl.Int64), "iso3")
    annual = pl.col("freqCode") == "A"
    out = raw.select(
        pl.col("freqCode").alias("freq"),
        pl.col("refYear").alias("year"),
        pl.when(annual).then(None).otherwise(pl.col("refMonth")).cast(pl.Int64).alias("ref_month"),
        pl.date(pl.col("refYear"), pl.when(annual).then(1).otherwise(pl.col("refMonth")), 1).alias("period"),
        pl.col("reporterCode").alias("reporter_code"),
        pl.col("flowCode").alias("flow"),
        pl.col("partnerCode").alias("partner_code"),
        pl.col("partner2Code").alias("partner2_code"),
        pl.col("cmdCode").str.strip_chars().alias("cmd_code"),
        pl.col("customsCode").alias("customs_code"),
        pl.col("motCode").alias("mot_code"),
        pl.col("qtyUnitCode").alias("qty_unit_code"),
        "qty",
        # netWgt 0 beside a positive quantity in kg is unknown, not zero trade (docs/sources.md)
        pl.when((pl.col("netWgt") == 0) & (pl.col("qtyUnitCode") == KG) & (pl.col("qty") > 0)).then(None)
        .otherwise(pl.col("netWgt")).alias("net_weight_kg"),
        pl.col("primaryValue").alias("value_usd"),
        "line",
    )
    out = (out.join(partners.rename({"code": "reporter_code", "iso3": "reporter_iso3"}), on="reporter_code", how="left")
              .join(partners.rename({"code": "partner_code", "iso3": "partner_iso3"}), on="partner_code", how="left"))
    return out.with_columns(
        pl.lit(ref.published, dtype=pl.Date).alias("vintage"),
        pl.lit(ref.name).alias("source_file"),
    ).select(_COLUMNS)


_COLUMNS = ["freq", "year", "ref_month", "period", "reporter_code", "reporter_iso3", "flow", "partner_code",
            "partner_iso3", "partner2_code", "cmd_code", "customs_code", "mot_code", "qty_unit_code", "qty",
            "net_weight_kg", "value_usd", "vintage", "source_file", "line"]
