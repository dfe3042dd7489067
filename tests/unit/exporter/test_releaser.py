"""The releaser on a real SQLite registry with an in-memory broker stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from flywheel.db.engine import make_engine, migrate, session_scope
from flywheel.db.models import ModelLine, ModelStatus, ModelVersion, Release
from flywheel.events.codec import decode
from flywheel.services.exporter.logic.releases import ReleaseRuleError
from flywheel.services.exporter.releasing import Releaser
from flywheel.settings import Settings
from flywheel.v1 import models_pb2

LINE = "shop"


class FakeBroker:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail

    def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail:
            from flywheel.errors import DependencyUnavailable

            raise DependencyUnavailable("broker down")
        self.sent.append((topic, key, value))

    def events(self) -> list[models_pb2.ModelRelease]:
        return [decode(v, "ModelRelease") for _, _, v in self.sent]


@pytest.fixture
def engine(tmp_path: Path):  # noqa: ANN201
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        s.add(ModelLine(line=LINE, base_model="tiny"))
        s.flush()
        for v in (1, 2, 3):
            s.add(ModelVersion(line=LINE, version=v, base_model="tiny", status=ModelStatus.CANDIDATE,
                               merged_path=f"/m/{v}"))
    return engine


def _status(engine, version: int) -> str:  # noqa: ANN001
    with session_scope(engine) as s:
        row = s.get(ModelVersion, (LINE, version))
        return str(getattr(row.status, "value", row.status))


def _releases(engine) -> list[tuple[str, int, str]]:  # noqa: ANN001
    with session_scope(engine) as s:
        rows = s.exec(select(Release).order_by(Release.created_at)).all()
        return [(str(getattr(r.action, "value", r.action)), r.version, r.actor) for r in rows]


def test_canary_promote_rollback_cycle(engine, tmp_path: Path) -> None:  # noqa: ANN001
    broker = FakeBroker()
    rel = Releaser(Settings(env="test", topic_prefix="tp"), engine, broker)
    event = rel.canary(LINE, 1, tmp_path / "a1", "h1", share=0.2, actor="exporter", reason="gate ok")
    assert event.action == models_pb2.RELEASE_ACTION_CANARY and event.canary_share == pytest.approx(0.2)
    assert _status(engine, 1) == "canary"
    rel.promote(LINE, actor="alice", reason="by hand")
    assert _status(engine, 1) == "released"
    rel.canary(LINE, 2, tmp_path / "a2", "h2", share=0.2, actor="exporter", reason="gate ok")
    rel.canary(LINE, 3, tmp_path / "a3", "h3", share=0.2, actor="exporter", reason="gate ok")
    assert _status(engine, 2) == "rolled_back"  # replaced before a decision
    back = rel.rollback(LINE, actor="bob", reason="too many thumbs down")
    assert (back.version, back.previous_version) == (3, 1)
    assert back.artifact_path == str(tmp_path / "a1")
    assert _status(engine, 3) == "rolled_back"
    assert _releases(engine) == [("canary", 1, "exporter"), ("promote", 1, "alice"),
                                 ("canary", 2, "exporter"), ("canary", 3, "exporter"),
                                 ("rollback", 3, "bob")]
    topics = {t for t, _, _ in broker.sent}
    assert topics == {"tp.models.releases.v1"}
    assert [e.actor for e in broker.events()] == ["exporter", "alice", "exporter", "exporter", "bob"]
    with session_scope(engine) as s:
        history = s.get(ModelVersion, (LINE, 3)).status_history
    assert history[-1]["actor"] == "bob" and history[-1]["status"] == "rolled_back"


def test_rolling_back_the_only_release_goes_to_the_base(engine, tmp_path: Path) -> None:  # noqa: ANN001
    broker = FakeBroker()
    rel = Releaser(Settings(env="test"), engine, broker)
    rel.canary(LINE, 1, tmp_path / "a1", "h1", share=0.5, actor="exporter", reason="ok")
    rel.promote(LINE, 1, actor="alice", reason="ok")
    back = rel.rollback(LINE, actor="alice", reason="bad")
    assert (back.version, back.previous_version, back.artifact_path) == (1, 0, "")
    with pytest.raises(ReleaseRuleError):
        rel.rollback(LINE, actor="alice", reason="again")


def test_broker_failure_leaves_the_registry_unchanged(engine, tmp_path: Path) -> None:  # noqa: ANN001
    from flywheel.errors import DependencyUnavailable

    rel = Releaser(Settings(env="test"), engine, FakeBroker(fail=True))
    with pytest.raises(DependencyUnavailable):
        rel.canary(LINE, 1, tmp_path / "a1", "h1", share=0.2, actor="exporter", reason="ok")
    assert _status(engine, 1) == "candidate"
    assert _releases(engine) == []


def test_expected_canary_guards_automatic_decisions(engine, tmp_path: Path) -> None:  # noqa: ANN001
    rel = Releaser(Settings(env="test"), engine, FakeBroker())
    rel.canary(LINE, 1, tmp_path / "a1", "h1", share=0.2, actor="exporter", reason="ok")
    rel.rollback(LINE, actor="alice", reason="by hand first")
    with pytest.raises(ReleaseRuleError):
        rel.promote(LINE, 1, actor="release-controller", reason="auto", expect_canary=1)
    with pytest.raises(Exception, match="no exported artifact"):
        rel.promote(LINE, 2, actor="alice", reason="never exported")
