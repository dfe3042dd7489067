"""Registry helpers on a migrated SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.db.engine import make_engine, migrate, session_scope
from flywheel.db.models import DatasetBatch, ModelLine
from flywheel.services.trainer import registry
from flywheel.services.trainer.logic.planning import Attempt

LINE = "shop-assistant"


@pytest.fixture
def engine(sqlite_url: str):  # noqa: ANN201
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def _start(engine, batch_id: str = "b1", token: int = 1, base: Path = Path("/base")) -> int:  # noqa: ANN001
    registry.ensure_line(engine, LINE, str(base))
    parent = registry.current_release(engine, LINE, base)
    return registry.start_version(engine, line=LINE, parent=parent, batch_id=batch_id,
                                  hyperparameters={"batch": {"batch_id": batch_id, "version": 1,
                                                             "sft_path": f"/d/{batch_id}.jsonl"}},
                                  token=token)


def _finish(engine, version: int, token: int, passed: bool = True) -> None:  # noqa: ANN001
    registry.finish_version(engine, LINE, version, token, passed=passed,
                            metrics={"eval.exact_match": 0.7, "gate": {"passed": passed}},
                            adapter_path=f"/a/v{version}/adapter", merged_path=f"/a/v{version}/merged",
                            artifact_hash="h" * 64, reason="ok")


def test_the_base_model_is_the_release_until_a_version_is_released(engine) -> None:  # noqa: ANN001
    release = registry.current_release(engine, LINE, Path("/base"))
    assert release.version is None and release.model_dir == Path("/base")
    version = _start(engine)
    _finish(engine, version, token=1)
    assert registry.current_release(engine, LINE, Path("/base")).version is None
    registry.set_status(engine, LINE, version, "released", "promoted in a test")
    release = registry.current_release(engine, LINE, Path("/base"))
    assert (release.version, release.model_dir) == (1, Path("/a/v1/merged"))
    assert release.batch_ids == ("b1",)


def test_versions_chain_parents_and_batch_lineage(engine) -> None:  # noqa: ANN001
    v1 = _start(engine, "b1")
    _finish(engine, v1, 1)
    registry.set_status(engine, LINE, v1, "released")
    v2 = _start(engine, "b2", token=2)
    row = registry.get_version(engine, LINE, v2)
    assert (row.version, row.parent_version, row.batch_ids) == (2, 1, ["b1", "b2"])
    assert row.hyperparameters["job"]["fencing_token"] == 2
    assert registry.own_batch(row) == "b2"
    assert registry.attempts_for_batch(engine, LINE, "b1") == [Attempt(1, "released", "")]
    assert registry.attempts_for_batch(engine, LINE, "b2") == [Attempt(2, "training", "")]


def test_status_history_records_every_transition(engine) -> None:  # noqa: ANN001
    version = _start(engine)
    _finish(engine, version, 1, passed=False)
    row = registry.get_version(engine, LINE, version)
    assert registry.status_of(row) == "rejected"
    assert [e["status"] for e in row.status_history] == ["training", "rejected"]
    assert all(e["at"] for e in row.status_history)


def test_fencing_refuses_a_stale_token_and_a_finished_row(engine) -> None:  # noqa: ANN001
    version = _start(engine, token=5)
    with pytest.raises(registry.FencedOut):
        _finish(engine, version, token=4)
    assert not registry.fail_version(engine, LINE, version, "stale", token=4)
    _finish(engine, version, token=5)
    with pytest.raises(registry.FencedOut):
        _finish(engine, version, token=5)
    assert not registry.fail_version(engine, LINE, version, "late", token=5)


def test_failed_versions_keep_the_reason_and_kind(engine) -> None:  # noqa: ANN001
    version = _start(engine, token=3)
    assert registry.fail_version(engine, LINE, version, "TrainingError: sft loss is nan",
                                 kind="error", token=3)
    row = registry.get_version(engine, LINE, version)
    assert registry.status_of(row) == "failed"
    assert row.failure_reason == "TrainingError: sft loss is nan"
    assert registry.attempts_for_batch(engine, LINE, "b1") == [Attempt(1, "failed", "error")]


def test_abandoned_versions_are_failed_without_the_dead_holders_token(engine) -> None:  # noqa: ANN001
    version = _start(engine, token=1)
    assert registry.abandon_versions(engine, LINE, [version], token=9) == [version]
    row = registry.get_version(engine, LINE, version)
    assert "abandoned" in row.failure_reason and "9" in row.failure_reason
    assert row.status_history[-1]["kind"] == "abandoned"
    with pytest.raises(registry.FencedOut):
        _finish(engine, version, token=1)  # the dead holder wakes up: fenced out


def test_find_batch_from_a_version_or_the_curators_row(engine, tmp_path: Path) -> None:  # noqa: ANN001
    _start(engine, "a" * 64)
    event = registry.find_batch(engine, "aaaaaaaa", tmp_path)
    assert event.batch_id == "a" * 64 and event.sft_path == f"/d/{'a' * 64}.jsonl"
    with session_scope(engine) as s:
        s.add(DatasetBatch(batch_id="c" * 64, model_line=LINE, version=2, sft_path="/x/sft.jsonl",
                           manifest={"content_hash": "h", "files": {
                               "eval": {"path": "datasets/shop-assistant/eval/e.jsonl",
                                        "sha256": "e"}}},
                           counts={"sft": 10, "replay_sft": 2}, replay_share=0.2))
    event = registry.find_batch(engine, "cccccc", tmp_path)
    assert event.version == 2 and event.counts["replay_sft"] == 2
    assert event.eval_set_path == str(tmp_path / "datasets/shop-assistant/eval/e.jsonl")
    assert abs(event.replay_share - 0.2) < 1e-9
    with pytest.raises(registry.RegistryError):
        registry.find_batch(engine, "dddddd", tmp_path)
    files = registry.batch_files(engine, ["a" * 64, "c" * 64, "missing"])
    assert [f.sft_path for f in files] == [f"/d/{'a' * 64}.jsonl", "/x/sft.jsonl"]


def test_resolve_version(engine) -> None:  # noqa: ANN001
    for batch in ("b1", "b2"):
        _finish(engine, _start(engine, batch), 1)
    assert registry.resolve_version(engine, f"{LINE}:2").version == 2
    assert registry.resolve_version(engine, "v1").version == 1
    assert registry.resolve_version(engine, "latest").version == 2
    with pytest.raises(registry.RegistryError):
        registry.resolve_version(engine, "release")
    with pytest.raises(registry.RegistryError):
        registry.resolve_version(engine, "7")
    with session_scope(engine) as s:
        s.add(ModelLine(line="other", base_model="/b"))
    registry.start_version(engine, line="other",
                           parent=registry.current_release(engine, "other", Path("/b")),
                           batch_id="o1", hyperparameters={}, token=1)
    with pytest.raises(registry.RegistryError, match="several model lines"):
        registry.resolve_version(engine, "1")
    assert registry.resolve_version(engine, "1", line="other").line == "other"


def test_start_point_is_the_newest_gated_descendant_of_the_release(engine) -> None:  # noqa: ANN001
    base = Path("/base")
    assert registry.start_point(engine, LINE, base).version is None
    v1 = _start(engine, "b1")
    _finish(engine, v1, 1)
    # v1 waits for export: the next batch builds on it, not on the base model.
    point = registry.start_point(engine, LINE, base)
    assert (point.version, point.model_dir, point.batch_ids) == (1, Path("/a/v1/merged"), ("b1",))
    assert registry.start_point(engine, LINE, base, "release").version is None
    registry.set_status(engine, LINE, v1, "released")
    v2 = registry.start_version(engine, line=LINE, parent=registry.start_point(engine, LINE, base),
                                batch_id="b2", hyperparameters={}, token=2)
    _finish(engine, v2, 2)
    registry.set_status(engine, LINE, v2, "canary")
    v3 = registry.start_version(engine, line=LINE, parent=registry.start_point(engine, LINE, base),
                                batch_id="b3", hyperparameters={}, token=3)
    assert registry.get_version(engine, LINE, v3).parent_version == 2
    _finish(engine, v3, 3, passed=False)  # rejected: never a start point
    point = registry.start_point(engine, LINE, base)
    assert (point.version, point.batch_ids) == (2, ("b1", "b2"))
    assert registry.start_point(engine, LINE, base, "release").version == 1
    registry.set_status(engine, LINE, v2, "rolled_back")
    assert registry.start_point(engine, LINE, base).version == 1


def test_start_point_skips_versions_that_do_not_descend_from_the_release(engine) -> None:  # noqa: ANN001
    base = Path("/base")
    v1 = _start(engine, "b1")  # on the base model
    _finish(engine, v1, 1)
    v2 = registry.start_version(engine, line=LINE, parent=registry.current_release(engine, LINE, base),
                                batch_id="b2", hyperparameters={}, token=2)
    _finish(engine, v2, 2)  # a sibling of v1, both on the base model
    registry.set_status(engine, LINE, v1, "released")
    # v2 is newer, but it lacks v1's batch: starting from it would drop what v1 learned.
    assert registry.start_point(engine, LINE, base).version == 1
    with pytest.raises(ValueError, match="unknown start point mode"):
        registry.start_point(engine, LINE, base, "oldest")


def test_batches_trained_together_come_before_the_jobs_own_batch(engine) -> None:  # noqa: ANN001
    v1 = _start(engine, "b1")
    _finish(engine, v1, 1)
    v2 = registry.start_version(engine, line=LINE, parent=registry.start_point(engine, LINE, Path("/b")),
                                batch_id="b4", hyperparameters={}, token=2, earlier=["b2", "b3"])
    row = registry.get_version(engine, LINE, v2)
    assert row.batch_ids == ["b1", "b2", "b3", "b4"] and registry.own_batch(row) == "b4"
