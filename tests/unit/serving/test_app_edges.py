"""App behaviour around the edges: missing base model, failing trace sink, request ids."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flywheel.services.serving.app import create_app

pytestmark = pytest.mark.ml

CHAT = [{"role": "user", "content": "Hello"}]


def _wait_ready(client: TestClient, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.05)


def test_missing_base_model_is_not_ready_and_says_why(make_serving_settings, tmp_path: Path) -> None:  # noqa: ANN001
    app = create_app(make_serving_settings(tmp_path / "nowhere", tmp_path))
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while not (body := client.get("/readyz").json())["error"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert client.get("/readyz").status_code == 503
        assert "FLYWHEEL_SERVING_BASE_MODEL_DIR" in body["error"]
        assert client.get("/healthz").status_code == 200
        reply = client.post("/v1/chat/completions", json={"model": "shop-assistant", "messages": CHAT})
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "model_not_ready"
        assert client.get("/v1/models").json()["data"] == []


def test_a_failing_trace_sink_never_fails_a_request(
    model_versions, version_artifacts, serving_root, make_serving_settings  # noqa: ANN001
) -> None:
    calls = []

    def broken_sink(conversation) -> None:  # noqa: ANN001
        calls.append(conversation.request_id)
        raise ConnectionError("broker down")

    app = create_app(make_serving_settings(model_versions["0"], serving_root), trace_sink=broken_sink)
    with TestClient(app) as client:
        _wait_ready(client)
        reply = client.post(
            "/v1/chat/completions",
            json={"model": "shop-assistant", "messages": CHAT, "max_tokens": 3},
            headers={"x-request-id": "req-42"},
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == "req-42"
        assert reply.headers["x-flywheel-model-version"] == "0"
        assert calls == ["req-42"]
        assert "flywheel_serving_trace_sink_errors_total 1.0" in client.get("/metrics").text
        generated = client.get("/healthz").headers["x-request-id"]
        assert len(generated) == 32


def test_validation_errors_are_openai_shaped(model_versions, version_artifacts, serving_root, make_serving_settings) -> None:  # noqa: ANN001
    app = create_app(make_serving_settings(model_versions["0"], serving_root))
    with TestClient(app) as client:
        _wait_ready(client)
        reply = client.post("/v1/chat/completions", json={"model": "shop-assistant", "messages": []})
        assert reply.status_code == 400
        assert reply.json()["error"]["type"] == "invalid_request_error"
        assert reply.json()["error"]["param"] == "messages"


def test_a_failed_generation_is_traced_as_a_system_failure(
    model_versions, version_artifacts, serving_root, make_serving_settings, monkeypatch  # noqa: ANN001
) -> None:
    from flywheel.ml import ort_runtime
    from flywheel.services.serving.kafka_wiring import conversation_trace
    from flywheel.v1 import common_pb2, trace_pb2

    def broken(self, rows):  # noqa: ANN001, ANN202
        raise RuntimeError("onnxruntime: bad allocation")
        yield  # pragma: no cover - a generator that fails on first use

    seen = []
    app = create_app(make_serving_settings(model_versions["0"], serving_root), trace_sink=seen.append)
    with TestClient(app) as client:
        _wait_ready(client)
        owner = next(c for c in vars(ort_runtime).values()
                     if isinstance(c, type) and "iter_rows" in vars(c))
        monkeypatch.setattr(owner, "iter_rows", broken)
        reply = client.post("/v1/chat/completions",
                            json={"model": "shop-assistant", "messages": CHAT, "max_tokens": 3},
                            headers={"x-request-id": "req-broken"})
        assert reply.status_code >= 500, reply.text
        assert 'status="error"' in client.get("/metrics").text
    assert [c.request_id for c in seen] == ["req-broken"]
    assert seen[0].choices == [] and "bad allocation" in (seen[0].error or "")
    trace = conversation_trace(seen[0])
    assert trace.outcome.status == trace_pb2.OUTCOME_STATUS_FAILURE
    assert trace.outcome.failure_source == common_pb2.FAILURE_SOURCE_SYSTEM
    assert [m.role for m in trace.messages] == ["user"]  # the prompt, no answer
