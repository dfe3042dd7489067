"""Candidate -> exporter -> registry canary + ModelRelease -> a server that loads the canary.

Real Apache Kafka (session fixture), SQLite registry, tiny random models exported to ONNX.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flywheel.db.engine import session_scope
from flywheel.db.models import ModelVersion, Release
from flywheel.services.exporter.settings import ExporterSettings
from flywheel.v1 import models_pb2

pytestmark = [pytest.mark.slow, pytest.mark.ml]


@contextmanager
def running_exporter(settings: Any, cfg: ExporterSettings, **hooks: Any) -> Iterator[list]:
    """The exporter's consume loop on a thread; yields the outcomes as they come."""
    from flywheel.services.exporter.main import run

    outcomes: list = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run(settings, cfg, stop, on_outcome=outcomes.append, **hooks)
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        thread.join(60)
        assert not errors, errors


def _row(engine: Any, version: int) -> ModelVersion:
    with session_scope(engine) as s:
        return s.get(ModelVersion, ("shop-assistant", version))


def _release_rows(engine: Any) -> list[tuple[str, int, str]]:
    from sqlmodel import select

    with session_scope(engine) as s:
        rows = s.exec(select(Release).order_by(Release.created_at)).all()
        return [(str(getattr(r.action, "value", r.action)), r.version, r.actor) for r in rows]


def test_candidate_becomes_a_canary_that_serving_loads(settings, engine, flow, tiny_dir: Path,
                                                       candidate_dir: Path, make_settings) -> None:
    from fastapi.testclient import TestClient

    from flywheel.services.serving.app import base_artifact, create_app
    from flywheel.services.serving.kafka_wiring import KafkaReleaseSource, KafkaTraceSink
    from flywheel.services.serving.logic import routes_to_canary
    from flywheel.services.serving.settings import ServingSection, ServingSettings

    flow.register_candidate(engine, 1, candidate_dir)
    flow.produce(settings, "models.candidates", [flow.candidate_event(1, candidate_dir),
                                                 flow.candidate_event(9, candidate_dir, passed=False)],
                 key=lambda e: e.model_line)
    cfg = ExporterSettings(canary_share=0.2, parity_prompts=8, parity_max_new_tokens=12, threads=1)
    with running_exporter(settings, cfg) as outcomes:
        flow.wait_for(lambda: len(outcomes) >= 2, 240, "two handled candidates")
    by_version = {o.version: o for o in outcomes}
    assert by_version[9].status == "skipped"
    assert by_version[1].status == "canary", by_version[1].reason

    row = _row(engine, 1)
    assert str(row.status.value) == "canary"
    assert row.onnx_path and Path(row.onnx_path, "model.onnx").is_file()
    assert row.metrics["parity.passed"] == 1.0
    assert _release_rows(engine) == [("canary", 1, "exporter")]
    [event] = flow.read_events(settings, "models.releases", "ModelRelease", expect=1)
    assert event.action == models_pb2.RELEASE_ACTION_CANARY
    assert (event.version, event.previous_version, event.actor) == (1, 0, "exporter")
    assert event.canary_share == pytest.approx(0.2)
    assert event.artifact_path == row.onnx_path and event.artifact_hash == row.artifact_hash

    # A server started now finds the canary in the topic's history and loads it.
    serving = make_settings(ServingSettings, redis_url=None,
                            serving=ServingSection(base_model_dir=tiny_dir, threads=1, max_batch=4))
    source = KafkaReleaseSource(serving, "shop-assistant", lambda: base_artifact(serving))
    sink = KafkaTraceSink(serving)
    app = create_app(serving, release_source=source, trace_sink=sink)
    with TestClient(app) as client:
        manager = app.state.runtime.manager
        flow.wait_for(lambda: manager.routing.canary is not None and manager.routing.stable is not None,
                      180, "the canary to load")
        assert (manager.routing.stable.version, manager.routing.canary.version) == ("0", "1")
        assert manager.routing.canary_share == pytest.approx(0.2)
        users = [f"user-{i}" for i in range(40)]
        expected = {u: "1" if routes_to_canary(u, "", 0.2) else "0" for u in users[:12]}
        assert set(expected.values()) == {"0", "1"}, "pick users on both sides"
        answered = {}
        for user, version in expected.items():
            resp = client.post("/v1/chat/completions", json={
                "model": "shop-assistant", "user": user, "max_tokens": 6, "temperature": 0,
                "messages": [{"role": "user", "content": "Where is my order 1234?"}]})
            assert resp.status_code == 200, resp.text
            assert resp.json()["model"] == f"shop-assistant:{version}"
            assert resp.headers["x-flywheel-model-version"] == version
            answered[resp.headers["x-request-id"]] = version

        # Promotion by hand: the running server switches without a restart.
        from flywheel.services.exporter.releasing import Releaser, kafka_send
        from flywheel.kafka.producer import make_producer

        producer = make_producer(settings)
        try:
            Releaser(settings, engine, kafka_send(producer)).promote(
                "shop-assistant", actor="user:alice", reason="canary looks fine")
        finally:
            producer.close(timeout=10)
        flow.wait_for(lambda: manager.routing.canary is None and manager.routing.stable.version == "1",
                      120, "the promotion to reach the server")
    sink.close()

    traces = flow.read_events(settings, "traces.raw", "Trace", expect=len(answered), timeout_s=60)
    assert {t.request_id: t.model.version for t in traces} == answered
    for trace in traces:
        assert trace.source == 3  # TRACE_SOURCE_SERVING
        assert trace.model.name == "shop-assistant" and trace.trace_id == trace.request_id
        assert trace.logprobs.token_count > 0 and trace.logprobs.mean_logprob < 0
        assert trace.messages[-1].role == "assistant"
    assert str(_row(engine, 1).status.value) == "released"
    assert _release_rows(engine)[-1] == ("promote", 1, "user:alice")


