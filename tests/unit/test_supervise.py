"""The service supervisor: restarts a dying service, passes a stop on, reports start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.stack.supervise import MAX_BACKOFF_S, next_backoff

SERVICE = '''
import os, sys, time
from pathlib import Path

def main():
    runs = Path(os.environ["RUNS_FILE"])
    n = int(runs.read_text()) + 1 if runs.exists() else 1
    runs.write_text(str(n))
    Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
    mode = os.environ["MODE"]
    if mode == "crash-twice":
        time.sleep(0.3)
        sys.exit(0 if n >= 3 else 3)
    if mode == "bad-config":
        sys.exit(4)
    time.sleep(600)  # "forever"
'''


def _start(tmp_path: Path, mode: str) -> subprocess.Popen:
    (tmp_path / "fake_service.py").write_text(SERVICE)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RUNS_FILE": str(tmp_path / "runs"), "PID_FILE": str(tmp_path / "pid"), "MODE": mode}
    code = ("from flywheel.stack.supervise import supervise; "
            "raise SystemExit(supervise('fake_service', startup_s=0.2, min_backoff_s=0.1))")
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def _wait_for(predicate, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_backoff_doubles_caps_and_resets() -> None:
    assert next_backoff(0.5, 1.0) == 1.0
    assert next_backoff(1.0, 1.0) == 2.0
    assert next_backoff(20.0, 1.0) == MAX_BACKOFF_S
    assert next_backoff(20.0, 3600.0) == 1.0  # a healthy run resets it


def test_a_crashing_service_is_restarted_until_it_exits_cleanly(tmp_path: Path) -> None:
    sup = _start(tmp_path, "crash-twice")
    assert sup.wait(timeout=30) == 0
    assert (tmp_path / "runs").read_text() == "3"


def test_a_failure_at_start_is_reported_not_retried(tmp_path: Path) -> None:
    sup = _start(tmp_path, "bad-config")
    assert sup.wait(timeout=30) == 4
    assert (tmp_path / "runs").read_text() == "1"


def test_a_killed_service_comes_back_and_a_stop_is_passed_on(tmp_path: Path) -> None:
    sup = _start(tmp_path, "forever")
    try:
        _wait_for(lambda: (tmp_path / "runs").exists() and (tmp_path / "pid").exists())
        time.sleep(0.5)  # past the start-up window
        first = int((tmp_path / "pid").read_text())
        os.kill(first, signal.SIGKILL)
        _wait_for(lambda: (tmp_path / "runs").read_text() == "2")
        _wait_for(lambda: (tmp_path / "pid").read_text() != str(first))
        second = int((tmp_path / "pid").read_text())
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=20) == 0
        _wait_for(lambda: not Path(f"/proc/{second}").exists()
                  or Path(f"/proc/{second}/stat").read_text().split(") ")[1][0] == "Z")
    finally:
        if sup.poll() is None:
            sup.kill()
            pytest.fail("the supervisor did not stop on SIGTERM")
