"""The pipelined script connection against a real Redis: pipelining, NOSCRIPT, the database
of the URL, a dropped connection, and a server that never answers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from flywheel.services.gateway.resp import RedisReplyError, Script, ScriptConnection, supports

_ECHO = Script("redis.call('SET', KEYS[1], ARGV[1]) return {ARGV[1], redis.call('INCR', KEYS[2])}")


def test_pipelined_calls_get_their_own_replies_in_order(redis_url: str) -> None:
    async def scenario() -> None:
        conn = ScriptConnection(redis_url)
        counter = f"test:resp:{uuid.uuid4().hex}"
        try:
            replies = await asyncio.gather(*(conn.run(_ECHO, [f"{counter}:v{i}", counter], [f"value-{i}"])
                                             for i in range(200)))
        finally:
            await conn.close()
        assert [r[0] for r in replies] == [f"value-{i}".encode() for i in range(200)]
        assert sorted(r[1] for r in replies) == list(range(1, 201))

    asyncio.run(scenario())


def test_unknown_scripts_are_loaded_and_errors_raised(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)
    sync.script_flush()
    failing = Script("return redis.error_reply('NOPE bad input')")

    async def scenario() -> None:
        conn = ScriptConnection(redis_url)
        try:
            key = f"test:resp:{uuid.uuid4().hex}"
            assert (await conn.run(_ECHO, [key, key + ":n"], ["x"]))[0] == b"x"  # after NOSCRIPT
            with pytest.raises(RedisReplyError, match="NOPE"):
                await conn.run(failing, [], [])
            assert (await conn.run(_ECHO, [key, key + ":n"], ["y"]))[1] == 2  # still in step
        finally:
            await conn.close()

    asyncio.run(scenario())
    sync.close()


def test_the_urls_database_is_selected(redis_url: str) -> None:
    key = f"test:resp:{uuid.uuid4().hex}"

    async def scenario() -> None:
        conn = ScriptConnection(redis_url.rstrip("/").rsplit("/", 1)[0] + "/3"
                                if redis_url.count("/") > 2 else redis_url + "/3")
        try:
            await conn.run(_ECHO, [key, key + ":n"], ["in-db-3"])
        finally:
            await conn.close()

    asyncio.run(scenario())
    base = redis_url if redis_url.count("/") == 2 else redis_url.rsplit("/", 1)[0]
    assert redis.Redis.from_url(base + "/3").get(key) == b"in-db-3"
    assert redis.Redis.from_url(base + "/0").get(key) is None


def test_after_redis_drops_the_connection_the_next_call_reconnects(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        conn = ScriptConnection(redis_url)
        key = f"test:resp:{uuid.uuid4().hex}"
        try:
            await conn.run(_ECHO, [key, key + ":n"], ["a"])
            killed = await asyncio.to_thread(sync.client_kill_filter, _type="normal", skipme=True)
            assert killed >= 1
            await asyncio.sleep(0.2)
            assert (await conn.run(_ECHO, [key, key + ":n"], ["b"])) == [b"b", 2]
        finally:
            await conn.close()

    asyncio.run(scenario())
    sync.close()


def test_no_answer_within_the_timeout_fails_the_call() -> None:
    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = ScriptConnection(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(TimeoutError):
                await conn.run(_ECHO, ["k", "n"], ["x"])
            assert asyncio.get_running_loop().time() - started < 3
        finally:
            await conn.close()
            server.close()

    asyncio.run(scenario())


def test_only_plain_redis_urls_are_supported() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert not supports("rediss://example:6380/0")
    assert not supports("unix:///tmp/redis.sock")


def test_calls_fail_fast_while_redis_is_unreachable() -> None:
    from flywheel.stack.process import free_port

    async def scenario() -> None:
        conn = ScriptConnection(f"redis://127.0.0.1:{free_port()}/0", connect_timeout_s=2)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await asyncio.gather(*(conn.run(_ECHO, ["k", "n"], ["x"]) for _ in range(20)),
                                           return_exceptions=True)
            assert all(isinstance(r, (ConnectionError, OSError)) for r in results), results
            assert loop.time() - started < 1.5  # one refused attempt, the rest fail at once
        finally:
            await conn.close()

    asyncio.run(scenario())
