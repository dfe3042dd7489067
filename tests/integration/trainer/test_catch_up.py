"""A trainer behind the curator trains the waiting batches in one job, on top of the newest
gated version.

Real broker, Redis and SQLite; the first test runs the trainer process (its consumer), the
second ``run_batch`` in this process.
"""

from __future__ import annotations

import pytest

from flywheel.db.engine import make_engine, migrate
from flywheel.services.trainer import registry
from flywheel.services.trainer.demo import shop_dpo_rows, shop_sft_rows, write_batch
from flywheel.services.trainer.job import run_batch
from flywheel.services.trainer.main import consumer_group

from .conftest import LINE, announce

pytestmark = [pytest.mark.slow, pytest.mark.ml]

QUICK = {"max_sft_steps": 6, "max_dpo_steps": 2, "slice_size": 0, "eval_set_size": 16}


def test_waiting_batches_are_trained_in_one_job(make_settings, trainer_process,  # noqa: ANN001
                                                candidates) -> None:
    from flywheel.kafka.admin import group_offsets

    settings = make_settings()
    migrate(settings.database())
    artifacts = settings.data_dir / "artifacts"
    batches = [write_batch(artifacts, LINE, n, sft=shop_sft_rows(40 + n, seed=n),
                           dpo=shop_dpo_rows(12, seed=10 + n)) for n in (1, 2, 3)]
    for batch in batches:  # all three wait before the trainer starts
        announce(settings, batch)
    reader = candidates(settings)
    proc = trainer_process(settings, max_batches_per_job=4, **QUICK)

    [candidate] = reader.wait_for(1, timeout_s=600, proc=proc)
    assert candidate.version == 1
    assert list(candidate.batch_ids) == [b.batch_id for b in batches]
    engine = make_engine(settings.database())
    row = registry.get_version(engine, LINE, 1)
    data = row.hyperparameters["data"]
    assert data["batches"] == 3
    assert data["sft_rows"] == 41 + 42 + 43
    assert data["dpo_pairs"] + data["heldout_pairs"] == 36
    assert [b["batch_id"] for b in row.hyperparameters["earlier_batches"]] == [
        b.batch_id for b in batches[:2]]
    assert registry.own_batch(row) == batches[2].batch_id
    engine.dispose()
    # Every record of the job is committed, so none is trained again.
    offsets = group_offsets(settings.kafka(), consumer_group(settings))
    assert sum(offsets.values()) == 3, offsets


def test_a_batch_the_start_point_holds_is_not_trained_again(job_context) -> None:  # noqa: ANN001
    ctx = job_context(**QUICK)
    b1, b2, b3 = (write_batch(ctx.artifacts, LINE, n, sft=shop_sft_rows(30 + n, seed=20 + n))
                  for n in (1, 2, 3))
    first = run_batch(ctx, b1)
    assert first.kind in ("candidate", "rejected") and first.version == 1
    # Stand-in for the exporter: v1 is in canary, so it is the start point.
    registry.set_status(ctx.engine, LINE, 1, "canary", "put on canary by the test")
    # A job over b2 alone died mid-training (its version stays ``training``); the redelivery
    # lists b1 again, b2 twice, and b3 as its own batch.
    dead = registry.start_version(ctx.engine, line=LINE, parent=registry.start_point(
        ctx.engine, LINE, ctx.trainer.base_dir(ctx.settings)), batch_id=b2.batch_id,
        hyperparameters={}, token=0)
    second = run_batch(ctx, b3, earlier=[b1, b2, b2])
    dead_row = registry.get_version(ctx.engine, LINE, dead)
    assert registry.status_of(dead_row) == "failed"
    assert dead_row.status_history[-1]["kind"] == "abandoned"
    row = registry.get_version(ctx.engine, LINE, second.version)
    assert (row.parent_version, row.batch_ids) == (1, [b1.batch_id, b2.batch_id, b3.batch_id])
    assert row.hyperparameters["data"]["batches"] == 2
    assert row.hyperparameters["data"]["sft_rows"] == 32 + 33


def test_batches_that_came_with_a_skipped_batch_are_trained_on_their_own(job_context) -> None:  # noqa: ANN001
    from pathlib import Path

    ctx = job_context(**QUICK)
    b1, b2 = (write_batch(ctx.artifacts, LINE, n, sft=shop_sft_rows(30 + n, seed=40 + n))
              for n in (1, 2))
    sft = Path(b2.sft_path)
    kept = sft.read_bytes()
    sft.write_bytes(kept[: len(kept) // 2])  # altered: b2 fails on its own
    assert run_batch(ctx, b2).kind == "failed"
    sft.write_bytes(kept)
    # b2 and b1 arrive together with b2 as the job's own batch: b2 is skipped (it failed; the
    # operator retries it by hand), b1 must not be dropped with it.
    outcome = run_batch(ctx, b2, earlier=[b1])
    assert outcome.kind in ("candidate", "rejected"), outcome
    row = registry.get_version(ctx.engine, LINE, outcome.version)
    assert row.batch_ids == [b1.batch_id]
    assert registry.untrained(ctx.engine, LINE, [b1.batch_id, b2.batch_id]) == {b2.batch_id}
