"""Entry point of the console: the page, ``/api/snapshot``, ``/healthz``, ``/readyz``, ``/metrics``.

Run::

    python -m flywheel.services.console.main        # or: flywheel run console

Serves on ``FLYWHEEL_CONSOLE_HOST``:``FLYWHEEL_CONSOLE_PORT`` (default 127.0.0.1:8004). The
broker, Redis and database come from the shared ``FLYWHEEL_*`` settings or the dev stack's
state file, which also lists the services to watch.
"""

from __future__ import annotations

import sys

import uvicorn

from flywheel.errors import ConfigError
from flywheel.logging import configure_logging
from flywheel.settings import load_settings

from .app import create_app
from .settings import SERVICE, ConsoleSettings


def main() -> None:
    """Build settings, logging and the app, then serve until interrupted."""
    try:
        settings = load_settings(ConsoleSettings, service_name=SERVICE)
    except (ConfigError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings), host=settings.console.host, port=settings.console.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
