"""Fixtures for serving tests: tiny model versions, their artifacts and a live uvicorn server."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _tiny_models():  # noqa: ANN202 - loaded by path: works with or without rootdir on sys.path
    name = "flywheel_tests_tiny_models"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "export" / "tiny_models.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class FakeReleaseSource:
    """In-memory stand-in for the models.releases follower."""

    def __init__(self) -> None:
        self.apply: Callable | None = None
        self.stopped = False

    def __call__(self, apply: Callable) -> Callable[[], None]:
        self.apply = apply
        return self.stop

    def stop(self) -> None:
        self.stopped = True

    def publish(self, release) -> None:  # noqa: ANN001
        assert self.apply is not None, "the app has not started"
        result = self.apply(release)
        if hasattr(result, "result"):
            result.result(timeout=60)


class FakeTraceSink:
    """In-memory stand-in for the traces.raw producer."""

    def __init__(self) -> None:
        self.items: list = []
        self._lock = threading.Lock()

    def __call__(self, conversation) -> None:  # noqa: ANN001
        with self._lock:
            self.items.append(conversation)


@pytest.fixture(scope="session")
def model_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three model directories with one tokenizer: the base (version 0) and versions 1 and 2."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    tm = _tiny_models()
    base = tm.build_model_dir(tmp_path_factory.mktemp("base"))
    return {
        "0": base,
        "1": tm.perturbed_copy(base, tmp_path_factory.mktemp("v1"), seed=1),
        "2": tm.perturbed_copy(base, tmp_path_factory.mktemp("v2"), seed=2),
    }


@pytest.fixture(scope="session")
def serving_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving-data")


@pytest.fixture(scope="session")
def version_artifacts(model_versions: dict[str, Path], serving_root: Path) -> dict[str, Path]:
    from flywheel.ml.onnx_export import export_onnx

    return {v: export_onnx(d, serving_root).artifact_dir for v, d in model_versions.items()}


@pytest.fixture(scope="session")
def generators(version_artifacts: dict[str, Path]) -> dict:
    from flywheel.ml.ort_runtime import OrtGenerator

    return {v: OrtGenerator(a, threads=1) for v, a in version_artifacts.items()}


def serving_settings(base_dir: Path, data_dir: Path, **section):  # noqa: ANN001, ANN201
    from flywheel.services.serving.settings import ServingSection, ServingSettings

    values = {"base_model_dir": base_dir, "threads": 1, "max_batch": 8, "batch_wait_ms": 5.0, **section}
    return ServingSettings(env="test", data_dir=data_dir, serving=ServingSection(**values))


@contextmanager
def running_server(app, ready_timeout: float = 120.0) -> Iterator[str]:  # noqa: ANN001
    """Run ``app`` under uvicorn on a free loopback port until the block ends; yield its URL."""
    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not become ready"
            try:
                if server.started and httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture
def make_serving_settings() -> Callable:
    return serving_settings


@pytest.fixture
def server() -> Callable:
    """``with server(app) as url:`` runs the app under uvicorn on a free loopback port."""
    return running_server


@pytest.fixture
def release_source() -> FakeReleaseSource:
    return FakeReleaseSource()


@pytest.fixture
def trace_sink() -> FakeTraceSink:
    return FakeTraceSink()


@pytest.fixture(scope="module")
def live_server(model_versions: dict[str, Path], version_artifacts: dict[str, Path],
                serving_root: Path) -> Iterator:
    """A real uvicorn server on the base model (version 0) with fake release source and sink."""
    from types import SimpleNamespace

    from flywheel.services.serving.app import create_app

    source, sink = FakeReleaseSource(), FakeTraceSink()
    app = create_app(serving_settings(model_versions["0"], serving_root),
                     release_source=source, trace_sink=sink)
    with running_server(app) as url:
        yield SimpleNamespace(url=url, source=source, sink=sink, app=app)
    assert source.stopped
