"""Entry point of the exporter: ``models.candidates`` in, canaries on ``models.releases`` out.

Run::

    python -m flywheel.services.exporter.main

Settings come from ``FLYWHEEL_*`` (broker, database, data dir, topic prefix) and
``FLYWHEEL_EXPORTER_*`` (canary share, quantisation, parity prompts). ``models.candidates`` has
one partition and the exporter one consumer group, so candidates are exported one at a time
in order. Offsets are committed after each candidate is handled; an undecodable record goes
to the dead-letter topic; an unexpected error is logged with its offset and stops the
process (the record is read again on restart). Stop it with SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode, encode
from flywheel.logging import configure_logging, get_logger
from flywheel.settings import Settings, load_settings

from .settings import SERVICE, ExporterSettings, load_exporter_settings

log = get_logger(__name__)


def make_consumer(settings: Settings, cfg: ExporterSettings) -> Any:
    """A kafka-python consumer of ``models.candidates`` in the exporter's group."""
    from kafka import KafkaConsumer

    return KafkaConsumer(
        settings.topic("models.candidates"), bootstrap_servers=settings.kafka(),
        group_id=cfg.group(settings.topic_prefix), client_id=f"{SERVICE}-consumer",
        enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=1,
        # An export plus its gate can take minutes on a real model: stay in the group.
        max_poll_interval_ms=30 * 60 * 1000, session_timeout_ms=30_000,
    )


def build_exporter(settings: Settings, cfg: ExporterSettings, producer: Any, **hooks: Any) -> Any:
    """The candidate exporter wired to the registry and a producer."""
    from flywheel.db.engine import make_engine

    from .releasing import Releaser, kafka_send
    from .service import CandidateExporter

    engine = make_engine(settings.database())
    releaser = Releaser(settings, engine, kafka_send(producer), producer_name=SERVICE)
    return CandidateExporter(settings, cfg, engine, releaser, **hooks)


def _dead_letter(settings: Settings, producer: Any, record: Any, exc: Exception) -> None:
    from flywheel.kafka.deadletter import build_dead_letter
    from flywheel.kafka.producer import produce_sync

    dl = build_dead_letter(service=SERVICE, source_topic=record.topic, partition=record.partition,
                           offset=record.offset, key=record.key, value=record.value, error=exc)
    produce_sync(producer, settings.topic("deadletter"), dl.envelope.event_id.encode(), encode(dl))


def handle_record(settings: Settings, exporter: Any, producer: Any, record: Any) -> Any:
    """Decode and handle one record (dead-lettering what cannot be decoded)."""
    try:
        candidate = decode(record.value, "ModelCandidate")
    except EventDecodeError as exc:
        log.warning("candidate_undecodable", offset=record.offset, error=str(exc))
        _dead_letter(settings, producer, record, exc)
        return None
    outcome = exporter.handle(candidate)
    log.info("candidate_handled", line=outcome.line, version=outcome.version, status=outcome.status,
             reason=outcome.reason[:200], offset=record.offset)
    return outcome


def run(settings: Settings, cfg: ExporterSettings, stop: threading.Event, *,
        on_outcome: Callable[[Any], None] | None = None, **hooks: Any) -> None:
    """Consume candidates until ``stop`` is set."""
    from flywheel.kafka.producer import make_producer

    producer = make_producer(settings, client_id=f"{SERVICE}-producer")
    consumer = make_consumer(settings, cfg)
    exporter = build_exporter(settings, cfg, producer, **hooks)
    log.info("exporter_started", topic=settings.topic("models.candidates"),
             group=cfg.group(settings.topic_prefix))
    try:
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=int(cfg.poll_timeout_s * 1000))
            for records in batches.values():
                for record in records:
                    try:
                        outcome = handle_record(settings, exporter, producer, record)
                    except Exception:
                        log.exception("candidate_error", topic=record.topic, partition=record.partition,
                                      offset=record.offset)
                        raise
                    consumer.commit()
                    if on_outcome is not None and outcome is not None:
                        on_outcome(outcome)
    finally:
        consumer.close()
        producer.close(timeout=10)
        log.info("exporter_stopped")


def main() -> None:
    """Build settings and logging, migrate the registry, and export until stopped."""
    from flywheel.db.engine import migrate

    settings = load_settings(service_name=SERVICE)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    cfg = load_exporter_settings()
    migrate(settings.database())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, cfg, stop)


if __name__ == "__main__":
    main()
