"""Run the gateway: ``python -m flywheel.services.gateway.main``.

Reads the shared settings (``FLYWHEEL_*``: broker, Redis, database, topic prefix) and the
gateway section (``FLYWHEEL_GATEWAY_*``: port, default 8000; workers; limits), configures
logging and serves the app with uvicorn. With ``FLYWHEEL_GATEWAY_WORKERS`` above 1 each worker
is a process with its own producers and, on Linux, its own listening socket on the port
(``SO_REUSEPORT``, see :mod:`.workers`: the kernel spreads connections evenly over the
workers); ``/metrics`` then aggregates all of them through prometheus_client's multiprocess
mode (a directory under the data dir).
"""

from __future__ import annotations

import os
import shutil
import sys

import uvicorn

from flywheel.logging import configure_logging
from flywheel.settings import load_settings

from .app import create_app
from .config import load_gateway_settings
from .workers import Supervisor, reuse_port_supported

SERVICE = "gateway"
APP_FACTORY = "flywheel.services.gateway.main:build_app"


def build_app():  # noqa: ANN201 - FastAPI; the uvicorn factory for worker processes
    """Settings, logging and the app, as every worker process builds them."""
    settings = load_settings(service_name=SERVICE)
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    return create_app(settings, load_gateway_settings())


def _multiprocess_metrics_dir(data_dir: str) -> None:
    path = os.path.join(data_dir, "gateway-metrics")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    # prometheus_client reads this when it is imported, in each worker process.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def main() -> None:
    """Serve the gateway on FLYWHEEL_GATEWAY_HOST:FLYWHEEL_GATEWAY_PORT."""
    settings = load_settings(service_name=SERVICE)
    gw = load_gateway_settings()
    configure_logging(SERVICE, settings.log_level, settings.log_format)
    if gw.workers > 1:
        _multiprocess_metrics_dir(str(settings.data_dir))
        if reuse_port_supported():
            sys.exit(Supervisor(APP_FACTORY, gw.host, gw.port, gw.workers, gw.keep_alive_s).run())
        uvicorn.run(APP_FACTORY, factory=True, host=gw.host, port=gw.port, workers=gw.workers,
                    access_log=False, log_config=None, lifespan="on",
                    timeout_keep_alive=gw.keep_alive_s)
        return
    uvicorn.run(create_app(settings, gw), host=gw.host, port=gw.port, access_log=False,
                log_config=None, lifespan="on", timeout_keep_alive=gw.keep_alive_s)


if __name__ == "__main__":
    main()
