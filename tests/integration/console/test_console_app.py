"""The console app over real sources, watching a model server listed in the stack state file."""

from __future__ import annotations

import os
import re
import threading
import time

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from console_seed import seed
from flywheel.services.console.app import create_app
from flywheel.stack.process import free_port, process_start_time
from flywheel.stack.state import save_state


def _model_server() -> FastAPI:
    """Stands in for the serving service: its health routes and metric names."""
    r = CollectorRegistry()
    requests = Counter("flywheel_serving_requests", "", ["version", "status", "stream"], registry=r)
    latency = Histogram("flywheel_serving_request_seconds", "", ["version"], registry=r)
    info = Gauge("flywheel_serving_model_info", "", ["line", "role", "version"], registry=r)
    Gauge("flywheel_serving_canary_share", "", registry=r).set(0.25)
    requests.labels("2", "ok", "false").inc(30)
    requests.labels("3", "ok", "false").inc(9)
    requests.labels("3", "error", "false").inc(1)
    latency.labels("2").observe(0.1)
    info.labels("shop-assistant", "stable", "2").set(1)
    info.labels("shop-assistant", "canary", "3").set(1)
    app = FastAPI()
    app.get("/healthz")(lambda: {"status": "ok"})
    app.get("/readyz")(lambda: {"status": "ready", "stable": "2", "canary": "3",
                                "canary_share": 0.25})
    app.get("/metrics")(lambda: Response(generate_latest(r)))
    return app


class _Server:
    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_config=None, access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "model server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def test_the_page_shows_services_from_the_state_file_and_serving_signals(console_settings) -> None:  # noqa: ANN001
    settings = console_settings()
    seed(settings)
    with _Server(_model_server()) as url:
        pid = os.getpid()
        save_state(settings.data_dir, {"services": {
            "serving": {"url": url, "port": int(url.rsplit(":", 1)[1]), "pid": pid,
                        "started": process_start_time(pid), "managed": True},
            "gateway": {"url": f"http://127.0.0.1:{free_port()}", "pid": None, "managed": True}}})
        with TestClient(create_app(settings)) as client:
            snap = client.get("/api/snapshot", params={"fresh": "true"}).json()
            page = client.get("/").text
            metrics = client.get("/metrics").text
    services = {s["name"]: s for s in snap["services"]}
    assert services["serving"]["state"] == "up" and services["serving"]["ready"]["canary"] == "3"
    assert services["serving"]["metrics"]["totals"]["flywheel_serving_requests_total"] == 40
    assert services["gateway"]["state"] == "down"  # recorded, but nothing listens there
    assert services["console"]["state"] == "up"
    signals = snap["releases"]["serving"]["signals"]
    assert signals["canary_share"] == 0.25
    assert [(v["version"], v["requests"], v["errors"]) for v in signals["versions"]] == [
        ("2", 30, 0), ("3", 10, 1)]
    assert re.search(r'data-testid="canary-share">25%<', page)
    assert re.search(r'data-testid="service-state-serving">up<', page)
    assert re.search(r'data-testid="topic-end-traces.raw">12<', page)
    assert 'flywheel_console_service_up{service="serving"} 1.0' in metrics
