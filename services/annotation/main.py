"""Entry point of the annotation service: API, annotation page and annotation.tasks consumer.

Run::

    python -m flywheel.services.annotation.main

One process serves the API and the page (uvicorn, ``FLYWHEEL_ANNOTATION_PORT``, default 8003)
and runs the Faust consumer of ``annotation.tasks`` (plus ``traces.triaged`` when a judge is
configured) on the same event loop; ``FLYWHEEL_ANNOTATION_CONSUME=false`` makes an API-only
replica. Settings come from ``FLYWHEEL_*`` (shared) and ``FLYWHEEL_ANNOTATION_*``. Create
accounts with ``flywheel annotators create``.
"""

from __future__ import annotations

import sys

import uvicorn

from flywheel.errors import ConfigError
from flywheel.logging import configure_logging
from flywheel.settings import load_settings

from .app import create_app
from .settings import AnnotationSettings


def main() -> None:
    """Build settings, logging and the app, then serve until interrupted."""
    try:
        settings = load_settings(AnnotationSettings, service_name="annotation")
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    configure_logging("annotation", settings.log_level, settings.log_format)
    app = create_app(settings)
    uvicorn.run(app, host=settings.annotation.host, port=settings.annotation.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
