"""One training job: a batch in, a gated version (or a recorded failure) out.

::

    ctx = JobContext(settings, trainer_settings, engine, redis_client, publish=producer_fn)
    outcome = run_batch(ctx, batch_event)        # batch_event: flywheel.v1.DatasetBatch

Steps, under the model line's Redis lock (``FencedLock``; a second trainer waits, a dead
one's lease expires):

1. registry: decide from the batch's earlier attempts (train, announce again, or skip); mark
   versions a dead trainer left in ``training`` as failed (abandoned); insert the new version
   in ``training`` with the lock's fencing token;
2. data: read the batch files (hash-checked), top up replay from earlier batches when the
   batch holds less than its replay share, hold out a share of the pairs;
3. train: ``prepare_model`` on the start point's merged weights (``registry.start_point``: the
   newest gated version not turned down, else the release, else the base model) attaches a
   new LoRA; masked SFT, then DPO with the adapter switched off
   as the reference and an SFT term on the chosen answers;
4. save: adapter (with ``train_config.json``) and merged weights into
   ``<data_dir>/artifacts/models/<line>/v<N>-<sha256[:16]>/{adapter,merged}``;
5. evaluate candidate and start point on the same prompts, apply the gate;
6. registry ``candidate`` or ``rejected`` with every number, then ``models.candidates``.

Any error inside 2-6 marks the version ``failed`` with the reason; the lock is released in
every case and the release is never touched, so the batch can be retried
(``flywheel train --batch ID``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from flywheel.errors import FlywheelError
from flywheel.events.codec import to_dict
from flywheel.events.envelope import stamp
from flywheel.logging import get_logger
from flywheel.rediskit import FencedLock, LockLost
from flywheel.services.trainer import registry
from flywheel.services.trainer.data import (
    BatchData,
    balance_intents,
    load_batch,
    read_jsonl,
    row_key,
    sample_rows,
    sample_slice,
)
from flywheel.services.trainer.evaluation import (
    AnswerCache,
    EvalResult,
    EvalSets,
    Evaluator,
    choose_heldout,
    model_key,
)
from flywheel.services.trainer.logic.gate import GateDecision, should_propose
from flywheel.services.trainer.logic.planning import (
    decide_batch_action,
    plan_steps,
    replay_top_up,
    split_heldout,
)
from flywheel.services.trainer.progress import ProgressReporter
from flywheel.services.trainer.settings import TrainerSettings
from flywheel.settings import Settings
from flywheel.v1.datasets_pb2 import DatasetBatch
from flywheel.v1.models_pb2 import Gate, ModelCandidate

log = get_logger(__name__)
PRODUCER = "trainer"
_NAMESPACE = uuid.UUID("6f1d2c1e-5b0a-4c3e-9a57-1b8e0f4d2a61")


class JobInterrupted(FlywheelError):
    """The process is stopping (SIGTERM/SIGINT); the job gives up between steps."""


class LockTimeout(FlywheelError):
    """The model line's lock stayed taken longer than the configured wait."""


@dataclass
class JobContext:
    """What a job needs: settings, the database, Redis and where to announce the outcome."""

    settings: Settings
    trainer: TrainerSettings
    engine: Engine
    redis: Any
    publish: Callable[[ModelCandidate], None] | None = None
    console: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    judge: Any = None

    @property
    def artifacts(self) -> Path:
        return (self.settings.data_dir / "artifacts").resolve()


@dataclass
class JobOutcome:
    """How a job ended: ``candidate``, ``rejected``, ``failed``, ``republished`` or ``skipped``."""

    kind: str
    line: str
    batch_id: str
    version: int | None = None
    reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    event: ModelCandidate | None = None


# -- the lock -------------------------------------------------------------------------------------


class _LockKeeper:
    """Extends the lock from a background thread every third of its lease.

    A process that dies stops extending and its lease expires; a process that loses the lock
    (it stalled longer than the lease) notices at the next ``check``.
    """

    def __init__(self, lock: FencedLock, ttl_s: float) -> None:
        self.lock, self.interval = lock, max(0.2, ttl_s / 3)
        self.lost: str = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainer-lock", daemon=True)

    def __enter__(self) -> "_LockKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.lock.extend()
            except LockLost as exc:
                self.lost = str(exc)
                return
            except Exception as exc:  # Redis unreachable: keep trying until the lease ends
                log.warning("lock_extend_failed", error=str(exc))


