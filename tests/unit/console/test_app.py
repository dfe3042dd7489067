"""The console app through the test client: the page, /api/snapshot, health and metrics."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from fastapi.testclient import TestClient

from flywheel.services.console.app import create_app
from flywheel.services.console.collector import Collector


class FixedCollector:
    """Always the same snapshot."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap
        self.calls = 0

    def snapshot(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return self.snap


def _testid(html: str, testid: str) -> str:
    match = re.search(rf'data-testid="{re.escape(testid)}"[^>]*>([^<]*)<', html)
    assert match, f"no element with data-testid={testid}"
    return match.group(1).strip()


def test_offline_snapshot_reports_every_source_and_never_raises(offline_settings) -> None:  # noqa: ANN001
    collector = Collector(offline_settings, own_service="console")
    began = time.monotonic()
    try:
        snap = collector.snapshot()
    finally:
        collector.close()
    assert time.monotonic() - began < 20
    assert snap["sources"]["kafka"].startswith("FLYWHEEL_KAFKA_BOOTSTRAP: cannot connect")
    assert "no database at" in snap["sources"]["database"]
    assert snap["sources"]["redis"] != "ok"
    states = {s["name"]: s["state"] for s in snap["services"]}
    assert states["console"] == "up" and states["gateway"] == "down" and states["trainer"] == "down"
    assert snap["topics"] == [] and snap["lag"]["total"] == 0
    json.dumps(snap)  # the JSON the page and the CLI share


def test_page_renders_with_everything_down(offline_settings) -> None:  # noqa: ANN001
    with TestClient(create_app(offline_settings, sample=False)) as client:
        page = client.get("/?refresh=0")
        assert page.status_code == 200
        assert 'data-testid="source-errors"' in page.text
        assert _testid(page.text, "service-state-gateway") == "down"
        assert 'http-equiv="refresh"' not in page.text
        snap = client.get("/api/snapshot").json()
        assert snap["sources"]["database"] != "ok"
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"].startswith("unavailable")


def test_page_and_api_show_the_same_figures(offline_settings, known_snapshot) -> None:  # noqa: ANN001
    fixed = FixedCollector(known_snapshot)
    with TestClient(create_app(offline_settings, collector=fixed, sample=False)) as client:
        html = client.get("/").text
        api = client.get("/api/snapshot").json()
        metrics = client.get("/metrics").text
    assert api == json.loads(json.dumps(known_snapshot))
    assert _testid(html, "topic-end-traces.raw") == "1200"
    assert _testid(html, "topic-rate-traces.raw") == "12.50"
    assert _testid(html, "summary-events-total") == str(api["summary"]["events_total"]) == "1290"
    assert _testid(html, "lag-total") == "100"
    assert _testid(html, "deadletters-total") == "4"
    assert _testid(html, "dl-reason-EventDecodeError") == "3"
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert _testid(html, "queue-label") == "7" and _testid(html, "queue-review") == "2"
    assert _testid(html, "agreement-rate") == "0.550"
    assert _testid(html, "budget-questions") == "4" and _testid(html, "budget-at-limit") == "1"
    assert _testid(html, "release-shop-assistant") == "v1"
    assert _testid(html, "canary-shop-assistant") == "v2"
    assert _testid(html, "service-state-gateway") == "up"
    assert _testid(html, "service-state-console") == "up"
    # examples.sft 80 - 64 batched = 16 of 64; examples.dpo 10 of 32: the fuller is 31%.
    assert api["batches"]["open"]["sft"]["ready"] == 16 and api["batches"]["open"]["fill"] == 0.3125
    assert _testid(html, "batch-fill") == "31%"
    assert _testid(html, "gate-shop-assistant-2") == "passed"
    assert _testid(html, "training") == "shop-assistant"
    assert "eval.exact_match" in html and "eval.seconds" not in html  # timing is not a gate metric
    assert api["releases"]["lines"][0]["canary"]["share"] == 0.1
    for chart in ("chart-throughput", "chart-throughput-time", "chart-lag", "chart-deadletters",
                  "chart-calibration", "chart-batches", "chart-task-metric", "chart-budget"):
        assert f'data-testid="{chart}"' in html
    assert 'flywheel_console_topic_end_offset{topic="traces.raw"} 1200.0' in metrics
    assert 'flywheel_console_service_up{service="gateway"} 1.0' in metrics
    assert 'http-equiv="refresh" content="10"' in html


def test_task_metric_points_in_the_snapshot(known_snapshot) -> None:  # noqa: ANN001
    points = known_snapshot["task_metric"]["points"]
    assert [(p["version"], p["action"], p["value"]) for p in points] == [
        (1, "promote", 0.6), (2, "canary", 0.8)]
    assert known_snapshot["summary"]["release"] == 1 and known_snapshot["summary"]["canary"] == 2
