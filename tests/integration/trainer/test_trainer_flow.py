"""The trainer service on a real broker, Redis and SQLite with a small pre-trained base.

Announce a batch of corrected examples -> a candidate on models.candidates whose held-out
exact match beats the base by a clear margin, with registry rows; released, then a corrupted
batch (shuffled answers) on top of it -> rejected by the gate.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.db.engine import make_engine, migrate
from flywheel.kafka.admin import group_offsets
from flywheel.services.trainer import registry
from flywheel.services.trainer.demo import shop_dpo_rows, shop_sft_rows, shuffled_answers, write_batch
from flywheel.services.trainer.main import consumer_group

from .conftest import LINE, announce

pytestmark = [pytest.mark.slow, pytest.mark.ml]

# Clear margin: the base answers nothing right on the 64 held-out questions; the corrected
# batch lifts it to 13 of them (0.203, conftest), so 0.15 (10) leaves room for float noise.
MIN_GAIN = 0.15


def test_corrected_batch_is_proposed_and_corrupted_batch_rejected(
        make_settings, trainer_process, candidates) -> None:  # noqa: ANN001
    settings = make_settings()
    migrate(settings.database())
    artifacts = settings.data_dir / "artifacts"
    good_rows = shop_sft_rows(1200, seed=1)
    good = write_batch(artifacts, LINE, 1, sft=good_rows, dpo=shop_dpo_rows(64, seed=2))
    reader = candidates(settings)
    proc = trainer_process(settings)
    announce(settings, good)

    first = reader.wait_for(1, timeout_s=600, proc=proc)[0]
    metrics = dict(first.metrics)
    assert (first.model_line, first.version, first.parent_version) == (LINE, 1, 0)
    print(f"first candidate: held-out {metrics['eval.exact_match']:.3f} against "
          f"{metrics['release.eval.exact_match']:.3f}", flush=True)
    assert first.gate.passed and first.status == "gated", list(first.gate.reasons)
    assert metrics["eval.exact_match"] >= metrics["release.eval.exact_match"] + MIN_GAIN, metrics
    assert "win_rate.exact_match" in metrics and metrics["win_rate.exact_match"] > 0.5
    assert "preference.accuracy" in metrics
    assert metrics["train.sft.steps"] > 0 and metrics["train.dpo.steps"] > 0
    assert list(first.batch_ids) == [good.batch_id]
    merged, adapter = Path(first.merged_path), Path(first.adapter_path)
    assert (merged / "config.json").is_file() and (adapter / "train_config.json").is_file()
    assert merged.parent.name.startswith("v1-") and merged.parent.parent.name == LINE

    engine = make_engine(settings.database())
    row = registry.get_version(engine, LINE, 1)
    assert registry.status_of(row) == "candidate"
    assert [e["status"] for e in row.status_history] == ["training", "candidate"]
    assert row.hyperparameters["train"]["sft_steps"] == metrics["train.sft.steps"]
    assert row.metrics["gate"]["passed"] is True

    # Stand-in for the release decision (promote), so the next batch continues from v1.
    registry.set_status(engine, LINE, 1, "released", "promoted by the test")
    bad_rows = shuffled_answers(shop_sft_rows(300, seed=3), seed=4)
    bad = write_batch(artifacts, LINE, 2, sft=bad_rows + good_rows[:60], replay_sft=60,
                      replay_share=0.2)
    announce(settings, bad)
    second = reader.wait_for(2, timeout_s=600, proc=proc)[1]
    assert (second.version, second.parent_version) == (2, 1)
    assert not second.gate.passed and second.status == "rejected"
    failed_checks = [r for r in second.gate.reasons if "worse by" in r]
    assert any(r.startswith("eval.exact_match") for r in failed_checks), list(second.gate.reasons)
    assert any(r.startswith("forgetting.batch_1") for r in second.gate.reasons)
    assert list(second.batch_ids) == [good.batch_id, bad.batch_id]
    assert registry.status_of(registry.get_version(engine, LINE, 2)) == "rejected"
    # The release is untouched by a rejected candidate.
    assert registry.current_release(engine, LINE, Path("/unused")).version == 1

    # Offsets are committed once the outcome is recorded.
    offsets = group_offsets(settings.kafka(), consumer_group(settings))
    assert sum(offsets.values()) == 2, offsets
    engine.dispose()
