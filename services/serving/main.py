"""Entry point of the model server.

Run::

    python -m flywheel.services.serving.main

Settings come from ``FLYWHEEL_*`` (shared) and ``FLYWHEEL_SERVING_*`` (this service), e.g.
``FLYWHEEL_SERVING_PORT=8001 FLYWHEEL_SERVING_BASE_MODEL_DIR=var/models/tiny-base``.

When a broker is configured (``FLYWHEEL_KAFKA_BOOTSTRAP`` or the dev stack), the server follows
``models.releases`` and produces every served conversation to ``traces.raw``
(``FLYWHEEL_SERVING_KAFKA=false`` turns both off). ``FLYWHEEL_SERVING_EXEMPLARS=true`` prepends
corrected answers from ``annotation.labels`` to similar questions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from flywheel.errors import ConfigError
from flywheel.logging import configure_logging, get_logger
from flywheel.settings import load_settings

from .app import create_app
from .settings import ServingSettings

log = get_logger(__name__)


def _quiet_progress_bars() -> None:
    """Weight-loading progress bars are noise in a service's JSON logs."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


@dataclass
class Wiring:
    """What ``main`` plugs into the app, and how to shut it down."""

    release_source: Any = None
    trace_sink: Any = None
    loader: Any = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except Exception as exc:  # shutting down: report and go on with the rest
                log.error("shutdown_step_failed", error=str(exc))


def _broker(settings: ServingSettings) -> str | None:
    if not settings.serving.kafka:
        return None
    try:
        return settings.kafka()
    except ConfigError:
        return None


def build_wiring(settings: ServingSettings) -> Wiring:
    """Kafka release source and trace sink when a broker is configured; exemplars when on."""
    from .app import base_artifact, generator_loader

    wiring = Wiring()
    cfg = settings.serving
    broker = _broker(settings)
    if broker is not None:
        from .kafka_wiring import KafkaReleaseSource, KafkaTraceSink

        wiring.release_source = KafkaReleaseSource(settings, cfg.model_line, lambda: base_artifact(settings))
        wiring.trace_sink = KafkaTraceSink(settings)
        wiring.closers.append(wiring.trace_sink.close)
        log.info("serving_kafka_wired", broker=broker, topic_prefix=settings.topic_prefix)
    if cfg.exemplars:
        from .exemplars import ExemplarStore, KafkaExemplarFeed, exemplar_loader, make_embedder

        store = ExemplarStore(make_embedder(cfg.exemplars_embedder), k=cfg.exemplars_k,
                              min_similarity=cfg.exemplars_min_similarity, capacity=cfg.exemplars_max)
        wiring.loader = exemplar_loader(generator_loader(cfg.threads), store)
        if broker is not None:
            feed = KafkaExemplarFeed(settings, store, max_age_s=cfg.exemplars_max_age_s)
            wiring.closers.append(feed.start())
    return wiring


def main() -> None:
    """Build settings, logging and the app, then serve until interrupted."""
    try:
        settings = load_settings(ServingSettings)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    configure_logging("serving", settings.log_level, settings.log_format)
    _quiet_progress_bars()
    wiring = build_wiring(settings)
    app = create_app(settings, release_source=wiring.release_source, trace_sink=wiring.trace_sink,
                     loader=wiring.loader)
    try:
        uvicorn.run(app, host=settings.serving.host, port=settings.serving.port, log_config=None,
                    access_log=False)
    finally:
        wiring.close()


if __name__ == "__main__":
    main()
