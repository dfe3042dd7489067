"""Curator integration fixtures: the shared event builders and a curator worker process."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_BUILDERS = Path(__file__).resolve().parents[2] / "unit" / "curator" / "builders.py"
if "curator_builders" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("curator_builders", _BUILDERS)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["curator_builders"] = _module
    _spec.loader.exec_module(_module)


class CuratorProcess:
    """``python -m flywheel.services.curator.main`` with the given environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([sys.executable, "-m", "flywheel.services.curator.main"],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def curator_process(tmp_path: Path) -> Iterator[Callable[..., CuratorProcess]]:
    """Start curator workers (stopped by PID at the end of the test)."""
    started: list[CuratorProcess] = []

    def _start(settings: Any, **curator_env: str) -> CuratorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
        env.update({
            "FLYWHEEL_ENV": "test", "FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(),
            "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix,
            "FLYWHEEL_DATABASE_URL": settings.database(),
            "FLYWHEEL_DATA_DIR": str(settings.data_dir), "FLYWHEEL_LOG_FORMAT": "console",
            **{f"FLYWHEEL_CURATOR_{k.upper()}": str(v) for k, v in curator_env.items()},
        })
        proc = CuratorProcess(env, tmp_path / f"curator-{len(started)}.log")
        proc.start()
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.stop()