def test_diverging_export_fails_the_candidate_and_releases_nothing(settings, engine, flow, tiny_dir: Path,
                                                                   candidate_dir: Path, tmp_path: Path) -> None:
    from flywheel.ml.onnx_export import export_onnx

    broken_source = flow.tiny_models().perturbed_copy(tiny_dir, tmp_path / "wrong-weights", seed=7)

    def broken_export(model_dir: Path, root: Path, *, quantize: bool = False) -> Any:
        """An exporter bug: the artifact is built from other weights than the candidate's."""
        return export_onnx(broken_source, root, quantize=quantize)

    flow.register_candidate(engine, 2, candidate_dir)
    flow.produce(settings, "models.candidates", [flow.candidate_event(2, candidate_dir)],
                 key=lambda e: e.model_line)
    cfg = ExporterSettings(parity_prompts=6, parity_max_new_tokens=8, threads=1)
    with running_exporter(settings, cfg, export_fn=broken_export) as outcomes:
        flow.wait_for(lambda: outcomes, 240, "the candidate to be handled")
    [outcome] = outcomes
    assert outcome.status == "failed"
    row = _row(engine, 2)
    assert str(row.status.value) == "failed"
    assert "parity gate failed" in row.failure_reason
    assert "diverging prompt #" in row.failure_reason and "Northwind" in row.failure_reason
    assert row.status_history[-1]["status"] == "failed" and row.status_history[-1]["actor"] == "exporter"
    assert row.metrics["parity.passed"] == 0.0
    assert _release_rows(engine) == []
    assert flow.read_events(settings, "models.releases", "ModelRelease", expect=1, timeout_s=5) == []

    # Redelivery of the same candidate does nothing more.
    flow.produce(settings, "models.candidates", [flow.candidate_event(2, candidate_dir)],
                 key=lambda e: e.model_line)
    with running_exporter(settings, cfg, export_fn=broken_export) as outcomes:
        flow.wait_for(lambda: outcomes, 120, "the redelivered candidate")
    assert outcomes[0].status == "skipped" and "failed" in outcomes[0].reason
