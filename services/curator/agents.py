"""The curator's Faust agents: decode, hand to the Curator, dead-letter what cannot be read.

Each agent reads one registry topic as raw bytes. Undecodable messages go to the deadletter
topic with their coordinates and the error; unexpected errors are logged with the offset and
re-raised, so the offset does not advance past a message that was not handled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from google.protobuf.message import Message

from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode, encode
from flywheel.kafka.deadletter import attempt_from_headers, build_dead_letter
from flywheel.kafka.faust_app import registry_topic
from flywheel.logging import get_logger
from flywheel.services.curator.logic.examples import Coordinates
from flywheel.services.curator.service import Curator
from flywheel.services.curator.settings import SERVICE
from flywheel.settings import Settings
from flywheel.v1.annotation_pb2 import AnnotationLabel, AnnotationTask
from flywheel.v1.pipeline_pb2 import DeadLetter
from flywheel.v1.preference_pb2 import PreferenceAnswer
from flywheel.v1.triage_pb2 import TriageDecision

log = get_logger(__name__)

Handler = Callable[[Any, Coordinates], Awaitable[None]]
SendRaw = Callable[[str, str, bytes], Awaitable[None]]


def dead_letter(event: Any, exc: Exception, coords: Coordinates) -> DeadLetter:
    """The dead letter for a message that could not be decoded (stable id per record)."""
    return build_dead_letter(service=SERVICE, source_topic=coords.topic,
                             partition=coords.partition, offset=coords.offset,
                             key=event.key, value=event.value, error=exc,
                             attempt=attempt_from_headers(getattr(event, "headers", None)))


async def handle_event(event: Any, cls: type[Message], handler: Handler, send: SendRaw) -> None:
    """Decode one record and pass it on; dead-letter it when it is not a ``cls`` event."""
    msg = event.message
    coords = Coordinates(msg.topic, msg.partition, msg.offset)
    try:
        decoded = decode(event.value, cls)
    except EventDecodeError as exc:
        letter = dead_letter(event, exc, coords)
        await send("deadletter", letter.envelope.event_id, encode(letter))
        log.warning("message_deadlettered", topic=coords.topic, partition=coords.partition,
                    offset=coords.offset, error=type(exc).__name__)
        return
    try:
        await handler(decoded, coords)
    except Exception:
        log.exception("handler_failed", topic=coords.topic, partition=coords.partition,
                      offset=coords.offset)
        raise


def register_agents(app: faust.App, settings: Settings, curator: Curator, send: SendRaw) -> None:
    """One agent per input topic."""
    inputs: list[tuple[str, type[Message], Handler]] = [
        ("traces.triaged", TriageDecision, curator.on_decision),
        ("annotation.tasks", AnnotationTask, curator.on_task),
        ("annotation.labels", AnnotationLabel, curator.on_label),
        ("preference.answers", PreferenceAnswer, curator.on_preference),
    ]
    for short, cls, handler in inputs:
        _register(app, registry_topic(app, settings, short), short, cls, handler, send)


def _register(app: faust.App, topic: Any, short: str, cls: type[Message], handler: Handler,
              send: SendRaw) -> None:
    async def agent(stream: Any) -> None:
        async for event in stream.events():
            await handle_event(event, cls, handler, send)

    agent.__name__ = agent.__qualname__ = f"curate_{short.replace('.', '_')}"
    app.agent(topic, name=f"{SERVICE}.{short}")(agent)
