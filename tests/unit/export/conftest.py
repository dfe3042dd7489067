"""Fixtures for export tests: tiny random model directories and a float ONNX artifact."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def _tiny_models():  # noqa: ANN202 - loaded by path: works with or without rootdir on sys.path
    name = "flywheel_tests_tiny_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("tiny_models.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_models().build_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def other_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same tokenizer and shape as ``tiny_model_dir``, different weights."""
    return _tiny_models().perturbed_copy(tiny_model_dir, tmp_path_factory.mktemp("other"), seed=1)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def float_artifact(tiny_model_dir: Path, data_root: Path) -> Path:
    from flywheel.ml.onnx_export import export_onnx

    return export_onnx(tiny_model_dir, data_root).artifact_dir


@pytest.fixture(scope="session")
def quant_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose int8 export keeps its greedy answers (the local random build does; a
    model with near-tied logits may not, which is what the metric gate is for)."""
    return _tiny_models()._build_local(tmp_path_factory.mktemp("quant") / "tiny")


@pytest.fixture(scope="session")
def quant_other_dir(quant_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_models().perturbed_copy(quant_model_dir, tmp_path_factory.mktemp("qother"), seed=1)
