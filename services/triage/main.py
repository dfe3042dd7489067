"""Run a triage worker: ``python -m flywheel.services.triage.main``.

Reads the shared settings (``FLYWHEEL_*``) and the triage section (``FLYWHEEL_TRIAGE_*``),
checks that the broker and Redis answer, creates the registry topics when they are missing,
then runs the Faust worker until SIGINT/SIGTERM. Start more processes (with the same
``FLYWHEEL_TOPIC_PREFIX``) to share the partitions; give each a distinct
``FLYWHEEL_TRIAGE_WEB_PORT`` / ``FLYWHEEL_TRIAGE_METRICS_PORT`` if those are enabled.
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path
from urllib.parse import urlparse

from flywheel.errors import ConfigError, FlywheelError
from flywheel.logging import configure_logging, get_logger
from flywheel.settings import Settings, check_tcp, load_settings

log = get_logger(__name__)


def ensure_topics(settings: Settings) -> None:
    """Create every registry topic under the prefix (existing ones are left alone)."""
    try:
        from flywheel.kafka.admin import create_topics
    except ImportError:
        create_topics = None
    if create_topics is not None:
        create_topics(settings.kafka(), settings.topic_prefix)
        return
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from flywheel.events.topics import TOPICS

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka(), client_id="triage-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(spec.full_name(settings.topic_prefix), spec.partitions, 1,
                        topic_configs=spec.config())
               for spec in TOPICS.values() if spec.full_name(settings.topic_prefix) not in existing]
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(settings.startup_timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def _check_dependencies(settings: Settings) -> None:
    check_tcp("FLYWHEEL_KAFKA_BOOTSTRAP", settings.kafka())
    redis_url = urlparse(settings.redis())
    if redis_url.scheme in ("redis", "rediss"):
        check_tcp("FLYWHEEL_REDIS_URL", f"{redis_url.hostname}:{redis_url.port or 6379}")


def run() -> None:
    """Build settings, logging and the app, then run the worker (blocks)."""
    import faust

    from flywheel.services.triage.app import create_app
    from flywheel.services.triage.settings import TriageSettings

    settings = load_settings(Settings)
    try:
        tset = TriageSettings()
    except Exception as exc:  # pydantic ValidationError: one line naming the setting
        raise ConfigError("FLYWHEEL_TRIAGE_*", str(exc).splitlines()[0]) from None
    configure_logging("triage", settings.log_level, settings.log_format)
    _check_dependencies(settings)
    ensure_topics(settings)
    service = create_app(settings, tset)
    Path(service.app.conf.datadir).mkdir(parents=True, exist_ok=True)
    # Thousands of short-lived protobuf/dict objects per second: keep the start-up heap out of
    # the collector and collect the young generation less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    service.metrics.serve(tset.metrics_port)
    log.info("triage_starting", topic_prefix=settings.topic_prefix, hold_s=tset.hold_s,
             model=tset.model_url if tset.model_enabled else "off",
             policy=service.engine.policy.version)
    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            # mode's Worker installs its own log handler; put the structured JSON one back.
            configure_logging("triage", settings.log_level, settings.log_format)

    Worker(service.app, loglevel=settings.log_level, redirect_stdouts=False,
           quiet=True).execute_from_commandline()


def main() -> None:
    """Entry point: one-line errors for configuration problems."""
    try:
        run()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FlywheelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    logging.captureWarnings(True)
    main()
