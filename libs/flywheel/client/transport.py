"""How the SDK delivers a batch: to the gateway over HTTP (sync or async), or straight to Kafka.

A transport sends one batch of one kind and says what happened in a :class:`SendOutcome`;
the client decides what to do next (retry later, split, drop the invalid events).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from flywheel.events.codec import encode
from flywheel.events.envelope import new_envelope
from flywheel.v1 import feedback_pb2, trace_pb2

from .retry import RETRYABLE_STATUSES, parse_retry_after
from .wire import DELIMITED_PROTOBUF, FEEDBACK, TRACE, event_id_for, frame

OK, RETRY, TOO_LARGE, REJECTED, AUTH = "ok", "retry", "too_large", "rejected", "auth"
_PATHS = {TRACE: "/v1/traces", FEEDBACK: "/v1/feedback"}
_INDEX = re.compile(r"^\[(\d+)\]")
USER_AGENT = "flywheel-python-sdk/1"


@dataclass
class SendOutcome:
    """What became of one batch."""

    status: str
    retry_after_s: float | None = None
    message: str = ""
    bad_indexes: set[int] = field(default_factory=set)  # on REJECTED: the invalid events
    accepted: int = 0
    duplicates: int = 0
    http_status: int = 0


def outcome_of(status: int, headers: Any, body: bytes) -> SendOutcome:
    """Classify a gateway answer."""
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    message = data.get("message", "") if isinstance(data, dict) else ""
    if status == 200:
        return SendOutcome(OK, accepted=data.get("accepted", 0),
                           duplicates=data.get("duplicates", 0), http_status=status)
    if status in RETRYABLE_STATUSES or status >= 500:
        return SendOutcome(RETRY, parse_retry_after(headers.get("retry-after")),
                           message or f"HTTP {status}", http_status=status)
    if status == 413:
        return SendOutcome(TOO_LARGE, message=message, http_status=status)
    if status in (401, 403):
        return SendOutcome(AUTH, message=message, http_status=status)
    bad: set[int] = set()
    for item in data.get("fields", []) if isinstance(data, dict) else []:
        match = _INDEX.match(str(item.get("path", "")))
        if match:
            bad.add(int(match.group(1)))
    return SendOutcome(REJECTED, message=message or f"HTTP {status}", bad_indexes=bad,
                       http_status=status)


class HttpTransport:
    """Batches to the gateway with httpx (keep-alive), binary Protobuf, delimited."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self._owned = client is None
        self.client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.headers = {"x-api-key": api_key, "content-type": DELIMITED_PROTOBUF,
                        "user-agent": USER_AGENT}

    def send(self, kind: str, payloads: Sequence[bytes]) -> SendOutcome:
        try:
            response = self.client.post(_PATHS[kind], content=frame(payloads), headers=self.headers)
        except httpx.HTTPError as exc:
            return SendOutcome(RETRY, message=f"{type(exc).__name__}: {exc}")
        return outcome_of(response.status_code, response.headers, response.content)

    def close(self) -> None:
        if self._owned:
            self.client.close()


class AsyncHttpTransport:
    """:class:`HttpTransport` on ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 10.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self._owned = client is None
        self.client = client or httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.headers = {"x-api-key": api_key, "content-type": DELIMITED_PROTOBUF,
                        "user-agent": USER_AGENT}

    async def send(self, kind: str, payloads: Sequence[bytes]) -> SendOutcome:
        try:
            response = await self.client.post(_PATHS[kind], content=frame(payloads),
                                              headers=self.headers)
        except httpx.HTTPError as exc:
            return SendOutcome(RETRY, message=f"{type(exc).__name__}: {exc}")
        return outcome_of(response.status_code, response.headers, response.content)

    async def close(self) -> None:
        if self._owned:
            await self.client.aclose()


class KafkaTransport:
    """Direct mode: produce to traces.raw / feedback.events with kafka-python, acks=all.

    For services that live next to the cluster. There is no gateway in between, so no
    idempotency window: a retried batch may be written twice, with the same envelope event ids
    (consumers are idempotent on them). The app id is the one given here.
    """

    def __init__(self, bootstrap: str, app_id: str, *, topic_prefix: str = "flywheel",
                 producer: Any = None, timeout_s: float = 15.0, producer_name: str = "sdk") -> None:
        from flywheel.events.topics import full_topic_name
        from flywheel.kafka.producer import make_producer

        self.app_id = app_id
        self.timeout_s = timeout_s
        self.producer_name = producer_name
        self.topics = {TRACE: full_topic_name("traces.raw", topic_prefix),
                       FEEDBACK: full_topic_name("feedback.events", topic_prefix)}
        self.producer = producer or make_producer(bootstrap, client_id=f"{app_id}-sdk")

    def _stamped(self, kind: str, payload: bytes) -> tuple[bytes, bytes]:
        now = datetime.now(timezone.utc)
        if kind == TRACE:
            msg = trace_pb2.Trace.FromString(payload)
            msg.app_id = self.app_id
            key, ident = msg.trace_id, msg.trace_id
        else:
            msg = feedback_pb2.FeedbackEvent.FromString(payload)
            key, ident = msg.trace_id, msg.feedback_id
        msg.envelope.CopyFrom(new_envelope(msg, self.producer_name, trace_id=key,
                                           app_id=self.app_id,
                                           event_id=event_id_for(self.app_id, kind, ident),
                                           occurred_at=now))
        return key.encode(), encode(msg)

    def send(self, kind: str, payloads: Sequence[bytes]) -> SendOutcome:
        from kafka.errors import KafkaError

        try:
            futures = [self.producer.send(self.topics[kind], key=key, value=value)
                       for key, value in (self._stamped(kind, p) for p in payloads)]
            self.producer.flush(timeout=self.timeout_s)
            for future in futures:
                future.get(timeout=self.timeout_s)
        except KafkaError as exc:
            return SendOutcome(RETRY, message=f"{type(exc).__name__}: {exc}")
        return SendOutcome(OK, accepted=len(payloads))

    def close(self) -> None:
        self.producer.close(timeout=self.timeout_s)
