"""The gateway with several workers, run as ``python -m flywheel.services.gateway.main``: each
worker listens on its own ``SO_REUSEPORT`` socket, connections spread over all of them, a
worker that dies is replaced, SIGTERM stops everything, and a worker that cannot start stops
the supervisor with uvicorn's startup-failure status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from flywheel.db.engine import make_engine, migrate
from flywheel.events.topics import TOPICS
from flywheel.kafka.admin import create_topics
from flywheel.keys import create_key
from flywheel.stack.process import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT")

REPO = Path(__file__).resolve().parents[3]


class Gateway:
    def __init__(self, proc: subprocess.Popen, port: int, key: str) -> None:
        self.proc, self.port, self.key = proc, port, key
        self.url = f"http://127.0.0.1:{port}"

    def listening_workers(self) -> dict[int, psutil.Process]:
        """Child processes with a listening socket on the gateway's port."""
        found = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
                       for c in child.net_connections("tcp")):
                    found[child.pid] = child
            except psutil.NoSuchProcess:
                continue
        return found

    def wait_workers(self, count: int, timeout_s: float = 90.0,
                     without: frozenset[int] = frozenset()) -> dict[int, psutil.Process]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the supervisor exited with {self.proc.returncode}"
            workers = self.listening_workers()
            if len(workers) == count and not set(workers) & without:
                return workers
            time.sleep(0.2)
        raise AssertionError(f"expected {count} listening workers, found {self.listening_workers()}")

    def post_trace(self) -> httpx.Response:
        trace = {"trace_id": f"t-{uuid.uuid4().hex}", "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
        return httpx.post(f"{self.url}/v1/traces", json=trace,
                          headers={"x-api-key": self.key}, timeout=30)


@pytest.fixture
def run_gateway(kafka_bootstrap: str, redis_url: str, sqlite_url: str, topic_prefix: str,
                tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    migrate(sqlite_url)
    create_topics(kafka_bootstrap, topic_prefix, [TOPICS["traces.raw"], TOPICS["feedback.events"]])
    engine = make_engine(sqlite_url)
    key = create_key(engine, "shop").plain
    engine.dispose()
    started: list[subprocess.Popen] = []

    def run(workers: int = 2, **env: str) -> Gateway:
        port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")},
            "FLYWHEEL_ENV": "test", "FLYWHEEL_DATA_DIR": str(tmp_path / "gw"),
            "FLYWHEEL_KAFKA_BOOTSTRAP": kafka_bootstrap, "FLYWHEEL_REDIS_URL": redis_url,
            "FLYWHEEL_DATABASE_URL": sqlite_url, "FLYWHEEL_TOPIC_PREFIX": topic_prefix,
            "FLYWHEEL_GATEWAY_PORT": str(port), "FLYWHEEL_GATEWAY_WORKERS": str(workers),
            **env,
        }
        log = open(tmp_path / f"gateway-{port}.log", "wb")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen([sys.executable, "-m", "flywheel.services.gateway.main"],
                                cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        started.append(proc)
        return Gateway(proc, port, key)

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait()


def _established_per_worker(gateway: Gateway, workers: dict[int, psutil.Process]) -> dict[int, int]:
    return {pid: sum(1 for c in worker.net_connections("tcp")
                     if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == gateway.port)
            for pid, worker in workers.items()}


def test_connections_spread_over_workers_and_a_dead_worker_is_replaced(run_gateway) -> None:  # noqa: ANN001
    gateway = run_gateway(workers=2)
    workers = gateway.wait_workers(2)
    assert gateway.post_trace().status_code == 200

    # 64 connections opened at once: with one shared socket most went to one worker.
    clients = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(64)]
    try:
        deadline = time.monotonic() + 10
        counts = _established_per_worker(gateway, workers)
        while sum(counts.values()) < 64 and time.monotonic() < deadline:
            time.sleep(0.1)
            counts = _established_per_worker(gateway, workers)
        assert sum(counts.values()) == 64, counts
        # The kernel hashes connections over the two sockets: fewer than 12 of 64 on one
        # worker has a probability below 1e-6 when both sockets take part.
        assert min(counts.values()) >= 12, counts
    finally:
        for client in clients:
            client.close()

    victim = next(iter(workers))
    os.kill(victim, signal.SIGKILL)
    replaced = gateway.wait_workers(2, without=frozenset({victim}))
    assert victim not in replaced
    assert gateway.post_trace().status_code == 200

    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(60) == 0
    for pid in replaced:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_worker_that_cannot_start_stops_the_supervisor(run_gateway) -> None:  # noqa: ANN001
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        gateway = run_gateway(
            workers=2, FLYWHEEL_KAFKA_BOOTSTRAP=f"127.0.0.1:{closed.getsockname()[1]}",
            FLYWHEEL_STARTUP_TIMEOUT_S="2")
        assert gateway.proc.wait(120) == 3
    finally:
        closed.close()


def test_idle_connections_are_closed_after_the_keep_alive_setting(run_gateway) -> None:  # noqa: ANN001
    # 2 s here; uvicorn's own default (5 s) would still hold the connection open at 3.5 s.
    gateway = run_gateway(workers=2, FLYWHEEL_GATEWAY_KEEP_ALIVE_S="2")
    gateway.wait_workers(2)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = b""
        while b'{"status":"ok"}' not in answer:  # headers and body may come in two reads
            chunk = conn.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        time.sleep(3.5)
        conn.settimeout(0.5)  # still open: recv times out instead of returning b""
        assert conn.recv(4096) == b""  # the gateway closed the idle connection
