"""A lean HTTP/1.1 load generator for the benchmarks: keep-alive connections over asyncio
protocols, pre-built request bytes, and a response reader that only takes the status line
and Content-Length.

The load generator shares the machine's cores with what it measures, so its own cost per
request is taken from the system under test. A general client (aiohttp) spends about 280 µs of
CPU per small request here; this one a fraction of that, which is what a C tool such as wrk
would cost. It speaks only what the benchmarks need: requests with a body and answers with a
Content-Length (every gateway answer has one).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit


class _Connection(asyncio.Protocol):
    """One keep-alive connection that carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self._fail(ConnectionError("an answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:line_end if line_end > 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[:end + 4 + length]
        self.keep_alive = b"\r\nconnection: close" not in head
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(int(head[9:12]))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed by the server"))

    def send(self, data: bytes) -> asyncio.Future:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionError("the connection is closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class HttpLoad:
    """POSTs to one server over at most ``limit`` keep-alive connections.

    :meth:`submit` is for open loops: no task per request, the answer arrives as a callback
    and the connection goes on with the next waiting request; :meth:`send` awaits the answer
    (closed loops, a task per connection).
    """

    def __init__(self, base_url: str, limit: int) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.netloc = parts.netloc
        self.limit = limit
        # Least recently used first: every open connection carries its share of the load (a
        # stack would keep reusing the few that answered last and leave the rest to time out).
        self.idle: deque[_Connection] = deque()
        self.opened = 0  # connections open or opening
        self.waiting: deque[tuple[bytes, Callable[[int], None]]] = deque()
        self.tasks: set[asyncio.Task] = set()

    def submit(self, request: bytes, done: Callable[[int], None]) -> None:
        """Send ``request`` on an idle connection (opening one when under the limit, else
        after the next answer) and call ``done(status)``, 0 when the connection failed."""
        conn = self._idle_connection()
        if conn is not None:
            self._start(conn, request, done)
        elif self.opened < self.limit:
            self.opened += 1
            task = asyncio.get_running_loop().create_task(self._open_and_start(request, done))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self.waiting.append((request, done))

    async def open_all(self) -> None:
        """Open connections up to the limit now, as a fixed pool (wrk's ``-c``): requests
        beyond it wait in this process for a free connection, and that wait counts in their
        latency; no connection is opened while the load runs."""
        missing = self.limit - self.opened
        self.opened += missing
        results = await asyncio.gather(*(self._open() for _ in range(missing)),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                self.opened -= 1
            else:
                self.idle.append(result)
        if not self.idle:
            raise ConnectionError(f"could not connect to {self.netloc}")

    def _idle_connection(self) -> _Connection | None:
        while self.idle:
            conn = self.idle.popleft()
            if not conn.closed:
                return conn
            self.opened -= 1
        return None

    async def _open_and_start(self, request: bytes, done: Callable[[int], None]) -> None:
        try:
            conn = await self._open()
        except OSError:
            self.opened -= 1
            done(0)
            return
        self._start(conn, request, done)

    def _start(self, conn: _Connection, request: bytes, done: Callable[[int], None]) -> None:
        try:
            future = conn.send(request)
        except ConnectionError:
            self._finish(conn, 0, done)
            return
        future.add_done_callback(
            lambda f: self._finish(conn, 0 if f.exception() else f.result(), done))

    def _finish(self, conn: _Connection, status: int, done: Callable[[int], None]) -> None:
        if status and conn.keep_alive and not conn.closed:
            if self.waiting:
                self._start(conn, *self.waiting.popleft())
            else:
                self.idle.append(conn)
        else:
            if conn.transport is not None:
                conn.transport.close()
            self.opened -= 1
            if self.waiting:
                self.submit(*self.waiting.popleft())
        done(status)

    def request_bytes(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """The whole request, built once per body."""
        lines = [f"POST {path} HTTP/1.1", f"host: {self.netloc}",
                 *(f"{k}: {v}" for k, v in headers.items()), f"content-length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def send(self, request: bytes) -> int:
        """Send a request built by :meth:`request_bytes` and wait for its status code (0 when
        the connection failed); :meth:`submit` without the callback."""
        answer = asyncio.get_running_loop().create_future()
        self.submit(request, lambda status: answer.done() or answer.set_result(status))
        return await answer

    async def _open(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(
            _Connection, self.host, self.port)
        return conn

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()
        self.idle.clear()


def run(coro):  # noqa: ANN001, ANN201 - a coroutine and its result
    """Run ``coro`` on uvloop (what the gateway runs on) when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)
