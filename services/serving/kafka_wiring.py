"""The serving app's Kafka adapters: follow ``models.releases``, produce to ``traces.raw``.

``KafkaReleaseSource`` reads ``models.releases`` from the beginning on every start (no
consumer group: every server must see every release). What is already on the topic is
folded into the line's current state first, so a restarted server loads its release and
canary once instead of replaying every switch; later releases are applied as they arrive.

``KafkaTraceSink`` turns each served conversation into a ``Trace`` (source SERVING, the
answering model version, the request id that feedback refers to, token log-prob statistics
and the other sampled choices) and hands it to a background thread that produces it. The
request path only appends to a bounded queue: when the broker is slow the queue fills and
traces are dropped and counted rather than delaying answers.

    app = create_app(settings, release_source=KafkaReleaseSource(settings),
                     trace_sink=KafkaTraceSink(settings))
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode, encode
from flywheel.events.envelope import stamp
from flywheel.logging import get_logger
from flywheel.settings import Settings
from flywheel.v1 import common_pb2, models_pb2, trace_pb2

from .ports import Release, ReleaseApply, ServedConversation

log = get_logger(__name__)

PRODUCER = "serving"
# Requests whose OpenAI ``metadata`` has {"flywheel_trace": "off"} are not traced: internal
# callers (uncertainty sampling) set it so their calls do not flow back as new traffic.
TRACE_OPT_OUT_KEY = "flywheel_trace"
_ACTIONS = {models_pb2.RELEASE_ACTION_CANARY: "canary", models_pb2.RELEASE_ACTION_PROMOTE: "promote",
            models_pb2.RELEASE_ACTION_ROLLBACK: "rollback"}


# -- releases ---------------------------------------------------------------------------------

def to_release(event: Any, base_artifact: Callable[[], Path] | None = None) -> Release | None:
    """The serving-side ``Release`` for a ``ModelRelease`` (None for an unknown action).

    A ROLLBACK names the version taken out in ``version`` and the one to serve in
    ``previous_version`` (its artifact in ``artifact_path``; empty for the base model, whose
    artifact the server exports itself).
    """
    action = _ACTIONS.get(event.action)
    if action is None:
        return None
    version = event.previous_version if action == "rollback" else event.version
    path = event.artifact_path
    if not path and version == 0 and base_artifact is not None:
        path = str(base_artifact())
    share = event.canary_share if action == "canary" and event.canary_share > 0 else None
    return Release(event.model_line, str(version), Path(path), action, share, event.envelope.event_id)


def fold_releases(line: str, releases: Iterable[Release]) -> list[Release]:
    """The releases that rebuild a line's current state: its stable version, then its canary."""
    stable: Release | None = None
    canary: Release | None = None
    for rel in releases:
        if rel.model_line != line:
            continue
        if rel.action == "canary":
            canary = None if stable is not None and rel.version == stable.version else rel
        else:  # promote, or rollback (already naming the version that serves afterwards)
            stable, canary = replace(rel, action="promote", canary_share=None), None
    return [r for r in (stable, canary) if r is not None]


