"""Fixtures of the preferences integration tests.

The broker, Redis and settings come from tests/conftest.py (``make_settings``); here: a fake
OpenAI-compatible model endpoint and a webhook receiver (external boundaries, real HTTP on
free loopback ports), the service running in-process with its Faust consumer, and Kafka
helpers that wait with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flywheel.db.engine import make_engine, migrate
from flywheel.events.codec import decode, encode
from flywheel.keys import create_key
from flywheel.services.preferences.app import create_app
from flywheel.services.preferences.settings import PreferencesSection, PreferencesSettings

DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThreadServer:
    """A Starlette app served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class FakeModel:
    """The fake endpoint's behaviour and what it was asked."""

    listing: list[dict[str, Any]] = field(default_factory=lambda: [
        {"id": "shop-assistant", "object": "model"},
        {"id": "shop-assistant:7", "object": "model", "role": "stable"},
        {"id": "shop-assistant:8", "object": "model", "role": "canary"},
    ])
    answer: Callable[[dict[str, Any], int], str] = lambda body, n: f"Second answer number {n}."
    status: int = 200
    requests: list[dict[str, Any]] = field(default_factory=list)


def fake_openai_app(model: FakeModel) -> Starlette:
    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": model.listing})

    async def completions(request: Request) -> Response:
        body = await request.json()
        model.requests.append(body)
        if model.status != 200:
            return JSONResponse({"error": {"message": "down"}}, status_code=model.status)
        text = model.answer(body, len(model.requests))
        return JSONResponse({
            "id": f"chatcmpl-{len(model.requests)}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    return Starlette(routes=[Route("/v1/models", models),
                             Route("/v1/chat/completions", completions, methods=["POST"])])


@dataclass
class WebhookLog:
    """Deliveries the receiver got, and the statuses it answers with (last one repeats)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    calls: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)


def webhook_app(log: WebhookLog) -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        log.calls.append((time.time(), dict(request.headers), body))
        index = min(len(log.calls) - 1, len(log.statuses) - 1)
        return Response(status_code=log.statuses[index])

    return Starlette(routes=[Route("/hook", receive, methods=["POST"])])


@pytest.fixture
def fake_model() -> Iterator[tuple[FakeModel, str]]:
    model = FakeModel()
    with ThreadServer(fake_openai_app(model)) as server:
        yield model, f"{server.url}/v1"


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[WebhookLog, str]]:
    log = WebhookLog()
    with ThreadServer(webhook_app(log)) as server:
        yield log, f"{server.url}/hook"


@pytest.fixture
def pref_settings(make_settings, fake_model) -> Callable[..., PreferencesSettings]:  # noqa: ANN001
    """Settings factory: the shared test settings plus a preferences section."""
    _, base_url = fake_model

    def build(**section: Any) -> PreferencesSettings:
        base = make_settings()
        values = {"model_base_url": base_url, "webhook_backoff_s": 0.2,
                  "webhook_backoff_max_s": 2.0, "webhook_poll_s": 0.05, "daily_budget": 5,
                  "models_cache_s": 0.0, **section}
        settings = PreferencesSettings(**{**base.model_dump(), "service_name": "preferences"},
                                       preferences=PreferencesSection(**values))
        migrate(settings.database())
        return settings

    return build


@dataclass
class Running:
    """The service under test: its settings, an HTTP client and an app API key."""

    settings: PreferencesSettings
    client: httpx.AsyncClient
    app: Any
    app_id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def service(self) -> Any:
        return self.app.state.service


@pytest.fixture
async def start_service() -> AsyncIterator[Callable[..., Any]]:
    """Start the app (lifespan: Kafka producer, Redis, webhook loop, Faust consumer)."""
    stack: list[Any] = []

    async def start(settings: PreferencesSettings, app_name: str = "shop") -> Running:
        engine = make_engine(settings.database())
        created = await asyncio.to_thread(create_key, engine, app_name)
        engine.dispose()
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pref")
        stack.append(client)
        return Running(settings, client, app, created.app_id, created.plain)

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


# -- Kafka helpers ----------------------------------------------------------------------------


async def produce(settings: PreferencesSettings, topic: str, key: str, event: Any) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic(topic), encode(event), key=key.encode())
    finally:
        await producer.stop()


async def consume(settings: PreferencesSettings, topic: str, event_type: str, count: int,
                  deadline_s: float = DEADLINE_S) -> list[Any]:
    """The first ``count`` events on ``topic`` (from the beginning), within a deadline."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka(),
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                group_id=None)
    await consumer.start()
    events: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while len(events) < count and loop.time() < end:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                events.extend(decode(r.value, event_type) for r in records)
    finally:
        await consumer.stop()
    assert len(events) >= count, f"{len(events)}/{count} events on {topic} in {deadline_s}s"
    return events


async def eventually(check: Callable[[], Any], deadline_s: float = DEADLINE_S,
                     interval_s: float = 0.1) -> Any:
    """Await ``check()`` (sync or async) until it returns a truthy value or the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not met within {deadline_s}s")
        await asyncio.sleep(interval_s)


def body_json(raw: bytes) -> dict[str, Any]:
    return json.loads(raw.decode())


@pytest.fixture
def io() -> Any:
    """The Kafka and waiting helpers above, for test modules (conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(produce=produce, consume=consume, eventually=eventually,
                           body_json=body_json)
