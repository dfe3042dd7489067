"""Entry point of the preferences service: the HTTP API and the preference.requests consumer.

Run::

    python -m flywheel.services.preferences.main

One process serves the API (uvicorn, ``FLYWHEEL_PREFERENCES_PORT``, default 8002) and runs the
Faust consumer of ``preference.requests`` on the same event loop (set
``FLYWHEEL_PREFERENCES_CONSUME=false`` for API-only replicas). Settings come from
``FLYWHEEL_*`` (shared) and ``FLYWHEEL_PREFERENCES_*``.
"""

from __future__ import annotations

import sys

import uvicorn

from flywheel.errors import ConfigError
from flywheel.logging import configure_logging
from flywheel.settings import load_settings

from .app import create_app
from .settings import PreferencesSettings


def main() -> None:
    """Build settings, logging and the app, then serve until interrupted."""
    try:
        settings = load_settings(PreferencesSettings, service_name="preferences")
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None
    configure_logging("preferences", settings.log_level, settings.log_format)
    app = create_app(settings)
    uvicorn.run(app, host=settings.preferences.host, port=settings.preferences.port,
                log_config=None, access_log=False)


if __name__ == "__main__":
    main()