class KafkaReleaseSource:
    """A ``ReleaseSource`` following ``models.releases`` (see the module docstring).

    Args:
        settings: shared settings (broker, topic prefix).
        line: the model line this server answers for.
        base_artifact: exports or finds the base model's artifact (rollbacks to version 0).
    """

    def __init__(self, settings: Settings, line: str,
                 base_artifact: Callable[[], Path] | None = None, *, poll_s: float = 0.5) -> None:
        self.settings = settings
        self.line = line
        self._base = base_artifact
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.caught_up = threading.Event()
        self.applied: list[Release] = []

    def __call__(self, apply: ReleaseApply) -> Callable[[], None]:
        self._thread = threading.Thread(target=self._run, args=(apply,), name="release-follower",
                                        daemon=True)
        self._thread.start()
        return self.stop

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _consumer(self) -> tuple[Any, Any]:
        from kafka import KafkaConsumer, TopicPartition

        topic = self.settings.topic("models.releases")
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka(), group_id=None,
                                 enable_auto_commit=False, client_id="serving-releases")
        while not self._stop.is_set():
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                consumer.assign(tps)
                consumer.seek_to_beginning(*tps)
                return consumer, tps
            self._stop.wait(1.0)  # the topic does not exist yet
        return consumer, []

    def _decode(self, record: Any) -> Release | None:
        try:
            event = decode(record.value, "ModelRelease")
        except EventDecodeError as exc:
            log.warning("release_undecodable", offset=record.offset, error=str(exc))
            return None
        try:
            return to_release(event, self._base)
        except Exception as exc:  # the base export can fail; skip this release, keep following
            log.error("release_unusable", offset=record.offset, error=str(exc))
            return None

    def _apply(self, apply: ReleaseApply, release: Release) -> None:
        self.applied.append(release)
        log.info("release_received", line=release.model_line, version=release.version,
                 action=release.action, event_id=release.event_id)
        apply(release)

    def _run(self, apply: ReleaseApply) -> None:
        try:
            consumer, tps = self._consumer()
        except Exception as exc:  # broker unreachable at start: serve the base model only
            log.error("release_follower_failed", error=str(exc))
            return
        try:
            ends = consumer.end_offsets(tps) if tps else {}
            backlog: list[Release] = []
            while not self._stop.is_set() and any(consumer.position(tp) < end for tp, end in ends.items()):
                for records in consumer.poll(timeout_ms=int(self._poll_s * 1000)).values():
                    backlog += [r for r in map(self._decode, records) if r is not None]
            for release in fold_releases(self.line, backlog):
                self._apply(apply, release)
            self.caught_up.set()
            log.info("releases_caught_up", line=self.line, history=len(backlog))
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=int(self._poll_s * 1000)).values():
                    for release in filter(None, map(self._decode, records)):
                        if release.model_line == self.line:
                            self._apply(apply, release)
        except Exception as exc:  # keep serving what is loaded; the process log says why
            log.error("release_follower_failed", error=str(exc))
        finally:
            consumer.close()


# -- traces -----------------------------------------------------------------------------------

def _chat_message(message: dict[str, Any]) -> Any:
    msg = common_pb2.ChatMessage(role=str(message.get("role") or ""),
                                 content=str(message.get("content") or ""),
                                 name=str(message.get("name") or ""),
                                 tool_call_id=str(message.get("tool_call_id") or ""))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = fn.get("arguments")
        msg.tool_calls.add(id=str(call.get("id") or ""), type=str(call.get("type") or "function"),
                           function=common_pb2.FunctionCall(
                               name=str(fn.get("name") or ""),
                               arguments=args if isinstance(args, str) else json.dumps(args)))
    return msg


def _tool(tool: dict[str, Any]) -> Any:
    fn = tool.get("function", tool)
    return common_pb2.ToolDefinition(name=str(fn.get("name") or ""),
                                     description=str(fn.get("description") or ""),
                                     parameters_json=json.dumps(fn.get("parameters") or {}))


def _logprob_stats(choices: list[dict[str, Any]]) -> Any:
    """Statistics of the first choice, with every choice as a sampled answer when n > 1."""
    first = choices[0].get("logprob_stats") or {}
    stats = trace_pb2.LogprobStats(token_count=int(first.get("tokens", 0)),
                                   mean_logprob=float(first.get("mean_logprob", 0.0)),
                                   min_logprob=float(first.get("min_logprob", 0.0)))
    if len(choices) > 1:
        for choice in choices:
            s = choice.get("logprob_stats") or {}
            stats.samples.add(text=str((choice.get("message") or {}).get("content") or ""),
                              mean_logprob=float(s.get("mean_logprob", 0.0)))
    return stats


