"""Faust agents of the annotation service.

* ``annotation.tasks`` -> stored task, offered to people (or handed to the judge/teacher).
* ``traces.triaged`` (only with a judge and ``judge_triaged``) -> judge ratings of the traces
  triage routed to the judge (``ROUTE_JUDGE``); other routes are skipped.

Undecodable or incomplete records go to the dead-letter topic with their offset; unexpected
errors are logged and re-raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import faust

from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode
from flywheel.kafka.deadletter import HeadersArg
from flywheel.kafka.faust_app import registry_topic
from flywheel.logging import get_logger
from flywheel.settings import Settings
from flywheel.v1 import triage_pb2
from flywheel.v1.annotation_pb2 import AnnotationTask

from .errors import InvalidEvent, LLMUnavailable
from .events import Publisher, dead_letter
from .service import AnnotationService

log = get_logger(__name__)

Handler = Callable[[bytes], Awaitable[str]]


async def handle_record(handler: Handler, publisher: Publisher, topic: str, partition: int,
                        offset: int, key: bytes | None, value: bytes,
                        headers: HeadersArg = None) -> str:
    """Run ``handler`` on one record; dead-letter what cannot be processed."""
    try:
        return await handler(value)
    except (EventDecodeError, InvalidEvent, LLMUnavailable) as exc:
        letter = dead_letter(topic, partition, offset, key, value, exc, headers)
        await publisher.publish("deadletter", letter.envelope.event_id, letter)
        log.warning("record_deadlettered", topic=topic, partition=partition, offset=offset,
                    error=type(exc).__name__)
        return "deadlettered"
    except Exception:
        log.exception("record_failed", topic=topic, partition=partition, offset=offset)
        raise


def task_handler(service: AnnotationService) -> Handler:
    async def handle(value: bytes) -> str:
        return await service.ingest(decode(value, AnnotationTask))

    return handle


def triaged_handler(service: AnnotationService) -> Handler:
    async def handle(value: bytes) -> str:
        decision = decode(value, triage_pb2.TriageDecision)
        if decision.route != triage_pb2.ROUTE_JUDGE:
            return "skipped"
        return await service.automation.judge_triaged(decision)

    return handle


def register_agents(app: faust.App, settings: Settings, service: AnnotationService,
                    publisher: Publisher, *, judge_triaged: bool) -> None:
    """Register the agents on ``app``."""
    routes = [("annotation.tasks", task_handler(service), 1)]
    if judge_triaged:
        routes.append(("traces.triaged", triaged_handler(service), 4))
    for short, handler, concurrency in routes:
        _register(app, settings, short, handler, publisher, concurrency)


def _register(app: faust.App, settings: Settings, short: str, handler: Handler,
              publisher: Publisher, concurrency: int) -> None:
    topic = registry_topic(app, settings, short)

    async def agent(stream):  # noqa: ANN001, ANN202
        async for event in stream.events():
            m = event.message
            await handle_record(handler, publisher, m.topic, m.partition, m.offset, m.key, m.value,
                                m.headers)

    app.agent(topic, name=short.replace(".", "_"), concurrency=concurrency)(agent)
