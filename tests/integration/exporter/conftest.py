"""Fixtures for the exporter and release-controller tests on the session's real broker."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _flow():  # noqa: ANN202 - loaded by path: works with or without rootdir on sys.path
    name = "flywheel_tests_release_flow"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("flow.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def flow():  # noqa: ANN201
    return _flow()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model directory (the base, version 0)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    return _flow().tiny_models().build_model_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def candidate_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A merged model directory of a new version: same tokenizer and shape, other weights."""
    return _flow().tiny_models().perturbed_copy(tiny_dir, tmp_path_factory.mktemp("v1"), seed=1)


@pytest.fixture
def settings(make_settings):  # noqa: ANN001, ANN201
    return make_settings(redis_url=None)


@pytest.fixture
def engine(settings, flow):  # noqa: ANN001, ANN201
    return flow.prepare(settings)
