"""A local stand-in for the Comtrade API, answering from the real 2022 records in API form."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

from werkzeug import Request, Response


def load_records(path: Path) -> list[dict]:
    """The flattened records (`year,reporter,partner,cmd,flow,value,netwgt,qty,qtyunit`) in the API's
    record shape, exact duplicates kept as delivered.

    The flattening dropped customsCode/motCode, so a total and its breakdown share one key
    (e.g. Turkey's 252800 exports to Japan: 8,262,230 = 8,262,228 + 2). As the API does, the
    largest record of a key is the total (C00, mot 0); the others get breakdown codes.
    """
    out = []
    with gzip.open(path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            out.append({
                "typeCode": "C", "freqCode": "A", "refPeriodId": int(f"{r['year']}0101"), "refYear": int(r["year"]),
                "refMonth": 52, "period": r["year"], "reporterCode": int(r["reporter"]), "flowCode": r["flow"],
                "partnerCode": int(r["partner"]), "partner2Code": 0, "classificationCode": "H6",
                "cmdCode": r["cmd"], "customsCode": "C00", "mosCode": "0", "motCode": 0,
                "qtyUnitCode": int(r["qtyunit"]) if r["qtyunit"] else -1,
                "qty": float(r["qty"]) if r["qty"] else None,
                "netWgt": float(r["netwgt"]) if r["netwgt"] else None,
                "primaryValue": float(r["value"]) if r["value"] else None,
                "isReported": True, "isAggregate": False,
            })
    groups: dict[tuple, list[float]] = {}
    for r in out:
        key = (r["reporterCode"], r["partnerCode"], r["cmdCode"], r["flowCode"])
        groups.setdefault(key, [])
        if r["primaryValue"] not in groups[key]:
            groups[key].append(r["primaryValue"])
    for r in out:
        values = sorted((v for v in groups[(r["reporterCode"], r["partnerCode"], r["cmdCode"], r["flowCode"])]
                         if v is not None), reverse=True)
        rank = values.index(r["primaryValue"]) if r["primaryValue"] in values else 0
        if rank:
            r["customsCode"], r["motCode"] = f"C{rank:02d}", 1000 + rank
    return out


class ComtradeStandIn:
    """Serves /public/v1/preview/C/A/HS and /data/v1/get/C/A/HS with the API's filters."""

    def __init__(self, records: list[dict], key: str | None = None, limit: int = 100_000):
        self.records, self.key, self.limit = records, key, limit
        self.calls: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.calls.append(request)
        if request.path.startswith("/data/") and request.headers.get("Ocp-Apim-Subscription-Key") != self.key:
            return Response(json.dumps({"statusCode": 401, "message": "Access denied due to invalid key."}), 401)
        a = request.args
        cmds = set(a.get("cmdCode", "").split(",")) if a.get("cmdCode") else None
        hits = [r for r in self.records
                if (not a.get("reporterCode") or r["reporterCode"] == int(a["reporterCode"]))
                and (not a.get("partnerCode") or r["partnerCode"] == int(a["partnerCode"]))
                and (not a.get("flowCode") or r["flowCode"] == a["flowCode"])
                and (not a.get("period") or r["period"] == a["period"])
                and (not a.get("customsCode") or r["customsCode"] == a["customsCode"])
                and (a.get("motCode") in (None, "") or r["motCode"] == int(a["motCode"]))
                and (cmds is None or r["cmdCode"] in cmds)]
        limit = 500 if request.path.startswith("/public/") else self.limit
        hits = hits[:limit]
        body = {"elapsedTime": "0.1 secs", "count": len(hits), "data": hits, "error": ""}
        return Response(json.dumps(body), content_type="application/json")
