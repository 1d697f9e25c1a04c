"""prefect.yaml: every deployment points at a flow that loads, with typed, described parameters."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[1]


def test_deployments_load_their_flows():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert set(names) == {"monthly-refresh", "backfill", "sources-check"}
    assert [s["cron"] for s in names["sources-check"]["schedules"]] == ["0 8 * * 1"]  # weekly
    monthly = names["monthly-refresh"]
    assert {s["timezone"] for s in monthly["schedules"]} == {"Asia/Tokyo"}
    assert [s["cron"] for s in monthly["schedules"]] == ["0 9 2 * *", "0 9 11 * *"]
    assert "schedules" not in names["backfill"]
    for d in spec["deployments"]:
        assert d["concurrency_limit"]["limit"] == 1
        assert d["work_pool"]["name"] == "rarewatch"
        flow = load_flow_from_entrypoint(str(REPO / d["entrypoint"]))
        params = flow.parameters.model_dump()["properties"]
        for name, schema in params.items():
            assert schema.get("description"), f"{d['name']}: parameter {name} has no description"
    backfill = load_flow_from_entrypoint(str(REPO / names["backfill"]["entrypoint"]))
    props = backfill.parameters.model_dump()
    assert set(props["required"]) == {"start", "end"}
    assert {"start", "end", "sources", "force"} <= set(props["properties"])
