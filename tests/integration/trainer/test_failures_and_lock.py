"""Failures are recorded and retried; the per-line lock serialises jobs and fences dead ones.

Real Redis, broker and SQLite; the jobs run in this process through the trainer's own
``run_batch`` and ``flywheel train``.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.rediskit import FencedLock, LockLost
from flywheel.services.trainer import registry
from flywheel.services.trainer.demo import shop_sft_rows, write_batch
from flywheel.services.trainer.job import run_batch

from .conftest import LINE

pytestmark = [pytest.mark.slow, pytest.mark.ml]


def _lock_key(line: str = LINE) -> str:
    return f"fw:lock:trainer:{line}"


def test_unreadable_batch_fails_releases_the_lock_and_the_cli_retries_it(
        job_context, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    ctx = job_context(max_sft_steps=4, max_dpo_steps=0, slice_size=0, eval_set_size=16)
    batch = write_batch(ctx.artifacts, LINE, 1, sft=shop_sft_rows(64, seed=7))
    sft = Path(batch.sft_path)
    kept = sft.read_bytes()
    sft.write_bytes(kept[: len(kept) // 2])  # truncated: no longer matches its content hash

    outcome = run_batch(ctx, batch)
    assert outcome.kind == "failed" and "content hash" in outcome.reason
    row = registry.get_version(ctx.engine, LINE, outcome.version)
    assert registry.status_of(row) == "failed" and "content hash" in row.failure_reason
    assert ctx.redis.get(_lock_key()) is None
    assert registry.current_release(ctx.engine, LINE, Path("/b")).version is None
    # A redelivery does not retrain a batch that failed on its own...
    assert run_batch(ctx, batch).kind == "skipped"

    # ...the operator fixes the file and retries through the CLI.
    sft.write_bytes(kept)
    for name, value in {"FLYWHEEL_DATABASE_URL": ctx.settings.database(),
                        "FLYWHEEL_DATA_DIR": str(ctx.settings.data_dir),
                        "FLYWHEEL_REDIS_URL": ctx.settings.redis(),
                        "FLYWHEEL_KAFKA_BOOTSTRAP": ctx.settings.kafka(),
                        "FLYWHEEL_TOPIC_PREFIX": ctx.settings.topic_prefix}.items():
        monkeypatch.setenv(name, value)
    for name, value in ctx.trainer.model_dump(exclude_none=True).items():
        if name not in ("train_overrides", "slice_margins", "judge_api_key"):
            monkeypatch.setenv(f"FLYWHEEL_TRAINER_{name.upper()}", str(value))
    from flywheel.cli.main import app

    result = CliRunner().invoke(app, ["train", "--batch", batch.batch_id[:12], "--no-publish",
                                      "--json"])
    assert result.exit_code == 0, result.output
    retried = registry.get_version(ctx.engine, LINE, outcome.version + 1)
    assert registry.status_of(retried) in ("candidate", "rejected")
    assert retried.batch_ids == [batch.batch_id]
    assert ctx.redis.get(_lock_key()) is None


def test_nan_loss_and_invalid_config_are_failed_with_the_reason(job_context, tiny_base,
                                                                 tmp_path: Path) -> None:  # noqa: ANN001
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "nan-base"
    shutil.copytree(tiny_base, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in weights if k.endswith("input_layernorm.weight"))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})

    ctx = job_context(base_model_dir=broken, max_sft_steps=3, max_dpo_steps=0)
    batch = write_batch(ctx.artifacts, LINE, 1, sft=shop_sft_rows(32, seed=8))
    outcome = run_batch(ctx, batch)
    assert outcome.kind == "failed" and "loss is nan" in outcome.reason
    assert ctx.redis.get(_lock_key()) is None

    ctx = job_context(train_overrides={"sft_learning_rate": float("inf")})
    batch = write_batch(ctx.artifacts, LINE, 1, sft=shop_sft_rows(32, seed=9))
    outcome = run_batch(ctx, batch)
    assert outcome.kind == "failed" and "sft_learning_rate = inf" in outcome.reason
    row = registry.get_version(ctx.engine, LINE, outcome.version)
    assert row.status_history[-1]["kind"] == "error"
    assert ctx.redis.get(_lock_key()) is None


def test_a_second_trainer_waits_for_the_lock(job_context) -> None:  # noqa: ANN001
    ctx = job_context()
    batch = write_batch(ctx.artifacts, LINE, 1, sft=shop_sft_rows(16, seed=10))
    Path(batch.sft_path).unlink()  # the job fails fast once it runs: only the wait matters
    holder = FencedLock(ctx.redis, f"trainer:{LINE}", ttl_s=30)
    held = holder.acquire(timeout_s=5)
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(run_batch(ctx, batch)))
    worker.start()
    time.sleep(1.5)
    assert worker.is_alive() and registry.list_versions(ctx.engine, LINE) == []
    holder.release()
    worker.join(timeout=60)
    assert outcomes and outcomes[0].kind == "failed" and "cannot read" in outcomes[0].reason
    token = registry.get_version(ctx.engine, LINE, 1).hyperparameters["job"]["fencing_token"]
    assert token > held


def test_a_dead_trainers_lock_expires_and_its_version_is_abandoned(job_context) -> None:  # noqa: ANN001
    ctx = job_context(lock_wait_s=30)
    batch = write_batch(ctx.artifacts, LINE, 1, sft=shop_sft_rows(16, seed=11))
    # A trainer took the lock, registered its version and died (no release, no extend).
    dead = FencedLock(ctx.redis, f"trainer:{LINE}", ttl_s=2)
    dead_token = dead.acquire(timeout_s=5)
    registry.ensure_line(ctx.engine, LINE, "base")
    parent = registry.current_release(ctx.engine, LINE, ctx.trainer.base_dir(ctx.settings))
    stale = registry.start_version(ctx.engine, line=LINE, parent=parent, batch_id=batch.batch_id,
                                   hyperparameters={"batch": {}}, token=dead_token)
    Path(batch.sft_path).unlink()
    started = time.monotonic()
    outcome = run_batch(ctx, batch)
    assert time.monotonic() - started >= 1.0  # waited for the lease to run out
    assert outcome.version == stale + 1 and outcome.kind == "failed"
    row = registry.get_version(ctx.engine, LINE, stale)
    assert registry.status_of(row) == "failed" and row.failure_reason.startswith("abandoned")
    # The dead holder wakes up: its lock and its registry writes are fenced out.
    with pytest.raises(LockLost):
        dead.extend()
    assert not dead.is_current()
    with pytest.raises(registry.FencedOut):
        registry.finish_version(ctx.engine, LINE, stale, dead_token, passed=True, metrics={},
                                adapter_path="", merged_path="", artifact_hash="", reason="late")
