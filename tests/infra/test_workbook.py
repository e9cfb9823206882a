"""The workbook carries the dashboard's panels, over tables Application Insights really has."""

from __future__ import annotations

import json

from .bicep_ast import INFRA, MAIN, BicepFile, object_properties, text

WORKBOOK = INFRA / "modules/workbook.json"
PANELS = {"rps", "latency", "errors", "rejections", "tokens", "ttft", "cache", "breakers",
          "instances"}
TABLES = ("requests", "traces", "customMetrics", "dependencies")


def _queries() -> dict[str, str]:
    doc = json.loads(WORKBOOK.read_text())
    assert doc["version"] == "Notebook/1.0"
    return {item["name"]: item["content"]["query"] for item in doc["items"] if item["type"] == 3}


def test_workbook_has_every_dashboard_panel() -> None:
    assert set(_queries()) == PANELS


def test_every_panel_queries_an_application_insights_table_over_the_chosen_time() -> None:
    doc = json.loads(WORKBOOK.read_text())
    for item in doc["items"]:
        if item["type"] != 3:
            continue
        content = item["content"]
        assert content["query"].split("\n", 1)[0].strip() in TABLES, item["name"]
        assert content["timeContextFromParameter"] == "TimeRange"
        assert content["resourceType"] == "microsoft.insights/components"


def test_counts_extrapolate_sampled_rows() -> None:
    # Adaptive sampling keeps one row for itemCount rows: count() would under-report.
    for name, query in _queries().items():
        assert "count()" not in query, name


def test_request_log_fields_used_by_the_workbook_exist() -> None:
    from function_app.telemetry.request_log import RequestRecord

    fields = set(RequestRecord.__dataclass_fields__)
    for query in _queries().values():
        for used in ("limited_by", "ttft_ms", "cache", "status"):
            if f"e.{used}" in query:
                assert used in fields, used


def test_main_wires_the_workbook_to_the_monitoring_component() -> None:
    module = BicepFile.load(MAIN).declarations("module")["workbook"]
    params = object_properties(object_properties(module.body)["params"])
    assert text(params["appInsightsName"]) == "monitoring.outputs.appInsightsName"
    body = (INFRA / "modules/workbook.bicep").read_text()
    assert "sourceId: appInsights.id" in body and "loadTextContent('workbook.json')" in body
