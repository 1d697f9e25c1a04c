"""prefect.yaml: every deployment points at a flow that loads, with described parameters."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[1]


def test_deployments_load_their_flows():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = {d["name"]: d for d in spec["deployments"]}
    assert "monthly-refresh" in names
    monthly = names["monthly-refresh"]
    assert monthly["schedules"][0]["timezone"] == "Asia/Tokyo"
    assert monthly["concurrency_limit"] == 1
    for d in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(REPO / d["entrypoint"]))
        params = flow.parameters.model_dump()["properties"]
        for name, schema in params.items():
            assert schema.get("description"), f"{d['name']}: parameter {name} has no description"
