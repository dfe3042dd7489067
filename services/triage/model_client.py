"""Sampling k answers from the current model over any OpenAI-compatible endpoint.

The endpoint is optional equipment: when it is down, slow or missing, triage routes on the other
signals and marks the item ``model_unavailable``. A circuit breaker keeps a dead endpoint from
costing a timeout per item: after a failure no request is sent for ``cooldown_s``, then one
probe decides whether to close it again. Requests run in background tasks with bounded
concurrency (:class:`SamplingPool`), so the stream never waits for the model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from flywheel.logging import get_logger
from flywheel.services.triage.logic.uncertainty import parse_answers, sampling_request

log = get_logger(__name__)


class CircuitBreaker:
    """Closed: requests flow. Open: fail fast until ``cooldown_s`` passed, then half-open."""

    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.open_until = 0.0
        self.failures = 0
        self._probing = False

    def allow(self) -> bool:
        if self.failures == 0:
            return True
        if self.clock() < self.open_until or self._probing:
            return False
        self._probing = True  # half-open: let exactly one request through
        return True

    def is_open(self) -> bool:
        """True while requests would be refused (no side effect, unlike :meth:`allow`)."""
        return self.failures > 0 and (self.clock() < self.open_until or self._probing)

    def success(self) -> None:
        self.failures = 0
        self._probing = False

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        self.open_until = self.clock() + self.cooldown_s


@dataclass(frozen=True)
class SamplerConfig:
    url: str
    model: str
    k: int
    timeout_s: float
    temperature: float
    max_tokens: int
    api_key: str = ""


class ModelSampler:
    """Asks the endpoint for k answers to a trace's prompt; ``None`` means unavailable."""

    def __init__(self, cfg: SamplerConfig, breaker: CircuitBreaker,
                 client: httpx.AsyncClient | None = None) -> None:
        self.cfg = cfg
        self.breaker = breaker
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        self.client = client or httpx.AsyncClient(timeout=cfg.timeout_s, headers=headers)
        self.calls = {"ok": 0, "failed": 0, "skipped": 0}

    async def sample(self, trace) -> list[str] | None:
        if not self.breaker.allow():
            self.calls["skipped"] += 1
            return None
        body = sampling_request(trace, self.cfg.k, self.cfg.model, self.cfg.temperature,
                                self.cfg.max_tokens)
        try:
            answers = await self._complete(body)
            if 0 < len(answers) < self.cfg.k:
                # Servers that ignore ``n`` answer once: ask for the rest one by one.
                extra = await asyncio.gather(*[self._complete({**body, "n": 1})
                                               for _ in range(self.cfg.k - len(answers))])
                answers += [a for batch in extra for a in batch]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.breaker.failure()
            self.calls["failed"] += 1
            log.warning("model_call_failed", error=type(exc).__name__, url=self.cfg.url)
            return None
        self.breaker.success()
        self.calls["ok"] += 1
        return answers or None

    async def _complete(self, body: dict) -> list[str]:
        resp = await self.client.post(f"{self.cfg.url}/chat/completions", json=body)
        resp.raise_for_status()
        return parse_answers(resp.json())

    async def aclose(self) -> None:
        await self.client.aclose()


class SamplingPool:
    """Runs sampling in the background: submit now, collect the finished ones on a later tick."""

    def __init__(self, sampler: ModelSampler | None, concurrency: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.sampler = sampler
        self.clock = clock
        self._sem = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task] = {}
        self._started: dict[str, float] = {}
        self._done: dict[str, list[str] | None] = {}

    @property
    def enabled(self) -> bool:
        return self.sampler is not None

    def __contains__(self, trace_id: str) -> bool:
        return trace_id in self._tasks or trace_id in self._done

    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, trace_id: str, trace) -> bool:
        """Start sampling for a trace; False when the model is known to be unavailable."""
        if self.sampler is None or trace_id in self:
            return False
        if self.sampler.breaker.is_open():
            return False
        self._started[trace_id] = self.clock()
        self._tasks[trace_id] = asyncio.ensure_future(self._run(trace_id, trace))
        return True

    async def _run(self, trace_id: str, trace) -> None:
        try:
            async with self._sem:
                answers = await self.sampler.sample(trace)
        except Exception:  # noqa: BLE001 - a sampling bug must not stall triage
            log.exception("sampling_crashed", trace_id=trace_id)
            answers = None
        self._done[trace_id] = answers
        self._tasks.pop(trace_id, None)

    def collect(self, deadline_s: float) -> dict[str, list[str] | None]:
        """Finished results, plus ``None`` for items that waited longer than ``deadline_s``."""
        out = dict(self._done)
        self._done.clear()
        now = self.clock()
        for trace_id, started in list(self._started.items()):
            if trace_id in out:
                del self._started[trace_id]
            elif now - started > deadline_s:
                task = self._tasks.pop(trace_id, None)
                if task is not None:
                    task.cancel()
                del self._started[trace_id]
                out[trace_id] = None
        return out

    def forget(self, trace_ids) -> None:
        """Drop work for traces this worker no longer owns."""
        for trace_id in trace_ids:
            task = self._tasks.pop(trace_id, None)
            if task is not None:
                task.cancel()
            self._started.pop(trace_id, None)
            self._done.pop(trace_id, None)

    async def aclose(self) -> None:
        self.forget(list(self._tasks))
        if self.sampler is not None:
            await self.sampler.aclose()
