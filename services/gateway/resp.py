"""A pipelined Redis connection for the gateway's per-request scripts.

Every ingest request makes two Redis calls (admission, then the commit mark). Through
``redis.asyncio`` each call costs the gateway more CPU than the rest of a single-trace request's
Redis work together: a pooled connection is checked out and back in, the command passes retry
and stream-reader layers, and the reply is parsed in Python. This connection writes the
command with ``hiredis.pack_command``, parses replies with ``hiredis.Reader`` (both C), and keeps
one socket per worker on which calls are pipelined: each call appends its command and a future,
and replies resolve the futures in order. The commands issued in one event-loop iteration go out
in one write.

It runs ``EVALSHA`` only (with ``SCRIPT LOAD`` when Redis answers ``NOSCRIPT``, as after a
restart). A call that gets no reply within ``timeout_s`` closes the connection, failing every
call on it, and the next call reconnects; for half a second after a failed connection attempt,
calls fail at once instead of each waiting out a connect timeout. TLS and unix sockets are left
to ``redis.asyncio``: :func:`supports` says whether a URL can use this connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from urllib.parse import unquote, urlsplit

import hiredis


_RECONNECT_BACKOFF_S = 0.5


class RedisReplyError(Exception):
    """Redis answered a command with an error reply."""


def supports(url: str) -> bool:
    """True for ``redis://`` URLs (TCP, no TLS), which this connection speaks."""
    return urlsplit(url).scheme == "redis"


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[tuple[asyncio.Future, float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None
        self.outgoing: list[bytes] = []  # commands of this loop iteration, written together

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self._close(ConnectionError(f"bad reply from Redis: {exc}"))
                return
            if reply is False:
                return
            if not self.waiters:  # a reply nobody asked for: the stream is out of step
                self._close(ConnectionError("unexpected reply from Redis"))
                return
            future, _ = self.waiters.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(RedisReplyError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("Redis closed the connection")
        self._fail_all(self.lost)

    def _fail_all(self, exc: BaseException) -> None:
        while self.waiters:
            future, _ = self.waiters.popleft()
            if not future.done():
                future.set_exception(exc)

    def _close(self, exc: BaseException) -> None:
        self.lost = exc
        self._fail_all(exc)
        if self.transport is not None:
            self.transport.close()

    def call(self, args: tuple) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiters.append((future, time.monotonic()))
        if not self.outgoing:
            loop.call_soon(self._write)
        self.outgoing.append(hiredis.pack_command(args))
        return future

    def _write(self) -> None:
        """One write (one system call) for every command issued in the last loop iteration."""
        outgoing, self.outgoing = self.outgoing, []
        if self.lost is None and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(outgoing))


class ScriptConnection:
    """Run Lua scripts on one pipelined connection to the Redis at ``url``."""

    def __init__(self, url: str, timeout_s: float = 5.0, connect_timeout_s: float = 3.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"ScriptConnection speaks redis:// only, not {parts.scheme}://")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._proto: _Protocol | None = None
        self._failed_at = -1e9
        self._lock = asyncio.Lock()
        self._watchdog: asyncio.Task | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        async with self._lock:
            if self._proto is not None and self._proto.lost is None:
                return self._proto
            if time.monotonic() - self._failed_at < _RECONNECT_BACKOFF_S:
                # the calls queued behind a failed attempt fail at once, not one timeout each
                raise ConnectionError("Redis was unreachable a moment ago")
            loop = asyncio.get_running_loop()
            transport = None
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    transport, proto = await loop.create_connection(_Protocol, self.host,
                                                                    self.port)
                    if self.password is not None:
                        auth = (b"AUTH", self.username, self.password) if self.username \
                            else (b"AUTH", self.password)
                        await proto.call(auth)
                    if self.db:
                        await proto.call((b"SELECT", self.db))
            except BaseException:
                self._failed_at = time.monotonic()
                if transport is not None:
                    transport.close()
                raise
            self._proto = proto
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = loop.create_task(self._watch())
            return proto

    async def _watch(self) -> None:
        """Close a connection whose oldest call waited longer than ``timeout_s``."""
        while True:
            await asyncio.sleep(min(0.5, self.timeout_s / 4))
            proto = self._proto
            if proto is not None and proto.waiters and \
                    time.monotonic() - proto.waiters[0][1] > self.timeout_s:
                proto._close(TimeoutError(f"Redis did not answer within {self.timeout_s:g}s"))

    async def run(self, script: Script, keys: list[str], args: list) -> object:
        """``EVALSHA`` of ``script``; loads it first when Redis does not know it.

        Raises:
            RedisReplyError: the script failed in Redis.
            ConnectionError, OSError, TimeoutError: Redis is unreachable or did not answer.
        """
        proto = await self._connection()
        try:
            return await proto.call((b"EVALSHA", script.sha, len(keys), *keys, *args))
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await proto.call((b"SCRIPT", b"LOAD", script.source))
        return await proto.call((b"EVALSHA", script.sha, len(keys), *keys, *args))

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class Script:
    """A Lua script and its SHA-1 (what ``EVALSHA`` names it by)."""

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()


__all__ = ["RedisReplyError", "Script", "ScriptConnection", "supports"]
