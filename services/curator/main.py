"""Entry point of the curator service.

Run::

    python -m flywheel.services.curator.main

Settings come from ``FLYWHEEL_*`` (broker, database, data dir, topic prefix) and
``FLYWHEEL_CURATOR_*`` (model line, batch thresholds, replay share, caps, designs). The
database schema is upgraded at start unless ``FLYWHEEL_CURATOR_MIGRATE_ON_START=false``.
Stop it with SIGTERM or SIGINT; Faust commits offsets and flushes the changelogs on the way
out.
"""

from __future__ import annotations

from flywheel.logging import configure_logging, get_logger
from flywheel.settings import load_settings


def main() -> None:
    """Build settings and logging, migrate, and run the Faust worker until stopped."""
    import faust

    from flywheel.db.engine import migrate
    from flywheel.services.curator.app import build_app
    from flywheel.services.curator.settings import SERVICE, load_curator_settings

    settings = load_settings(service_name=SERVICE)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    curator_settings = load_curator_settings()
    if curator_settings.migrate_on_start:
        migrate(settings.database())
    app, _ = build_app(settings, curator_settings)
    get_logger(__name__).info("curator_worker_starting", model_line=curator_settings.model_line,
                              topic_prefix=settings.topic_prefix)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), redirect_stdouts=False,
                          override_logging=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
