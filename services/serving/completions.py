"""Chat completions: prepare a request, run it on the scheduler, shape the OpenAI answer.

The API handlers stay thin: they call ``prepare`` and then ``complete`` or ``stream``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flywheel.logging import get_logger
from flywheel.ml.ort_runtime import Generation, GenerationError, RowSpec, SamplingParams, TokenEvent

from . import logic
from .errors import InvalidRequest, ModelNotReady, ServingError
from .metrics import ServingMetrics
from .model_manager import ModelHandle, ModelManager
from .ports import ServedConversation, TraceSink
from .scheduler import DONE, BatchScheduler, Job
from .schemas import ChatCompletionRequest
from .settings import ServingSettings

log = get_logger(__name__)


@dataclass
class ServingRuntime:
    """What the lifespan builds and the handlers use (``app.state.runtime``)."""

    settings: ServingSettings
    manager: ModelManager
    scheduler: BatchScheduler
    metrics: ServingMetrics
    trace_sink: TraceSink | None = None


@dataclass
class Prepared:
    """A validated request bound to the model handle that will answer it."""

    request_id: str
    body: ChatCompletionRequest
    handle: ModelHandle
    messages: list[dict[str, Any]]
    prompt_ids: list[int]
    params: SamplingParams
    n: int
    started_at: datetime
    t0: float

    @property
    def model(self) -> str:
        return self.handle.model_id

    @property
    def show_logprobs(self) -> bool:
        return bool(self.body.logprobs)


def prepare(runtime: ServingRuntime, body: ChatCompletionRequest, request_id: str) -> Prepared:
    """Pick the model, check parameters and render the prompt.

    Raises:
        ServingError: unknown model, nothing loaded, or invalid parameters.
    """
    cfg = runtime.settings.serving
    handle = runtime.manager.pick(body.user, request_id, logic.pinned_version(body.model, cfg.model_line))
    raw = body.model_dump(exclude_none=True)
    if raw.get("top_p") == 0.0:
        raw["top_p"] = 1e-6  # OpenAI allows 0: keep only the most likely token
    try:
        params, n = logic.sampling_params(raw, cfg.default_max_tokens, cfg.max_tokens_limit, cfg.max_n)
    except GenerationError as exc:
        raise InvalidRequest(str(exc)) from None
    try:
        messages = logic.normalise_messages(raw["messages"])
        prompt_ids = handle.generator.render_chat(messages, body.tools)
        handle.generator.check_row(RowSpec(prompt_ids, params))
    except GenerationError as exc:
        raise InvalidRequest(str(exc), param="messages") from None
    return Prepared(request_id, body, handle, messages, prompt_ids, params, n,
                    datetime.now(UTC), time.perf_counter())


def _submit(runtime: ServingRuntime, prep: Prepared) -> tuple[Job, asyncio.Queue]:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def emit(item: TokenEvent | BaseException | None) -> None:
        loop.call_soon_threadsafe(events.put_nowait, item)

    rows = [RowSpec(prep.prompt_ids, prep.params, 0, c) for c in range(prep.n)]
    job = Job(prep.handle, rows, emit)
    try:
        runtime.scheduler.submit(job)
    except GenerationError as exc:  # the scheduler is stopping
        raise ModelNotReady(str(exc)) from None
    runtime.metrics.queue_depth.set(runtime.scheduler.depth)
    return job, events


async def _events(job: Job, events: asyncio.Queue) -> AsyncIterator[TokenEvent]:
    try:
        while (item := await events.get()) is not DONE:
            if isinstance(item, BaseException):
                raise ServingError(f"generation failed: {item}")
            yield item
    finally:
        job.cancelled.set()  # no-op when finished; frees the rows when the client went away


async def complete(runtime: ServingRuntime, prep: Prepared) -> dict[str, Any]:
    """Run a non-streaming request and return the ``chat.completion`` body."""
    job, events = _submit(runtime, prep)
    try:
        generations = [e.generation async for e in _events(job, events) if e.generation is not None]
    except ServingError as exc:
        _record(runtime, prep, [], "error", stream=False, error=exc.message)
        raise
    finally:
        job.cancelled.set()  # frees the rows at once if this handler was cancelled mid-way
    generations.sort(key=lambda g: g.choice_index)
    choices = [
        logic.choice_body(g, prep.request_id, prep.show_logprobs, prep.params.top_logprobs,
                          parse_tools=bool(prep.body.tools))
        for g in generations
    ]
    usage = logic.usage(len(prep.prompt_ids), generations)
    _record(runtime, prep, generations, "ok", stream=False, choices=choices)
    return logic.completion_body(prep.request_id, int(time.time()), prep.model, choices, usage)


def stream(runtime: ServingRuntime, prep: Prepared) -> AsyncIterator[bytes]:
    """Queue a streaming request now (errors surface before any byte is sent) and return its
    server-sent events: OpenAI ``chat.completion.chunk`` objects, then ``[DONE]``.
    """
    job, events = _submit(runtime, prep)
    return _stream_events(runtime, prep, job, events)


async def _stream_events(runtime: ServingRuntime, prep: Prepared, job: Job,
                         events: asyncio.Queue) -> AsyncIterator[bytes]:
    created, rid, model = int(time.time()), prep.request_id, prep.model
    yield logic.sse(logic.chunk_body(rid, created, model, [
        logic.chunk_choice(c, {"role": "assistant", "content": ""}) for c in range(prep.n)
    ]))
    generations: list[Generation] = []
    first = True
    try:
        async for event in _events(job, events):
            if first:
                runtime.metrics.first_token.labels(prep.handle.version).observe(time.perf_counter() - prep.t0)
                first = False
            for chunk in _event_chunks(prep, event, created):
                yield logic.sse(chunk)
            if event.generation is not None:
                generations.append(event.generation)
    except ServingError as exc:
        _record(runtime, prep, generations, "error", stream=True, error=exc.message)
        yield logic.sse(logic.error_body(exc.message, exc.type, exc.code))
        return
    finally:
        job.cancelled.set()  # the client went away (generator closed) or we are done
    if prep.body.stream_options is not None and prep.body.stream_options.include_usage:
        usage = logic.usage(len(prep.prompt_ids), generations)
        yield logic.sse(logic.chunk_body(rid, created, model, [], usage))
    yield logic.sse("[DONE]")
    generations.sort(key=lambda g: g.choice_index)
    _record(runtime, prep, generations, "ok", stream=True)


def _event_chunks(prep: Prepared, event: TokenEvent, created: int) -> list[dict[str, Any]]:
    chunks = []
    entries = None
    if prep.show_logprobs and event.logprob is not None:
        entries = logic.logprob_entries([event.logprob], prep.params.top_logprobs)
    if event.text or entries:
        choice = logic.chunk_choice(event.choice_index, {"content": event.text}, None, entries)
        chunks.append(logic.chunk_body(prep.request_id, created, prep.model, [choice]))
    if event.finish_reason is not None:
        reason = event.finish_reason if event.finish_reason in ("stop", "length") else "stop"
        choice = logic.chunk_choice(event.choice_index, {}, reason)
        chunks.append(logic.chunk_body(prep.request_id, created, prep.model, [choice]))
    return chunks


def _record(runtime: ServingRuntime, prep: Prepared, generations: list[Generation], status: str,
            *, stream: bool, choices: list[dict[str, Any]] | None = None,
            error: str | None = None) -> None:
    """Metrics, one log line and the trace for a finished request."""
    version = prep.handle.version
    latency = time.perf_counter() - prep.t0
    m = runtime.metrics
    m.requests.labels(version, status, str(stream).lower()).inc()
    m.latency.labels(version).observe(latency)
    m.prompt_tokens.labels(version).inc(len(prep.prompt_ids))
    m.completion_tokens.labels(version).inc(sum(len(g.token_ids) for g in generations))
    log.info("chat_completion", request_id=prep.request_id, version=version, status=status,
             stream=stream, n=prep.n, prompt_tokens=len(prep.prompt_ids),
             completion_tokens=sum(len(g.token_ids) for g in generations),
             latency_ms=round(latency * 1000, 1))
    if runtime.trace_sink is not None:
        # Failed requests are traced too (without an answer), so the error rate per version
        # is a live signal the release controller sees.
        _send_trace(runtime, prep, [] if status != "ok" else generations, choices, stream,
                    latency, error=None if status == "ok" else (error or "server error"))


def _send_trace(runtime: ServingRuntime, prep: Prepared, generations: list[Generation],
                choices: list[dict[str, Any]] | None, stream: bool, latency: float,
                error: str | None = None) -> None:
    if error is not None:
        choices = []
    elif choices is None:
        choices = [logic.choice_body(g, prep.request_id, False, 0, bool(prep.body.tools)) for g in generations]
    trace_choices = [
        {"index": c["index"], "message": c["message"], "finish_reason": c["finish_reason"],
         "logprob_stats": logic.logprob_stats(g.logprobs)}
        for c, g in zip(choices, generations, strict=True)
    ]
    p = prep.params
    conversation = ServedConversation(
        request_id=prep.request_id, model_line=prep.handle.line, model_version=prep.handle.version,
        user=prep.body.user, messages=prep.messages, choices=trace_choices,
        params={"temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_new_tokens,
                "n": prep.n, "seed": p.seed, "stop": list(p.stop)},
        usage=logic.usage(len(prep.prompt_ids), generations), started_at=prep.started_at,
        latency_ms=latency * 1000, stream=stream, tools=prep.body.tools,
        metadata=dict(prep.body.metadata or {}), error=error,
    )
    try:
        runtime.trace_sink(conversation)
    except Exception as exc:  # a failing sink must never fail a served request
        runtime.metrics.trace_sink_errors.inc()
        log.error("trace_sink_failed", request_id=prep.request_id, error=str(exc))
