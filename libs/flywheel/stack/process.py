"""Process and port helpers for the local stack: spawn detached, identify, stop by PID.

A PID alone is not an identity (the kernel reuses them), so every process the stack starts is
recorded with its start time from ``/proc/<pid>/stat``; stopping checks both before signalling.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when ``host:port`` can be bound right now (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves (Kafka, Redis and PostgreSQL all bind with SO_REUSEADDR):
        # a port whose old connections linger in TIME_WAIT after a restart is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None, host: str = LOOPBACK, avoid: Sequence[int] = ()) -> int:
    """``preferred`` when it is free (and not in ``avoid``), else a free port from the kernel."""
    if preferred and preferred not in avoid and port_is_free(preferred, host):
        return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port


def tcp_accepts(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM it when the parent
    # dies, so brokers started by a test session never outlive a killed pytest.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def spawn(
    cmd: Sequence[str],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen:
    """Start ``cmd`` in its own session with stdout and stderr appended to ``log_file``.

    The child outlives the caller unless ``die_with_parent`` (test fixtures use that).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when it does not exist."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int | None, started: int | None = None) -> bool:
    """True when ``pid`` runs (zombies count as gone) and, if given, started at ``started``."""
    if not pid:
        return False
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def stop_pid(
    pid: int | None, started: int | None = None, timeout_s: float = 20.0, sig: int = signal.SIGTERM
) -> str:
    """Stop one process: ``sig``, wait up to ``timeout_s``, then SIGKILL.

    Returns "stopped", "killed", "gone" (not running) or "not-ours" (the PID now belongs to a
    different process, which is left alone).
    """
    if not pid:
        return "gone"
    if not pid_alive(pid):
        _reap(pid)
        return "gone"
    if started is not None and not pid_alive(pid, started):
        return "not-ours"
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return "gone"

    def _gone() -> bool:
        _reap(pid)
        return not pid_alive(pid, started)

    if wait_until(_gone, timeout_s, 0.05):
        return "stopped"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(_gone, 5.0, 0.05)
    return "killed"


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block (serialises concurrent `dev up`s)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