def _acquire(ctx: JobContext, lock: FencedLock, line: str) -> int:
    token = lock.try_acquire()
    if token is not None:
        return token
    log.info("lock_waiting", line=line, lock=lock.key)
    deadline = None if ctx.trainer.lock_wait_s is None else time.monotonic() + ctx.trainer.lock_wait_s
    while True:
        if ctx.stop.is_set():
            raise JobInterrupted("stopping while waiting for the lock")
        token = lock.try_acquire()
        if token is not None:
            log.info("lock_acquired_after_wait", line=line, token=token)
            return token
        if deadline is not None and time.monotonic() > deadline:
            raise LockTimeout(f"lock {lock.key} still held after {ctx.trainer.lock_wait_s} s")
        time.sleep(0.2)


# -- events ---------------------------------------------------------------------------------------


def candidate_event_id(line: str, version: int) -> str:
    """The same event id every time a version's outcome is announced."""
    return str(uuid.uuid5(_NAMESPACE, f"models.candidates:{line}:{version}"))


def candidate_event(row: Any) -> ModelCandidate:
    """The models.candidates event for a finished registry row."""
    metrics = row.metrics or {}
    gate = metrics.get("gate") or {}
    status = registry.status_of(row)
    event = ModelCandidate(
        model_line=row.line, version=row.version, parent_version=row.parent_version or 0,
        base_model=row.base_model, adapter_path=row.adapter_path or "",
        merged_path=row.merged_path or "", batch_ids=list(row.batch_ids or []),
        metrics={k: float(v) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)},
        gate=Gate(passed=bool(gate.get("passed")), reasons=list(gate.get("reasons") or [])),
        status="rejected" if status == "rejected" else "gated")
    return stamp(event, PRODUCER, event_id=candidate_event_id(row.line, row.version))


# -- the job --------------------------------------------------------------------------------------


def run_batch(ctx: JobContext, batch: DatasetBatch, *, earlier: Sequence[DatasetBatch] = (),
              retry_failed: bool = False, force: bool = False) -> JobOutcome:
    """Train, evaluate and gate one batch under the line's lock; see the module docstring.

    ``earlier``: batches announced before ``batch`` that were still waiting when the job
    started (a trainer catching up, ``MAX_BATCHES_PER_JOB``); they are trained in the same job
    unless the start point already holds them, and come before ``batch`` in the lineage.
    ``batch`` is the job's own batch (retries and re-announcements are decided by it).
    ``retry_failed`` trains a batch whose last attempt failed; ``force`` trains it even when
    a finished version exists (see ``decide_batch_action``).

    Raises:
        LockTimeout: the lock stayed taken longer than ``lock_wait_s``.
        JobInterrupted: the process is stopping (the version is marked failed first).
    """
    line = batch.model_line or ctx.trainer.model_line
    lock = FencedLock(ctx.redis, f"trainer:{line}", ttl_s=ctx.trainer.lock_ttl_s)
    token = _acquire(ctx, lock, line)
    try:
        with _LockKeeper(lock, ctx.trainer.lock_ttl_s) as keeper:
            return _locked(ctx, batch, _unique(earlier), line, token, keeper, retry_failed,
                           force)
    finally:
        lock.release()
        log.info("lock_released", line=line, token=token)


