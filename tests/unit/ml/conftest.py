"""Fixtures for the ML tests: a tiny random model directory, one thread for torch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/ml_fixtures.py is imported as `tests.ml_fixtures`; make the repo root importable when
# pytest is started through its console script rather than `python -m pytest`.
_ROOT = Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


@pytest.fixture(autouse=True)
def _torch_one_thread():
    """One intra-op thread: on a shared 2-core machine, two threads under load run far slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A saved random tiny model + tokenizer (built once per session; do not modify)."""
    pytest.importorskip("torch")
    from tests.ml_fixtures import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("ml"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_dir):
    from flywheel.ml.loading import load_tokenizer

    return load_tokenizer(tiny_dir)
