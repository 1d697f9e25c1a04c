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
    by_slug = {s["slug"]: s for s in monthly["schedules"]}
    assert by_slug["japan-customs"]["parameters"] == {"sources": ["japan_customs"], "previous_year": False}
    assert by_slug["china-customs"]["parameters"]["sources"] == ["gacc", "gacc_imports"]
    assert by_slug["comtrade-annual"]["parameters"]["sources"] == ["comtrade"]  # once a month, not twice
    assert by_slug["japan-customs-previous-year"]["parameters"]["previous_year"] is True
    assert by_slug["japan-customs-previous-year"]["cron"] == "0 9 15 3,11 *"
    assert sum("comtrade" in s["parameters"]["sources"] for s in monthly["schedules"]) == 1
    assert "schedules" not in names["backfill"]
    for d in spec["deployments"]:
        assert d["concurrency_limit"]["limit"] == 1
        assert d["work_pool"]["name"] == "rarewatch"
        flow = load_flow_from_entrypoint(str(REPO / d["entrypoint"]))
        params = flow.parameters.model_dump()["properties"]
        for name, schema in params.items():
            assert schema.get("description"), f"{d['name']}: parameter {name} has no description"
    refresh = load_flow_from_entrypoint(str(REPO / monthly["entrypoint"]))
    sources = refresh.parameters.model_dump()["properties"]["sources"]
    choices = next(x for x in sources["anyOf"] if x.get("type") == "array")["items"]
    enum = choices.get("enum") or refresh.parameters.model_dump().get("definitions", {}).get(
        choices.get("$ref", "").rsplit("/", 1)[-1], {}).get("enum")
    assert set(enum) == {"japan_customs", "gacc", "gacc_imports", "comtrade", "meti"}  # a choice list in the run form
    backfill = load_flow_from_entrypoint(str(REPO / names["backfill"]["entrypoint"]))
    props = backfill.parameters.model_dump()
    assert set(props["required"]) == {"start", "end"}
    assert {"start", "end", "sources", "force"} <= set(props["properties"])


def test_the_run_forms_source_choices_are_the_registry():
    import typing

    from flows.monthly import SourceName
    from flows.sources import registry

    assert set(typing.get_args(SourceName)) == set(registry())
