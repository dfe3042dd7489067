"""Entry point of the trainer service: one training job per announced batch.

Run::

    python -m flywheel.services.trainer.main

Settings come from ``FLYWHEEL_*`` (broker, Redis, database, data dir, topic prefix) and
``FLYWHEEL_TRAINER_*`` (model line, base model, lock, budget, eval set, gate margins, judge).

A kafka-python consumer in group ``<prefix>-trainer`` reads ``datasets.batches`` (one record
per job, or up to ``FLYWHEEL_TRAINER_MAX_BATCHES_PER_JOB`` waiting records trained together)
and commits the offsets only after the job's outcome is in the registry (and announced
on ``models.candidates``): a trainer that crashes mid-job gets the batch again, and the
registry turns the redelivery into a retry of that batch (or a re-announcement when it had
finished). Batches of other model lines are skipped. SIGTERM/SIGINT stop the job between two
optimizer steps (the version is marked failed as interrupted and retried on the next start).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from flywheel.errors import EventDecodeError
from flywheel.logging import configure_logging, get_logger
from flywheel.settings import Settings, load_settings

log = get_logger(__name__)


def consumer_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}-trainer"


def make_consumer(settings: Settings, trainer: Any) -> Any:
    """A manual-commit consumer of datasets.batches, ``max_batches_per_job`` records per poll."""
    from kafka import KafkaConsumer

    return KafkaConsumer(
        settings.topic("datasets.batches"), bootstrap_servers=settings.kafka(),
        group_id=consumer_group(settings), client_id=f"{settings.service_name}-consumer",
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=trainer.max_batches_per_job,
        max_poll_interval_ms=int(trainer.max_job_s * 1000), session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000)


def make_publisher(settings: Settings) -> tuple[Callable[[Any], None], Callable[[], None]]:
    """(publish, close): send a ModelCandidate to models.candidates and wait for the ack."""
    from flywheel.events.codec import encode
    from flywheel.kafka.producer import make_producer, produce_sync

    producer = make_producer(settings)
    topic = settings.topic("models.candidates")

    def publish(event: Any) -> None:
        produce_sync(producer, topic, event.model_line.encode(), encode(event))
        log.info("candidate_published", topic=topic, line=event.model_line,
                 version=event.version, passed=event.gate.passed,
                 event_id=event.envelope.event_id)

    return publish, producer.close


def make_judge(trainer: Any) -> Any:
    """The configured HTTP judge, or None (win rate by exact match)."""
    if not trainer.judge_url:
        return None
    from flywheel.services.trainer.judge import HttpJudge

    key = trainer.judge_api_key.get_secret_value() if trainer.judge_api_key else None
    return HttpJudge(trainer.judge_url, trainer.judge_model, key, trainer.judge_timeout_s)


def _dead_letter(settings: Settings, record: Any, exc: Exception) -> None:
    from flywheel.events.codec import encode
    from flywheel.kafka.deadletter import build_dead_letter
    from flywheel.kafka.producer import make_producer, produce_sync

    dl = build_dead_letter(service="trainer", source_topic=record.topic,
                           partition=record.partition, offset=record.offset, key=record.key,
                           value=record.value, error=exc)
    producer = make_producer(settings)
    try:
        produce_sync(producer, settings.topic("deadletter"), dl.envelope.event_id.encode(),
                     encode(dl))
    finally:
        producer.close()


def _batch_of(ctx: Any, record: Any) -> tuple[Any, str]:
    """(the record's DatasetBatch, "batch") when it is this trainer's line; else (None,
    "dead_letter") for an undecodable record (sent to the dead-letter topic) or (None,
    "other_line")."""
    from flywheel.events.codec import decode
    from flywheel.v1.datasets_pb2 import DatasetBatch

    bound = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    try:
        batch = decode(record.value, DatasetBatch)
    except EventDecodeError as exc:
        log.error("batch_undecodable", error=str(exc), **bound)
        _dead_letter(ctx.settings, record, exc)
        return None, "dead_letter"
    if batch.model_line != ctx.trainer.model_line:
        log.info("batch_other_line", line=batch.model_line, batch_id=batch.batch_id, **bound)
        return None, "other_line"
    log.info("batch_received", batch_id=batch.batch_id, version=batch.version,
             event_id=batch.envelope.event_id, counts=dict(batch.counts), **bound)
    return batch, "batch"


def handle_records(ctx: Any, records: list[Any]) -> str:
    """Decode datasets.batches records and train this line's batches in one job; returns the
    outcome kind (``dead_letter`` / ``other_line`` when no batch of this line is among them).

    The newest batch is the job's own, the others are trained with it (``run_batch``'s
    ``earlier``). Returns only once the outcome is recorded, so the caller may commit.
    """
    from flywheel.services.trainer.job import run_batch

    kinds = []
    batches = []
    for record in records:
        batch, kind = _batch_of(ctx, record)
        if batch is None:
            kinds.append(kind)
        else:
            batches.append(batch)
    if not batches:
        return kinds[-1] if kinds else "empty"
    *earlier, own = batches
    outcome = run_batch(ctx, own, earlier=earlier)
    log.info("batch_done", batch_id=own.batch_id, earlier=[b.batch_id for b in earlier],
             outcome=outcome.kind, model_version=outcome.version, reason=outcome.reason)
    return outcome.kind


def consume(ctx: Any, consumer: Any, stop: threading.Event) -> None:
    """Poll up to ``max_batches_per_job`` records, run one job, commit; until ``stop`` is set."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    while not stop.is_set():
        polled = consumer.poll(timeout_ms=int(ctx.trainer.poll_timeout_s * 1000),
                               max_records=ctx.trainer.max_batches_per_job)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            continue
        handle_records(ctx, records)
        consumer.commit({TopicPartition(tp.topic, tp.partition):
                         OffsetAndMetadata(rs[-1].offset + 1, "", -1)
                         for tp, rs in polled.items() if rs})


