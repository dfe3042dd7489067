"""The Faust agent of the preferences service: ``preference.requests`` -> pending requests.

Each record is decoded, handed to :class:`PreferencesService` and acknowledged. Records that
cannot become a question (undecodable, missing fields, model endpoint down after retries) go
to the dead-letter topic with their offset; unexpected errors are logged and re-raised.
"""

from __future__ import annotations

import faust

from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode
from flywheel.kafka.deadletter import HeadersArg
from flywheel.kafka.faust_app import registry_topic
from flywheel.logging import get_logger
from flywheel.settings import Settings
from flywheel.v1.preference_pb2 import PreferenceRequest

from .errors import InvalidEvent, SecondAnswerUnavailable
from .events import Publisher, dead_letter
from .service import PreferencesService

log = get_logger(__name__)

DEAD_LETTER_ERRORS = (EventDecodeError, InvalidEvent, SecondAnswerUnavailable)


async def handle_record(service: PreferencesService, publisher: Publisher, topic: str,
                        partition: int, offset: int, key: bytes | None, value: bytes,
                        headers: HeadersArg = None) -> str:
    """Process one ``preference.requests`` record; return the outcome's name."""
    try:
        return await service.handle_request(decode(value, PreferenceRequest))
    except DEAD_LETTER_ERRORS as exc:
        letter = dead_letter(topic, partition, offset, key, value, exc, headers)
        await publisher.publish("deadletter", letter.envelope.event_id, letter)
        log.warning("preference_request_deadlettered", topic=topic, partition=partition,
                    offset=offset, error=type(exc).__name__)
        return "deadlettered"
    except Exception:
        log.exception("preference_request_failed", topic=topic, partition=partition, offset=offset)
        raise


def register_agents(app: faust.App, settings: Settings, service: PreferencesService,
                    publisher: Publisher, concurrency: int = 4) -> None:
    """Register the ``preference.requests`` agent on ``app``."""
    topic = registry_topic(app, settings, "preference.requests")

    @app.agent(topic, concurrency=concurrency, name="preference_requests")
    async def preference_requests(stream):  # noqa: ANN001, ANN202
        async for event in stream.events():
            message = event.message
            await handle_record(service, publisher, message.topic, message.partition,
                                message.offset, message.key, message.value, message.headers)
