"""Several gateway worker processes on one port, each listening on its own socket.

uvicorn's multi-worker mode binds one socket in the parent and every worker accepts from it.
Connections then go to whichever worker wakes first, and a client that opens many at once (a
connection pool filling up, a load balancer, a load generator) lands mostly on one worker:
64 connections opened together were split 64/0, 55/9 and 59/5 between two workers on this
machine, and the loaded worker's queue then set the latency tail while the other one idled.

Here each worker binds the port itself with ``SO_REUSEPORT`` (Linux 3.9+) and the kernel hashes
every new connection to one of the listening sockets, so connections spread over all workers
whatever their timing. The :class:`Supervisor` holds a bound, not listening, socket of the same
group: it resolves port 0 and keeps the port while a worker restarts. A worker that dies is
started again; one that fails during startup (exit status 3, uvicorn's startup failure: a
broker it cannot reach within the startup timeout, a port it cannot bind) stops the supervisor
with the same status, since a restart would fail the same way. SIGTERM or SIGINT stops every
worker gracefully (each drains its requests and flushes its producers) and kills those still
running after ``stop_grace_s``.

The one cost of per-worker sockets: connections waiting in a dying worker's accept queue are
reset (the client sees a refused or reset connection and retries), where a shared socket would
have handed them to another worker.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import threading

import uvicorn

from flywheel.logging import get_logger

log = get_logger(__name__)

STARTUP_FAILURE = 3  # uvicorn.config.STARTUP_FAILURE
_CHECK_EVERY_S = 0.5


def reuse_port_supported() -> bool:
    """True where several sockets can listen on one port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_reuse_port(host: str, port: int, *, listen: bool, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (and listening if asked)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _worker(app_factory: str, host: str, port: int, keep_alive_s: int) -> None:
    """One worker process: build the app (``app_factory`` is uvicorn's "module:callable"),
    listen on an own socket, serve until SIGTERM."""
    config = uvicorn.Config(app_factory, factory=True, host=host, port=port, access_log=False,
                            log_config=None, lifespan="on", timeout_keep_alive=keep_alive_s)
    server = uvicorn.Server(config)
    try:
        sock = bind_reuse_port(host, port, listen=True, backlog=config.backlog)
    except OSError as exc:  # a restart would fail the same way
        log.error("gateway_worker_bind_failed", host=host, port=port, error=str(exc))
        sys.exit(STARTUP_FAILURE)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Starts ``workers`` processes serving ``app_factory`` ("module:callable" returning the
    ASGI app) on ``host:port`` and keeps them up."""

    def __init__(self, app_factory: str, host: str, port: int, workers: int,
                 keep_alive_s: int, stop_grace_s: float = 30.0) -> None:
        self.app_factory = app_factory
        self.host = host
        self.workers = workers
        self.keep_alive_s = keep_alive_s
        self.stop_grace_s = stop_grace_s
        self.holder = bind_reuse_port(host, port, listen=False)
        self.port = self.holder.getsockname()[1]
        self.stopping = threading.Event()
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self._context = multiprocessing.get_context("spawn")

    def _start(self) -> multiprocessing.process.BaseProcess:
        process = self._context.Process(
            target=_worker, name="flywheel-gateway-worker",
            args=(self.app_factory, self.host, self.port, self.keep_alive_s))
        process.start()
        return process

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit status 0) or a worker's startup failure (3)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        status = 0
        try:
            self.processes = [self._start() for _ in range(self.workers)]
            log.info("gateway_workers_started", host=self.host, port=self.port,
                     workers=self.workers, pids=[p.pid for p in self.processes])
            while not self.stopping.wait(_CHECK_EVERY_S):
                status = self._replace_dead()
                if status:
                    break
        finally:
            self._stop_all()
            self.holder.close()
        return status

    def _replace_dead(self) -> int:
        for index, process in enumerate(self.processes):
            if process.is_alive() or self.stopping.is_set():
                continue
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                log.error("gateway_worker_startup_failed", pid=process.pid)
                return STARTUP_FAILURE
            log.warning("gateway_worker_died", pid=process.pid, exitcode=process.exitcode)
            self.processes[index] = self._start()
            log.info("gateway_worker_restarted", pid=self.processes[index].pid)
        return 0

    def _stop_all(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn drains and runs the lifespan shutdown
        for process in self.processes:
            process.join(self.stop_grace_s)
            if process.is_alive():
                log.warning("gateway_worker_killed", pid=process.pid)
                process.kill()
                process.join()


__all__ = ["STARTUP_FAILURE", "Supervisor", "bind_reuse_port", "reuse_port_supported"]