def build_context(settings: Settings, trainer: Any, publish: Callable[[Any], None] | None,
                  *, console: bool = False) -> Any:
    """The JobContext: database engine, Redis client, publisher and judge."""
    from flywheel.db.engine import make_engine
    from flywheel.rediskit import make_redis
    from flywheel.services.trainer.job import JobContext

    return JobContext(settings, trainer, make_engine(settings.database()), make_redis(settings),
                      publish=publish, console=console, judge=make_judge(trainer))


def warm_up(trainer: Any) -> None:
    """Import the ML stack and set torch's threads before the first batch arrives.

    Importing torch, transformers and PEFT takes seconds; paying it at start keeps it out of
    the time from a batch's announcement to its candidate.
    """
    import flywheel.ml.evaluate  # noqa: F401
    import flywheel.ml.train  # noqa: F401
    import peft  # noqa: F401
    from flywheel.ml.loading import set_torch_threads

    set_torch_threads(trainer.num_threads or None)


def main() -> None:
    """Build settings and logging, migrate, and consume datasets.batches until stopped."""
    from flywheel.db.engine import migrate
    from flywheel.services.trainer.job import JobInterrupted
    from flywheel.services.trainer.settings import SERVICE, load_trainer_settings

    settings = load_settings(service_name=SERVICE)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    trainer = load_trainer_settings()
    if trainer.migrate_on_start:
        migrate(settings.database())
    base = trainer.base_dir(settings)
    if not (base / "config.json").is_file():
        log.warning("base_model_missing", path=str(base),
                    hint="build it with `flywheel model init-tiny` or set "
                         "FLYWHEEL_TRAINER_BASE_MODEL_DIR")
    warm_up(trainer)
    publish, close_producer = make_publisher(settings)
    ctx = build_context(settings, trainer, publish, console=sys.stderr.isatty())

    def _stop(signum: int, _frame: Any) -> None:
        log.info("trainer_stopping", signal=signal.Signals(signum).name)
        ctx.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    consumer = make_consumer(settings, trainer)
    log.info("trainer_started", model_line=trainer.model_line, group=consumer_group(settings),
             topic=settings.topic("datasets.batches"), base_model=str(base))
    try:
        consume(ctx, consumer, ctx.stop)
    except JobInterrupted:
        log.info("trainer_interrupted")
    finally:
        consumer.close(autocommit=False)
        close_producer()
        log.info("trainer_stopped")


if __name__ == "__main__":
    main()
