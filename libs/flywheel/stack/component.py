"""The component model shared by the broker, Redis, PostgreSQL and the services.

A component is one local process the stack owns: a name, the address clients use, its PID and
start time, its data dir and log file, and a health probe. ``record()`` is its entry in the
stack state file.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import StackError
from flywheel.stack.process import pid_alive, process_start_time, stop_pid, tail

HEALTH_OK = "ok"


@dataclass
class Component:
    """Base of every process the stack starts and stops."""

    name: str
    data_dir: Path
    log_file: Path
    pid: int | None = None
    started: int | None = None
    die_with_parent: bool = False
    stop_timeout_s: float = 20.0
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """What clients connect to (host:port or URL)."""
        raise NotImplementedError

    def health(self) -> str:
        """"ok", or a short reason why the component is not usable."""
        raise NotImplementedError

    def running(self) -> bool:
        return pid_alive(self.pid, self.started)

    def record(self) -> dict[str, Any]:
        """This component's entry in ``<data_dir>/stack/state.json``."""
        return {
            "address": self.address,
            "pid": self.pid,
            "started": self.started,
            "data_dir": str(self.data_dir),
            "log": str(self.log_file),
            "managed": True,
        }

    def _adopt(self, proc: subprocess.Popen) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.started = process_start_time(proc.pid)

    def _died(self) -> bool:
        """True when the process exited (reaping it if it is our child)."""
        if self._proc is not None:
            return self._proc.poll() is not None
        return not self.running()

    def _fail(self, what: str) -> StackError:
        return StackError(
            f"{self.name}: {what}; see {self.log_file}\n{tail(self.log_file, 12)}".rstrip()
        )

    def stop(self) -> str:
        """Stop the process this object started (SIGTERM, wait, SIGKILL)."""
        result = stop_pid(self.pid, self.started, self.stop_timeout_s)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self._proc = None
        self.pid = None
        self.started = None
        return result

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self):  # noqa: ANN201 (returns self in subclasses)
        raise NotImplementedError
