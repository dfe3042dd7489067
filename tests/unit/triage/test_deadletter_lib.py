"""The shared dead-letter builder and sender (flywheel.kafka.deadletter)."""

from __future__ import annotations

import asyncio

import pytest

from flywheel.events.codec import decode
from flywheel.kafka.deadletter import (
    ATTEMPT_HEADER,
    REPLAY_OF_HEADER,
    DeadLetterSender,
    attempt_from_headers,
    build_dead_letter,
    dead_letter_id,
    replay_headers,
)
from flywheel.settings import Settings


def test_build_dead_letter() -> None:
    dl = build_dead_letter(service="triage", source_topic="p.traces.raw.v1", partition=2, offset=41,
                           key=b"k", value=b"\xff", error=ValueError("bad bytes"), trace_id="t")
    assert dl.envelope.event_id == dead_letter_id("p.traces.raw.v1", 2, 41)
    assert (dl.error_type, dl.error_message, dl.attempt) == ("ValueError", "bad bytes", 1)
    assert dl.value == b"\xff" and dl.key == b"k" and dl.service == "triage"
    assert dl.envelope.event_type == "flywheel.v1.DeadLetter" and dl.failed_at.seconds > 0
    named = build_dead_letter(service="s", source_topic="t", partition=0, offset=0, key=None,
                              value=None, error_type="OrphanFeedback", error_message="x" * 5000)
    assert named.error_type == "OrphanFeedback" and len(named.error_message) == 2000


def test_ids_are_stable_per_record() -> None:
    assert dead_letter_id("t", 1, 2) == dead_letter_id("t", 1, 2) != dead_letter_id("t", 1, 3)


def test_attempts_count_up_through_replays() -> None:
    assert attempt_from_headers(None) == 1
    assert attempt_from_headers([(ATTEMPT_HEADER, b"1")]) == 2
    assert attempt_from_headers({ATTEMPT_HEADER: b"3"}) == 4
    assert attempt_from_headers([(ATTEMPT_HEADER, b"x")]) == 2
    dl = build_dead_letter(service="s", source_topic="t", partition=0, offset=5, key=b"",
                           value=b"", error_type="E", attempt=2)
    headers = dict(replay_headers(dl))
    assert headers[REPLAY_OF_HEADER] == dl.envelope.event_id.encode() and headers[ATTEMPT_HEADER] == b"2"


async def test_sender_uses_the_registry_topic() -> None:
    sent = []

    class Producer:
        async def send(self, topic, key, value, partition, timestamp, headers):
            sent.append((topic, key, value))
            fut = asyncio.get_running_loop().create_future()
            fut.set_result("ok")
            return fut

    settings = Settings(topic_prefix="pfx", kafka_bootstrap=None)
    sender = DeadLetterSender(settings, "triage", producer=Producer())
    fut = await sender.send_record(source_topic="pfx.traces.raw.v1", partition=1, offset=9, key=b"k",
                                   value=b"v", headers=[(ATTEMPT_HEADER, b"1")],
                                   error=RuntimeError("x"))
    assert await fut == "ok" and sender.sent == 1
    topic, key, value = sent[0]
    assert topic == "pfx.pipeline.deadletter.v1"
    dl = decode(value, "DeadLetter")
    assert key == dl.envelope.event_id.encode() and dl.attempt == 2


def test_sender_needs_a_producer_or_an_app() -> None:
    with pytest.raises(ValueError):
        DeadLetterSender(Settings(kafka_bootstrap=None), "s")
