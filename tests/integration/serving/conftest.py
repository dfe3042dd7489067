"""Fixtures for the serving app's Kafka wiring on the session's real broker."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _flow():  # noqa: ANN202 - the release-flow helpers, loaded by path
    name = "flywheel_tests_release_flow"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "exporter" / "flow.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def flow():  # noqa: ANN201
    return _flow()


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Model directories of versions 0 (the base), 1 and 2: one tokenizer, different weights."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    tm = _flow().tiny_models()
    base = tm.build_model_dir(tmp_path_factory.mktemp("base"))
    return {0: base, 1: tm.perturbed_copy(base, tmp_path_factory.mktemp("v1"), seed=1),
            2: tm.perturbed_copy(base, tmp_path_factory.mktemp("v2"), seed=2)}


@pytest.fixture(scope="session")
def artifact_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def artifacts(versions: dict[int, Path], artifact_root: Path) -> dict[int, Path]:
    from flywheel.ml.onnx_export import export_onnx

    return {v: export_onnx(d, artifact_root).artifact_dir for v, d in versions.items() if v}


@pytest.fixture
def settings(make_settings):  # noqa: ANN001, ANN201
    return make_settings(redis_url=None)


@pytest.fixture
def engine(settings, flow):  # noqa: ANN001, ANN201
    return flow.prepare(settings)


@pytest.fixture
def serving_settings(make_settings, versions: dict[int, Path]):  # noqa: ANN001, ANN201
    from flywheel.services.serving.settings import ServingSection, ServingSettings

    def build(**section):  # noqa: ANN003, ANN202
        values = {"base_model_dir": versions[0], "threads": 1, "max_batch": 4, **section}
        return make_settings(ServingSettings, redis_url=None, serving=ServingSection(**values))

    return build
