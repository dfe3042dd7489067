"""Promotion and rollback: by rule (the release controller on simulated live signals) and by
hand (``flywheel models promote | rollback``), on the real broker and a SQLite registry."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from flywheel.db.engine import session_scope
from flywheel.db.models import ModelVersion, Release
from flywheel.services.exporter.settings import ExporterSettings
from flywheel.v1 import models_pb2

LINE = "shop-assistant"
FAST = dict(min_requests=200, min_samples=30, decision_interval_s=1.0, window_slack_s=5.0)


def _setup_canary(settings: Any, engine: Any, flow: Any, tmp_path: Path, version: int = 1) -> Any:
    """Version ``version`` on canary (the base, version 0, serves everyone else)."""
    from flywheel.kafka.producer import make_producer
    from flywheel.services.exporter.releasing import Releaser, kafka_send

    flow.register_candidate(engine, version, tmp_path / f"merged-{version}")
    producer = make_producer(settings)
    releaser = Releaser(settings, engine, kafka_send(producer))
    releaser.canary(LINE, version, tmp_path / f"artifact-{version}", f"hash-{version}", share=0.2,
                    actor="exporter", reason="parity gate passed")
    return releaser, producer


def _simulate(settings: Any, flow: Any, version: str, requests: int, down_rate: float, seed: int) -> None:
    """Served traces of ``version`` and a thumb on each, ``down_rate`` of them down."""
    rng = random.Random(seed)
    traces = [flow.served_trace(LINE, version) for _ in range(requests)]
    feedback = [flow.thumbs(t, up=rng.random() >= down_rate) for t in traces]
    # Feedback first for a few: the controller must hold it until the trace arrives.
    flow.produce(settings, "feedback.events", feedback[:10], key=lambda e: e.trace_id)
    flow.produce(settings, "traces.raw", traces, key=lambda e: e.trace_id)
    flow.produce(settings, "feedback.events", feedback[10:], key=lambda e: e.trace_id)


def _controller(settings: Any, engine: Any, producer: Any, **overrides: Any) -> Any:
    from flywheel.services.exporter.controller import ReleaseController
    from flywheel.services.exporter.releasing import Releaser, kafka_send

    cfg = ExporterSettings(**{**FAST, **overrides})
    releaser = Releaser(settings, engine, kafka_send(producer), producer_name="release-controller")
    return ReleaseController(settings, cfg, engine, releaser)


def _drive(controller: Any, flow: Any, timeout_s: float = 90.0) -> Any:
    events: list = []

    def step() -> bool:
        event = controller.step(poll_s=1.0)
        if event is not None:
            events.append(event)
        return bool(events)

    flow.wait_for(step, timeout_s, "a release decision", interval_s=0.0)
    return events[0]


def _status(engine: Any, version: int) -> str:
    with session_scope(engine) as s:
        return str(s.get(ModelVersion, (LINE, version)).status.value)


def _releases(engine: Any) -> list[tuple[str, int, str]]:
    with session_scope(engine) as s:
        rows = s.exec(select(Release).order_by(Release.created_at)).all()
        return [(str(r.action.value), r.version, r.actor) for r in rows]


def test_controller_promotes_a_canary_that_users_prefer(settings, engine, flow, tmp_path: Path) -> None:
    releaser, producer = _setup_canary(settings, engine, flow, tmp_path)
    try:
        _simulate(settings, flow, "0", 600, down_rate=0.20, seed=1)
        _simulate(settings, flow, "1", 300, down_rate=0.04, seed=2)
        controller = _controller(settings, engine, producer)
        try:
            event = _drive(controller, flow)
        finally:
            controller.close()
    finally:
        producer.close(timeout=10)
    assert event.action == models_pb2.RELEASE_ACTION_PROMOTE
    assert (event.version, event.previous_version, event.actor) == (1, 0, "release-controller")
    assert "not worse" in event.reason and "thumbs_down_rate" in event.reason
    assert _status(engine, 1) == "released"
    assert _releases(engine)[-1] == ("promote", 1, "release-controller")
    wire = flow.read_events(settings, "models.releases", "ModelRelease", expect=2)
    assert [e.action for e in wire] == [models_pb2.RELEASE_ACTION_CANARY, models_pb2.RELEASE_ACTION_PROMOTE]
    decision = controller.last_decision
    checks = {c.name: c for c in decision.checks}
    assert checks["thumbs_down_rate"].status == "not_worse"
    assert checks["error_rate"].samples == (300, 600)


def test_controller_rolls_back_a_clearly_worse_canary(settings, engine, flow, tmp_path: Path) -> None:
    releaser, producer = _setup_canary(settings, engine, flow, tmp_path)
    try:
        _simulate(settings, flow, "0", 300, down_rate=0.10, seed=3)
        _simulate(settings, flow, "1", 80, down_rate=0.55, seed=4)  # well before min_requests
        controller = _controller(settings, engine, producer, auto_promote=False)
        try:
            event = _drive(controller, flow)
        finally:
            controller.close()
    finally:
        producer.close(timeout=10)
    assert event.action == models_pb2.RELEASE_ACTION_ROLLBACK
    assert (event.version, event.previous_version) == (1, 0)
    assert "worse" in event.reason
    assert _status(engine, 1) == "rolled_back"
    assert _releases(engine)[-1] == ("rollback", 1, "release-controller")


def test_controller_waits_while_the_evidence_is_thin(settings, engine, flow, tmp_path: Path) -> None:
    releaser, producer = _setup_canary(settings, engine, flow, tmp_path)
    try:
        _simulate(settings, flow, "0", 60, down_rate=0.10, seed=5)
        _simulate(settings, flow, "1", 40, down_rate=0.15, seed=6)
        controller = _controller(settings, engine, producer)
        try:
            for _ in range(3):
                assert controller.step(poll_s=1.0) is None
        finally:
            controller.close()
    finally:
        producer.close(timeout=10)
    assert controller.last_decision.action == "wait"
    assert _status(engine, 1) == "canary"


def test_manual_promote_and_rollback_record_the_actor(settings, engine, flow, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from flywheel.cli.releases import add_release_commands

    _, producer = _setup_canary(settings, engine, flow, tmp_path)
    producer.close(timeout=10)
    app = typer.Typer()
    add_release_commands(app)
    env = {"FLYWHEEL_ENV": "test", "FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(),
           "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix, "FLYWHEEL_DATABASE_URL": settings.database(),
           "FLYWHEEL_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    result = runner.invoke(app, ["promote", LINE, "--actor", "user:carol", "--reason", "reviewed"], env=env)
    assert result.exit_code == 0, result.output
    assert "promote shop-assistant v1 by user:carol" in result.output
    assert _status(engine, 1) == "released"

    result = runner.invoke(app, ["rollback", LINE, "--json"], env={**env, "FLYWHEEL_ACTOR": "user:dave"})
    assert result.exit_code == 0, result.output
    assert '"actor": "user:dave"' in result.output
    assert _status(engine, 1) == "rolled_back"
    assert _releases(engine) == [("canary", 1, "exporter"), ("promote", 1, "user:carol"),
                                 ("rollback", 1, "user:dave")]
    wire = flow.read_events(settings, "models.releases", "ModelRelease", expect=3)
    assert [(e.action, e.actor) for e in wire[1:]] == [
        (models_pb2.RELEASE_ACTION_PROMOTE, "user:carol"), (models_pb2.RELEASE_ACTION_ROLLBACK, "user:dave")]
    assert wire[-1].previous_version == 0  # back to the base model

    result = runner.invoke(app, ["rollback", LINE], env=env)
    assert result.exit_code != 0  # nothing left to roll back
