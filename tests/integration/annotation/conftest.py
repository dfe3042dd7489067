"""Fixtures of the annotation integration tests.

The broker, Redis and settings come from tests/conftest.py (``make_settings``); here: a fake
OpenAI-compatible endpoint playing judge and teacher (an external boundary, real HTTP on a
free loopback port), the service running in-process with its Faust consumer, accounts with
API tokens, task factories and Kafka helpers that wait with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
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
from flywheel.events.envelope import stamp
from flywheel.services.annotation import auth
from flywheel.services.annotation.app import create_app
from flywheel.services.annotation.settings import AnnotationSection, AnnotationSettings
from flywheel.v1 import annotation_pb2
from flywheel.v1.annotation_pb2 import AnnotationTask

DEADLINE_S = 60.0
JUDGE_MODEL = "qwen-judge"
TEACHER_MODEL = "llama-teacher"
PASSWORD = "correct horse battery"


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


def _final_answer(user: str) -> str:
    match = re.search(r"Final answer:\n(.*?)\n\nRate", user, re.DOTALL)
    return match.group(1) if match else ""


@dataclass
class FakeLLM:
    """Scripted judge and teacher. ``rate`` maps the final answer text to a 0-4 rating."""

    rate: Callable[[str], int] = lambda answer: 4 if "shipped" in answer else 1
    choice: str = "A"
    teacher_answer: str = "Order 4411 has shipped and arrives within 3 business days."
    calls: list[dict[str, Any]] = field(default_factory=list)

    def reply(self, body: dict[str, Any]) -> str:
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        if body["model"] == TEACHER_MODEL:
            return self.teacher_answer
        if "Answer A:" in user:
            return json.dumps({"reasons": "A is correct", "choice": self.choice})
        if "Agent steps and outcome" in user:
            source = "system" if "Timeout" in user else "model"
            return f'Sure. {{"reason": "see steps", "failure_source": "{source}", "failure_kind": "x_y"}}'
        rating = self.rate(_final_answer(user))
        return f'```json\n{{"reason": "scripted ({system[:10]})", "rating": {rating}}}\n```'


def fake_llm_app(llm: FakeLLM) -> Starlette:
    async def completions(request: Request) -> Response:
        body = await request.json()
        llm.calls.append(body)
        return JSONResponse({"id": "x", "object": "chat.completion", "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant",
                                                      "content": llm.reply(body)}}]})

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture
def fake_llm() -> Iterator[tuple[FakeLLM, str]]:
    llm = FakeLLM()
    with ThreadServer(fake_llm_app(llm)) as server:
        yield llm, f"http://127.0.0.1:{server.port}/v1"


@pytest.fixture
def ann_settings(make_settings, fake_llm) -> Callable[..., AnnotationSettings]:  # noqa: ANN001
    """Settings factory: the shared test settings plus an annotation section.

    ``judge=True`` / ``teacher=True`` point the judge / teacher at the fake endpoint.
    """
    _, base_url = fake_llm

    def build(*, judge: bool = False, teacher: bool = False, **section: Any) -> AnnotationSettings:
        base = make_settings()
        values: dict[str, Any] = {"calibration_rate": 0.0, **section}
        if judge:
            values.update(judge_base_url=base_url, judge_model=JUDGE_MODEL)
        if teacher:
            values.update(teacher_base_url=base_url, teacher_model=TEACHER_MODEL)
        settings = AnnotationSettings(**{**base.model_dump(), "service_name": "annotation"},
                                      annotation=AnnotationSection(**values))
        migrate(settings.database())
        return settings

    return build


@dataclass
class Annotator:
    username: str
    role: str
    token: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def claim(self, kind: str | None = None) -> httpx.Response:
        params = {"kind": kind} if kind else {}
        return await self.client.post("/v1/tasks/claim", params=params, headers=self.auth)

    async def label(self, task_id: str, **body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/tasks/{task_id}/labels", json=body, headers=self.auth)


@dataclass
class Running:
    settings: AnnotationSettings
    app: Any
    client: httpx.AsyncClient

    @property
    def service(self) -> Any:
        return self.app.state.service

    async def annotator(self, username: str, role: str = "annotator") -> Annotator:
        engine = self.service.engine
        await asyncio.to_thread(auth.create_annotator, engine, username, PASSWORD, role)
        token = await asyncio.to_thread(auth.create_token, engine, username, "tests")
        return Annotator(username, role, token, self.client)


@pytest.fixture
async def start_annotation() -> AsyncIterator[Callable[..., Any]]:
    """Start the app (lifespan: producer, Redis, queue rebuild, Faust consumer)."""
    stack: list[Any] = []

    async def start(settings: AnnotationSettings) -> Running:
        app = create_app(settings)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ann")
        stack.append(client)
        return Running(settings, app, client)

    yield start
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


# -- events -----------------------------------------------------------------------------------

KIND_ENUM = {"rate": annotation_pb2.ANNOTATION_KIND_RATE,
             "correct": annotation_pb2.ANNOTATION_KIND_CORRECT,
             "pairwise": annotation_pb2.ANNOTATION_KIND_PAIRWISE,
             "classify_failure": annotation_pb2.ANNOTATION_KIND_CLASSIFY_FAILURE}


def task_event(kind: str = "rate", *, priority: float = 0.5, required: int = 1,
               reasons: tuple[str, ...] = ("high disagreement over k=5 samples",),
               answer: str = "Order 4411 has shipped and arrives within 3 business days.",
               intent: str = "order_status", task_id: str | None = None) -> AnnotationTask:
    trace_id = f"tr_{uuid.uuid4().hex[:12]}"
    event = AnnotationTask(task_id=task_id or f"at_{uuid.uuid4().hex[:12]}", trace_id=trace_id,
                           decision_id=f"td_{uuid.uuid4().hex[:8]}", kind=KIND_ENUM[kind],
                           priority=priority, required_annotators=required, intent=intent)
    event.reasons.extend(reasons)
    trace = event.trace
    trace.trace_id, trace.app_id, trace.user_id = trace_id, "shop", "u_1"
    trace.model.name, trace.model.version = "shop-assistant", "7"
    trace.messages.add(role="system", content="You are the support assistant.")
    trace.messages.add(role="user", content="Where is my order 4411?")
    trace.messages.add(role="assistant", content=answer)
    if kind == "pairwise":
        for text, version in ((answer, "7"), ("I am not sure, please contact support.", "8")):
            cand = event.candidates.add(answer_id=f"ans_{version}")
            cand.messages.add(role="assistant", content=text)
            cand.model.name, cand.model.version = "shop-assistant", version
    if kind == "classify_failure":
        step = trace.steps.add(step_id="s1", kind=3, name="lookup_order", status=3)
        step.error.type, step.error.message = "TimeoutError", "orders-api did not answer"
    return stamp(event, "triage", app_id="shop")


async def produce(settings: AnnotationSettings, topic: str, events: list[tuple[str, Any]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka(), acks="all")
    await producer.start()
    try:
        for key, event in events:
            value = event if isinstance(event, bytes) else encode(event)
            await producer.send_and_wait(settings.topic(topic), value, key=key.encode())
    finally:
        await producer.stop()


async def produce_tasks(settings: AnnotationSettings, events: list[AnnotationTask]) -> None:
    await produce(settings, "annotation.tasks", [(e.task_id, e) for e in events])


async def consume(settings: AnnotationSettings, topic: str, event_type: str, count: int,
                  deadline_s: float = DEADLINE_S) -> list[Any]:
    """At least ``count`` events from the beginning of ``topic`` (all read until then)."""
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


async def wait_ingested(running: Running, count: int) -> None:
    await eventually(lambda: sum(running.service.outcomes.values()) >= count)


@pytest.fixture
def io() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable)."""
    return SimpleNamespace(task_event=task_event, produce=produce, produce_tasks=produce_tasks,
                           consume=consume, eventually=eventually, wait_ingested=wait_ingested,
                           PASSWORD=PASSWORD, JUDGE_MODEL=JUDGE_MODEL, TEACHER_MODEL=TEACHER_MODEL)


@pytest.fixture
def engine_for() -> Callable[[AnnotationSettings], Any]:
    return lambda settings: make_engine(settings.database())
