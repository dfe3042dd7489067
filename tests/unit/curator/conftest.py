"""Curator unit-test fixtures: the shared event builders and a SQLite batch store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BUILDERS = Path(__file__).resolve().parent / "builders.py"
if "curator_builders" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("curator_builders", _BUILDERS)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["curator_builders"] = _module
    _spec.loader.exec_module(_module)


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    """A BatchStore on a migrated SQLite database under tmp_path, with the model line."""
    from flywheel.db.engine import make_engine, migrate
    from flywheel.services.curator.logic.writer import BatchStore

    url = f"sqlite:///{tmp_path / 'flywheel.db'}"
    migrate(url)
    engine = make_engine(url)
    batch_store = BatchStore(engine, tmp_path / "artifacts")
    batch_store.ensure_model_line("shop-assistant", "tiny")
    yield batch_store
    engine.dispose()
