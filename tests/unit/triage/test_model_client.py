"""The OpenAI-compatible sampler, its circuit breaker and the background sampling pool."""

from __future__ import annotations

import asyncio
import json
import random

import httpx

from flywheel.services.triage import samples
from flywheel.services.triage.model_client import (
    CircuitBreaker,
    ModelSampler,
    SamplerConfig,
    SamplingPool,
)

CFG = SamplerConfig("http://model.test/v1", "tiny", 3, 1.0, 0.8, 32)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _client(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=1.0)


def _reply(*texts: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": t}}
                                                 for t in texts]})


def test_breaker_opens_and_probes() -> None:
    clock = Clock()
    b = CircuitBreaker(10.0, clock)
    assert b.allow() and not b.is_open()
    b.failure()
    assert b.is_open() and not b.allow()
    clock.t = 11.0
    assert not b.is_open()
    assert b.allow() and not b.allow()  # one probe only
    b.success()
    assert b.allow()


async def test_sample_asks_for_k_answers() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        assert request.url.path == "/v1/chat/completions"
        return _reply("a", "b", "a")

    sampler = ModelSampler(CFG, CircuitBreaker(5), _client(handler))
    answers = await sampler.sample(samples.chat_trace(random.Random(1)))
    assert answers == ["a", "b", "a"] and seen[0]["n"] == 3 and seen[0]["model"] == "tiny"
    assert seen[0]["messages"][-1]["role"] == "user"


async def test_servers_that_ignore_n_are_asked_again() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content)["n"])
        return _reply("x")

    sampler = ModelSampler(CFG, CircuitBreaker(5), _client(handler))
    assert await sampler.sample(samples.chat_trace(random.Random(1))) == ["x", "x", "x"]
    assert calls == [3, 1, 1]


async def test_failure_opens_the_breaker_and_skips() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503)

    clock = Clock()
    sampler = ModelSampler(CFG, CircuitBreaker(30, clock), _client(handler))
    trace = samples.chat_trace(random.Random(1))
    assert await sampler.sample(trace) is None
    assert await sampler.sample(trace) is None
    assert len(calls) == 1 and sampler.calls == {"ok": 0, "failed": 1, "skipped": 1}


async def test_connection_refused_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    sampler = ModelSampler(CFG, CircuitBreaker(30), _client(handler))
    assert await sampler.sample(samples.chat_trace(random.Random(1))) is None


async def test_pool_collects_results_and_enforces_the_deadline() -> None:
    release = asyncio.Event()

    class Sampler:
        breaker = CircuitBreaker(5)

        async def sample(self, trace):
            if trace.trace_id == "slow":
                await release.wait()
            return ["a"]

        async def aclose(self):
            return None

    clock = Clock()
    pool = SamplingPool(Sampler(), 2, clock=clock)
    rng = random.Random(1)
    assert pool.submit("fast", samples.chat_trace(rng, "fast"))
    assert pool.submit("slow", samples.chat_trace(rng, "slow"))
    assert not pool.submit("fast", samples.chat_trace(rng, "fast"))
    await asyncio.sleep(0.01)
    assert pool.collect(10) == {"fast": ["a"]}
    clock.t = 11
    assert pool.collect(10) == {"slow": None}
    assert pool.in_flight() == 0
    await pool.aclose()


async def test_pool_refuses_while_the_breaker_is_open() -> None:
    class Sampler:
        breaker = CircuitBreaker(30)

    Sampler.breaker.failure()
    pool = SamplingPool(Sampler(), 2)
    assert not pool.submit("t", samples.chat_trace(random.Random(1), "t"))
    assert not SamplingPool(None, 1).enabled
