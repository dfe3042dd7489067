"""Console integration fixtures: settings on the session's broker, a Redis database of its
own (the calibration and budget keys have no per-test prefix) and SQLite, and the seeder."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from flywheel.services.console.settings import ConsoleSettings

_SEED = Path(__file__).resolve().parent / "seed.py"
if "console_seed" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("console_seed", _SEED)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["console_seed"] = _module
    _spec.loader.exec_module(_module)

CONSOLE_REDIS_DB = 7


def own_redis_db(url: str, db: int = CONSOLE_REDIS_DB) -> str:
    """The same Redis server, another database number."""
    base, _, _ = url.rpartition("/") if url.count("/") > 2 else (url, "", "")
    return f"{base}/{db}"


@pytest.fixture
def console_settings(make_settings, redis_url) -> Callable[..., ConsoleSettings]:  # noqa: ANN001
    def _make(**overrides) -> ConsoleSettings:  # noqa: ANN003
        return make_settings(ConsoleSettings, redis_url=own_redis_db(redis_url), **overrides)

    return _make