def conversation_trace(conv: ServedConversation) -> Any:
    """The ``Trace`` for one served conversation (the prompt plus the first choice's answer).

    The trace id is the caller's ``metadata.trace_id`` (several turns of one conversation)
    or the request id; ``request_id`` is always the served request's id.
    """
    meta = {str(k): str(v) for k, v in (conv.metadata or {}).items()}
    trace = trace_pb2.Trace(
        trace_id=meta.get("trace_id") or conv.request_id, session_id=meta.get("session_id", ""),
        user_id=conv.user or "", app_id=meta.get("app_id", ""), request_id=conv.request_id,
        source=trace_pb2.TRACE_SOURCE_SERVING,
        model=common_pb2.ModelRef(name=conv.model_line, version=conv.model_version),
        latency_ms=conv.latency_ms,
    )
    trace.messages.extend(_chat_message(m) for m in conv.messages)
    if conv.choices:
        trace.messages.append(_chat_message(conv.choices[0].get("message") or {}))
        trace.logprobs.CopyFrom(_logprob_stats(conv.choices))
    trace.tools.extend(_tool(t) for t in conv.tools or ())
    if conv.error is not None:
        trace.outcome.status = trace_pb2.OUTCOME_STATUS_FAILURE
        trace.outcome.failure_source = common_pb2.FAILURE_SOURCE_SYSTEM
        trace.outcome.failure_kind = "server_error"
        trace.outcome.detail = conv.error[:500]
    trace.started_at.FromDatetime(conv.started_at)
    tags = {f"param.{k}": json.dumps(v) for k, v in conv.params.items() if v is not None}
    tags.update({f"usage.{k}": str(v) for k, v in conv.usage.items()})
    tags.update(stream=str(conv.stream).lower(),
                finish_reason=str(conv.choices[0].get("finish_reason") if conv.choices else ""))
    tags.update({f"meta.{k}": v for k, v in meta.items() if k not in ("trace_id", "session_id", "app_id")})
    trace.tags.update(tags)
    return stamp(trace, PRODUCER)


class KafkaTraceSink:
    """A ``TraceSink`` producing ``Trace`` events to ``traces.raw`` from a background thread.

    Args:
        settings: shared settings (broker, topic prefix).
        max_queue: traces held while the broker is slow; beyond it new traces are dropped.
        producer: a kafka-python producer (built from settings when omitted).
    """

    def __init__(self, settings: Settings, *, max_queue: int = 10_000, producer: Any = None) -> None:
        self.settings = settings
        self.topic = settings.topic("traces.raw")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._producer = producer
        self._thread = threading.Thread(target=self._run, name="trace-producer", daemon=True)
        self._started = False
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self.skipped = 0

    def __call__(self, conversation: ServedConversation) -> None:
        if str((conversation.metadata or {}).get(TRACE_OPT_OUT_KEY, "")).lower() in ("off", "false", "0"):
            self.skipped += 1
            return
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        try:
            self._queue.put_nowait(conversation)
        except queue.Full:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8, ...: a slow broker, not a flood
                log.warning("traces_dropped", dropped=self.dropped, queued=self._queue.qsize())

    def _make_producer(self) -> Any:
        from flywheel.kafka.producer import make_producer

        return make_producer(self.settings, client_id="serving-traces", linger_ms=20)

    def _on_error(self, exc: BaseException) -> None:
        self.failed += 1
        log.error("trace_produce_failed", error=str(exc))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            try:
                if self._producer is None:
                    self._producer = self._make_producer()
                trace = conversation_trace(item)
                future = self._producer.send(self.topic, key=trace.trace_id.encode(), value=encode(trace))
                future.add_errback(self._on_error)
                self.sent += 1
            except Exception as exc:  # one bad conversation or a broker outage must not stop the thread
                self._on_error(exc)

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued, then stop the thread and the producer."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout_s)
        if self._producer is not None:
            self._producer.flush(timeout=timeout_s)
            self._producer.close(timeout=timeout_s)