def _locked(ctx: JobContext, batch: DatasetBatch, earlier: list[DatasetBatch], line: str,
            token: int, keeper: _LockKeeper, retry_failed: bool, force: bool) -> JobOutcome:
    base_dir = ctx.trainer.base_dir(ctx.settings)
    registry.ensure_line(ctx.engine, line, str(base_dir))
    action = decide_batch_action(registry.attempts_for_batch(ctx.engine, line, batch.batch_id),
                                 retry_failed=retry_failed, force=force)
    # Under the lock, any version still in ``training`` belongs to a job that died: the batch's
    # own attempts (``action.abandon``) and those of a dead job whose batches now arrive with a
    # newer one as their own (catch-up).
    abandon = sorted({*action.abandon, *registry.training_versions(ctx.engine, line)})
    if abandon:
        registry.abandon_versions(ctx.engine, line, abandon, token)
        log.warning("versions_abandoned", line=line, versions=abandon)
    if action.kind in ("republish", "skip"):
        if action.kind == "republish":
            outcome = _republish(ctx, line, batch.batch_id, action.version, action.reason)
        else:
            log.info("batch_skipped", line=line, batch_id=batch.batch_id, reason=action.reason)
            outcome = JobOutcome("skipped", line, batch.batch_id, action.version, action.reason)
        # The batches that came with it are not lost with it: those no finished version holds
        # are trained in a job of their own.
        rest = registry.untrained(ctx.engine, line, [b.batch_id for b in earlier])
        rest_batches = [b for b in earlier if b.batch_id in rest]
        if not rest_batches:
            return outcome
        return _locked(ctx, rest_batches[-1], rest_batches[:-1], line, token, keeper,
                       False, False)
    release = registry.start_point(ctx.engine, line, base_dir, ctx.trainer.start_from)
    held = set(release.batch_ids) | {batch.batch_id}
    earlier = [b for b in earlier if b.batch_id not in held]
    hyper: dict[str, Any] = {"batch": to_dict(batch), "job": {
        "host": socket.gethostname(), "pid": os.getpid()}}
    if earlier:
        hyper["earlier_batches"] = [to_dict(b) for b in earlier]
    version = registry.start_version(
        ctx.engine, line=line, parent=release, batch_id=batch.batch_id, token=token,
        hyperparameters=hyper, earlier=[b.batch_id for b in earlier])
    log.info("training_started", line=line, version=version, batch_id=batch.batch_id,
             earlier_batches=[b.batch_id for b in earlier], parent_version=release.version,
             start_from=str(release.model_dir), token=token)
    job = _Job(ctx, batch, line, version, token, release, keeper, earlier)
    try:
        outcome = job.run()
    except BaseException as exc:
        job.discard_staging()
        return _failed(ctx, line, version, token, batch.batch_id, exc)
    # Outside the try: the outcome is recorded, so a broker failure here must not mark the
    # version failed; it propagates, the offset stays uncommitted and a redelivery announces
    # the recorded outcome again.
    if ctx.publish is not None and outcome.event is not None:
        ctx.publish(outcome.event)
    return outcome


def _unique(batches: Sequence[DatasetBatch]) -> list[DatasetBatch]:
    """The batches in order, each id once (a redelivered announcement repeats one)."""
    return list({b.batch_id: b for b in batches}.values())


