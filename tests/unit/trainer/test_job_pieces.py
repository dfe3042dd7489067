"""Pieces of a job that need no model: failure descriptions, events, progress, demo batches."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from flywheel.events.codec import decode, encode
from flywheel.rediskit import LockLost
from flywheel.services.trainer.data import load_batch
from flywheel.services.trainer.demo import shop_dpo_rows, shop_eval_rows, shop_sft_rows, \
    shuffled_answers, write_batch
from flywheel.services.trainer.job import JobInterrupted, candidate_event, candidate_event_id, \
    describe_failure
from flywheel.services.trainer.progress import ProgressReporter
from flywheel.services.trainer.registry import FencedOut
from flywheel.v1.models_pb2 import ModelCandidate


@pytest.mark.parametrize(("exc", "kind", "start"), [
    (JobInterrupted("stop requested"), "interrupted", "interrupted: stop requested"),
    (LockLost("lock x lost"), "lock_lost", "lock lost: lock x lost"),
    (FencedOut("v1 is failed"), "lock_lost", "lock lost"),
    (MemoryError(), "out_of_memory", "out of memory"),
    (ValueError("bad\nvalue"), "error", "ValueError: bad value"),
])
def test_describe_failure(exc: BaseException, kind: str, start: str) -> None:
    got_kind, reason = describe_failure(exc)
    assert got_kind == kind and reason.startswith(start) and "\n" not in reason


def test_candidate_event_from_a_registry_row() -> None:
    row = SimpleNamespace(
        line="shop-assistant", version=3, parent_version=2, base_model="/base",
        adapter_path="/a", merged_path="/m", batch_ids=["b1", "b2"], status="rejected",
        metrics={"eval.exact_match": 0.5, "eval.items": 64, "gate.passed": 0.0,
                 "gate": {"passed": False, "reasons": ["eval.exact_match: worse"]}})
    event = decode(encode(candidate_event(row)), ModelCandidate)
    assert (event.version, event.parent_version, event.status) == (3, 2, "rejected")
    assert dict(event.metrics) == {"eval.exact_match": 0.5, "eval.items": 64.0, "gate.passed": 0.0}
    assert not event.gate.passed and list(event.gate.reasons) == ["eval.exact_match: worse"]
    assert event.envelope.event_id == candidate_event_id("shop-assistant", 3)
    assert candidate_event(row).envelope.event_id == event.envelope.event_id
    first = SimpleNamespace(**{**row.__dict__, "parent_version": None, "status": "candidate",
                               "metrics": {"gate": {"passed": True, "reasons": []}}})
    event = candidate_event(first)
    assert event.parent_version == 0 and event.status == "gated" and event.gate.passed


def test_progress_reporter_checks_every_step_and_logs_sparingly() -> None:
    calls: list[int] = []
    reporter = ProgressReporter(check=lambda: calls.append(1), log_every_s=3600)
    for step in range(1, 4):
        reporter(SimpleNamespace(phase="sft", step=step, total=3, loss=1.0, examples_per_s=5.0,
                                 eta_s=1.0))
    assert len(calls) == 3
    stopping = ProgressReporter(check=lambda: (_ for _ in ()).throw(JobInterrupted("stop")))
    with pytest.raises(JobInterrupted):
        stopping(SimpleNamespace(phase="dpo", step=1, total=2, loss=1.0, examples_per_s=1.0,
                                 eta_s=1.0))


def test_demo_batches_use_the_curator_layout(tmp_path: Path) -> None:
    sft = shop_sft_rows(20, seed=1)
    event = write_batch(tmp_path, "shop-assistant", 1, sft=sft, dpo=shop_dpo_rows(5, seed=2),
                        eval_rows=shop_eval_rows(8), replay_sft=4, replay_share=0.2)
    assert Path(event.sft_path).parent == (tmp_path / "datasets/shop-assistant/sft").resolve()
    assert dict(event.counts)["replay_sft"] == 4 and dict(event.counts)["sft"] == 16
    manifest = json.loads(Path(event.manifest_path).read_text())
    assert manifest["files"]["eval"]["sha256"] == event.eval_set_hash
    data = load_batch(event.sft_path, event.dpo_path, event.eval_set_path)
    assert (len(data.sft), len(data.dpo), len(data.eval_items)) == (20, 5, 8)
    again = write_batch(tmp_path, "shop-assistant", 1, sft=sft, dpo=shop_dpo_rows(5, seed=2),
                        eval_rows=shop_eval_rows(8), replay_sft=4, replay_share=0.2)
    assert again.batch_id == event.batch_id
    shuffled = shuffled_answers(sft, seed=3)
    assert [r["messages"][:-1] for r in shuffled] == [r["messages"][:-1] for r in sft]
    assert [r["messages"][-1] for r in shuffled] != [r["messages"][-1] for r in sft]