def _republish(ctx: JobContext, line: str, batch_id: str, version: int | None,
               reason: str) -> JobOutcome:
    row = registry.get_version(ctx.engine, line, version or 0)
    event = candidate_event(row)
    if ctx.publish is not None:
        ctx.publish(event)
    log.info("candidate_republished", line=line, version=version, batch_id=batch_id, reason=reason)
    return JobOutcome("republished", line, batch_id, version, reason, dict(row.metrics or {}), event)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line reason) of a job failure."""
    import torch

    if isinstance(exc, (JobInterrupted, KeyboardInterrupt, SystemExit)):
        return "interrupted", f"interrupted: {exc or type(exc).__name__}"
    if isinstance(exc, (LockLost, registry.FencedOut)):
        return "lock_lost", f"lock lost: {exc}"
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return "out_of_memory", f"out of memory: {exc or type(exc).__name__}"
    text = " ".join(str(exc).split())[:1000]
    return "error", f"{type(exc).__name__}: {text}"


def _failed(ctx: JobContext, line: str, version: int, token: int, batch_id: str,
            exc: BaseException) -> JobOutcome:
    kind, reason = describe_failure(exc)
    marked = False
    try:
        marked = registry.fail_version(ctx.engine, line, version, reason, kind=kind, token=token)
    except Exception as db_exc:  # the database is down: the row stays 'training' until a retry
        log.error("failure_not_recorded", line=line, version=version, error=str(db_exc))
    log.error("training_failed", line=line, version=version, batch_id=batch_id, kind=kind,
              reason=reason, recorded=marked,
              traceback="".join(traceback.format_exception(exc))[-4000:] if kind == "error" else None)
    if kind == "interrupted" or not isinstance(exc, Exception):
        raise exc
    return JobOutcome("failed", line, batch_id, version, reason)


class _Job:
    """The training part of a job, from data to the recorded verdict."""

    def __init__(self, ctx: JobContext, batch: DatasetBatch, line: str, version: int, token: int,
                 release: registry.ReleaseRef, keeper: _LockKeeper,
                 earlier: Sequence[DatasetBatch] = ()) -> None:
        self.ctx, self.batch, self.line, self.version, self.token = ctx, batch, line, version, token
        self.release, self.keeper = release, keeper
        self.batches = [*earlier, batch]  # every batch this job trains, oldest first
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.staging: Path | None = None

    def check(self) -> None:
        """Stop between steps when the process is stopping or the lock was lost."""
        if self.ctx.stop.is_set():
            raise JobInterrupted("stop requested (SIGTERM/SIGINT)")
        if self.keeper.lost:
            raise LockLost(self.keeper.lost)

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run one phase, recording its wall time and this process's CPU time."""
        started, cpu = time.perf_counter(), time.process_time()
        try:
            result = fn()
        finally:
            self.timings[name] = time.perf_counter() - started
            self.cpu[name] = time.process_time() - cpu
        self.check()
        return result

    def run(self) -> JobOutcome:
        started, cpu = time.perf_counter(), time.process_time()
        data, heldout_pairs, notes = self._timed("load", self._data)
        cfg = self._config(data, notes)
        registry.update_training(self.ctx.engine, self.line, self.version, self.token,
                                 hyperparameters={"train": cfg.to_dict(), "data": notes})
        model, tokenizer = self._timed("prepare", lambda: self._prepare(cfg))
        train_metrics = self._train(model, tokenizer, data, cfg)
        artifact = self._timed("save", lambda: self._save(model, tokenizer, cfg))
        result = self._timed("eval", lambda: self._evaluate(model, tokenizer, data, heldout_pairs))
        decision = should_propose(result.candidate, result.release, self.ctx.trainer.margins())
        self.timings["job"] = time.perf_counter() - started
        self.cpu["job"] = time.process_time() - cpu
        return self._record(artifact, result, decision, train_metrics)

    # -- data

    def _data(self) -> tuple[BatchData, list[dict[str, Any]], dict[str, Any]]:
        data = BatchData()
        for b in self.batches:
            part = load_batch(b.sft_path or None, b.dpo_path or None, b.eval_set_path or None)
            for name in ("sft", "sft_keys", "dpo", "dpo_keys", "eval_items"):
                getattr(data, name).extend(getattr(part, name))
        replay_added = self._top_up_replay(data)
        trainer = self.ctx.trainer
        balanced = self._balance_intents(data)
        train_idx, held_idx = split_heldout(data.dpo_keys, trainer.heldout_pair_share,
                                            trainer.max_heldout_pairs)
        heldout = [data.dpo[i] for i in held_idx]
        data.dpo = [data.dpo[i] for i in train_idx]
        notes = {"sft_rows": len(data.sft), "dpo_pairs": len(data.dpo),
                 "heldout_pairs": len(heldout), "eval_items": len(data.eval_items),
                 "batches": len(self.batches), "replay_included": self._replay_included(),
                 "replay_added": replay_added, "replay_share": self._replay_target(),
                 "intent_repeats": balanced}
        return data, heldout, notes

    def _balance_intents(self, data: BatchData) -> int:
        """Repeat rare intents' SFT rows (``balance_intents``); returns the rows added."""
        factor = self.ctx.trainer.balance_intents
        if factor <= 1 or not data.sft:
            return 0
        paths = [b.manifest_path for b in self.batches if b.manifest_path]
        paths += [registry.manifest_path(self.ctx.artifacts, self.line, b)
                  for b in self.release.batch_ids]
        before = len(data.sft)
        counts = balance_intents(data, paths, factor, seed=self.ctx.trainer.seed + self.version)
        log.info("intents_balanced", line=self.line, version=self.version, rows=before,
                 added=len(data.sft) - before, intents=counts)
        return len(data.sft) - before

    def _replay_target(self) -> float:
        return max([float(b.replay_share) for b in self.batches] + [self.ctx.trainer.replay_share])

    def _replay_included(self) -> int:
        return sum(int(b.counts.get("replay_sft", 0)) for b in self.batches)

    def _top_up_replay(self, data: BatchData) -> int:
        included = self._replay_included()
        want = replay_top_up(len(data.sft), included, self._replay_target())
        if want == 0 or not self.release.batch_ids:
            return 0
        from flywheel.services.trainer.data import sft_example

        pool: list[dict[str, Any]] = []
        for files in registry.batch_files(self.ctx.engine, list(self.release.batch_ids)):
            if files.sft_path and Path(files.sft_path).is_file():
                pool.extend(read_jsonl(files.sft_path, verify=False))
        sampled = sample_rows(pool, want, f"replay:{self.batch.batch_id}")
        added = [sft_example(r) for r in sampled]
        data.sft.extend(added)
        data.sft_keys.extend(row_key(r) for r in sampled)
        log.info("replay_added", line=self.line, version=self.version, rows=len(added),
                 target_share=self._replay_target())
        return len(added)

    def _config(self, data: BatchData, notes: dict[str, Any]) -> Any:
        from flywheel.ml.train import TrainConfig

        t = self.ctx.trainer
        values = dict(
            seed=t.seed, lora_r=t.lora_r, lora_alpha=t.lora_alpha,
            sft_steps=plan_steps(len(data.sft), t.sft_batch_size, t.sft_epochs, t.max_sft_steps),
            sft_batch_size=t.sft_batch_size, sft_learning_rate=t.sft_learning_rate,
            dpo_steps=plan_steps(len(data.dpo), t.dpo_batch_size, t.dpo_epochs, t.max_dpo_steps),
            dpo_batch_size=t.dpo_batch_size, dpo_learning_rate=t.dpo_learning_rate,
            sft_weight=t.sft_weight, max_length=t.max_length,
            replay_share=min(notes["replay_share"], 0.99), num_threads=t.num_threads)
        values.update(t.train_overrides)
        return TrainConfig.from_dict(values)

    # -- model

    def _prepare(self, cfg: Any) -> tuple[Any, Any]:
        from flywheel.ml.loading import load_tokenizer, set_torch_threads
        from flywheel.ml.train import prepare_model

        set_torch_threads(cfg.num_threads or None)
        model = prepare_model(self.release.model_dir, None, cfg)
        return model, load_tokenizer(self.release.model_dir)

    def _train(self, model: Any, tokenizer: Any, data: BatchData, cfg: Any) -> dict[str, float]:
        from flywheel.ml.train import train_dpo, train_sft

        progress = ProgressReporter(console=self.ctx.console, check=self.check, line=self.line,
                                    version=self.version)
        metrics: dict[str, float] = {}
        try:
            if cfg.sft_steps and data.sft:
                result = self._timed("sft", lambda: train_sft(model, tokenizer, data.sft, cfg,
                                                              progress=progress))
                metrics.update(_phase_metrics(result))
            if cfg.dpo_steps and data.dpo:
                result = self._timed("dpo", lambda: train_dpo(model, tokenizer, data.dpo, cfg,
                                                              progress=progress))
                metrics.update(_phase_metrics(result))
        finally:
            progress.close()
        return metrics

    def _save(self, model: Any, tokenizer: Any, cfg: Any) -> tuple[Path, str]:
        from flywheel.ml.artifacts import content_digest, file_hashes
        from flywheel.ml.train import merge_and_save, save_adapter

        parent = self.ctx.artifacts / "models" / self.line
        parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(_mkdtemp(parent))
        save_adapter(model, self.staging / "adapter", cfg, extra={
            "model_line": self.line, "version": self.version, "batch_id": self.batch.batch_id})
        merge_and_save(model, self.staging / "merged", tokenizer)
        digest = content_digest(self.staging)
        _write_manifest(self.staging, {"model_line": self.line, "version": self.version,
                                       "content_sha256": digest, "files": file_hashes(self.staging),
                                       "batch_id": self.batch.batch_id})
        target = parent / f"v{self.version}-{digest[:16]}"
        if target.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        else:
            self.staging.chmod(0o755)
            os.rename(self.staging, target)
        self.staging = None
        return target, digest

    def discard_staging(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    # -- evaluation and verdict

    def _evaluate(self, model: Any, tokenizer: Any, data: BatchData,
                  heldout_pairs: list[dict[str, Any]]) -> EvalResult:
        t = self.ctx.trainer
        heldout, source = choose_heldout(data.eval_items, t.eval_source, t.eval_set_size,
                                         t.min_batch_eval)
        sets = EvalSets(heldout, source, self._slices(), heldout_pairs)
        cache_dir = (self.ctx.artifacts / "models" / self.line / "eval-cache"
                     if t.cache_release_eval else None)
        evaluator = Evaluator(tokenizer, t.eval_batch_size, t.max_new_tokens, self.ctx.judge,
                              t.judge_max_items, AnswerCache(cache_dir), t.seed)
        result = evaluator.run(model, sets, model_key(self.release.model_dir))
        result.metrics["eval.source_batch"] = 1.0 if source == "batch" else 0.0
        return result

    def _slices(self) -> dict[str, list[Any]]:
        t = self.ctx.trainer
        if not t.slice_size or not t.max_slices or not self.release.batch_ids:
            return {}
        earlier = registry.batch_files(self.ctx.engine, list(self.release.batch_ids))
        slices = {}
        for files in earlier[-t.max_slices:]:
            if files.sft_path and Path(files.sft_path).is_file():
                name = f"forgetting.batch_{files.version or files.batch_id[:8]}"
                slices[name] = sample_slice(files.sft_path, t.slice_size, files.batch_id)
            else:
                log.warning("slice_unavailable", batch_id=files.batch_id, path=files.sft_path)
        return slices

    def _record(self, artifact: tuple[Path, str], result: EvalResult, decision: GateDecision,
                train_metrics: dict[str, float]) -> JobOutcome:
        self.check()
        path, digest = artifact
        metrics: dict[str, Any] = {**result.metrics, **train_metrics,
                                   **{f"time.{k}_s": v for k, v in self.timings.items()},
                                   **{f"cpu.{k}_s": v for k, v in self.cpu.items()},
                                   "gate.passed": 1.0 if decision.passed else 0.0}
        metrics["gate"] = {"passed": decision.passed, "reasons": decision.reasons}
        summary = "; ".join(c.reason for c in decision.failed) or "every gate check passed"
        row = registry.finish_version(
            self.ctx.engine, self.line, self.version, self.token, passed=decision.passed,
            metrics=metrics, adapter_path=str(path / "adapter"), merged_path=str(path / "merged"),
            artifact_hash=digest, reason=summary)
        event = candidate_event(row)
        kind = "candidate" if decision.passed else "rejected"
        log.info("training_finished", line=self.line, version=self.version, outcome=kind,
                 exact_match=round(result.metrics.get("eval.exact_match", float("nan")), 4),
                 release_exact_match=round(result.metrics.get("release.eval.exact_match",
                                                              float("nan")), 4),
                 seconds=round(self.timings.get("job", 0.0), 1), reasons=decision.reasons)
        return JobOutcome(kind, self.line, self.batch.batch_id, self.version, summary, metrics, event)


def _phase_metrics(result: Any) -> dict[str, float]:
    p = f"train.{result.phase}"
    out = {f"{p}.steps": float(result.steps), f"{p}.examples": float(result.examples),
           f"{p}.seconds": result.seconds, f"{p}.final_loss": result.final_loss,
           f"{p}.examples_per_s": result.examples_per_s,
           f"{p}.s_per_step": result.seconds / result.steps if result.steps else 0.0,
           f"{p}.skipped": float(result.skipped)}
    out.update({f"{p}.{k}": v for k, v in result.metrics.items()})
    return out


def _mkdtemp(parent: Path) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=".staging-", dir=parent)


def _write_manifest(directory: Path, data: dict[str, Any]) -> None:
    import json

    (directory / "manifest.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
