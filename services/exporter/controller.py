"""The release controller: promote or roll back a canary from its live signals.

Run::

    python -m flywheel.services.exporter.controller

It watches one model line (``FLYWHEEL_EXPORTER_MODEL_LINE``). While the registry shows a
canary, it reads ``traces.raw`` (which version answered which request; serving traces carry
the version), ``feedback.events`` (thumbs, ratings) and ``preference.answers`` (head-to-head
choices) from shortly before the canary started, folds them into per-version signals and,
every ``FLYWHEEL_EXPORTER_DECISION_INTERVAL_S``, applies the rules of
``flywheel.services.exporter.logic.decide``: ``ROLLBACK`` as soon as the canary is clearly
worse, ``PROMOTE`` once it is not worse with confidence (when auto-promotion is on). Actions
go through the releaser (registry statuses ``released`` / ``rolled_back``, a release row with
the actor ``release-controller``, and a ``ModelRelease`` event).

The controller keeps no state of its own: after a restart it reads the window again. It does
not use a consumer group (it reads every partition); run one per model line.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from flywheel.db.engine import session_scope
from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode
from flywheel.logging import configure_logging, get_logger
from flywheel.settings import Settings, load_settings

from . import registry
from .logic.decide import Decision, decide
from .logic.releases import ReleaseRuleError
from .logic.signals import SignalBook, feedback_record, preference_record, served_record
from .releasing import Releaser
from .settings import CONTROLLER, ExporterSettings, load_exporter_settings

log = get_logger(__name__)

SIGNAL_TOPICS = {"traces.raw": "Trace", "feedback.events": "FeedbackEvent",
                 "preference.answers": "PreferenceAnswer"}


@dataclass(frozen=True)
class Window:
    """The canary being judged, the release it challenges and when the canary started."""

    canary: int
    release: int
    since: datetime | None


class ReleaseController:
    """Reads live signals and acts on canaries of one line (see the module docstring).

    Args:
        consumer: a kafka-python ``KafkaConsumer`` without a group (the controller assigns
            partitions itself); built from settings when omitted.
    """

    def __init__(self, settings: Settings, cfg: ExporterSettings, engine: Engine, releaser: Releaser,
                 consumer: Any = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.engine = engine
        self.releaser = releaser
        self.policy = cfg.policy()
        self.line = cfg.model_line
        self._consumer = consumer
        self._topics = {settings.topic(short): event for short, event in SIGNAL_TOPICS.items()}
        self.window: Window | None = None
        self.book: SignalBook | None = None
        self.last_decision: Decision | None = None

    # -- inputs -----------------------------------------------------------------------------

    def consumer(self) -> Any:
        if self._consumer is None:
            from kafka import KafkaConsumer

            self._consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka(), group_id=None,
                                           enable_auto_commit=False, client_id=f"{CONTROLLER}-consumer")
        return self._consumer

    def _partitions(self) -> list[Any]:
        from kafka import TopicPartition

        consumer = self.consumer()
        out = []
        for topic in self._topics:
            for p in sorted(consumer.partitions_for_topic(topic) or ()):
                out.append(TopicPartition(topic, p))
        return out

    def _open_window(self, window: Window) -> None:
        """Start a fresh book and read every signal topic from shortly before the canary."""
        consumer = self.consumer()
        partitions = self._partitions()
        if not partitions:  # topics not created yet: try again at the next refresh
            log.warning("signal_topics_missing", topics=sorted(self._topics))
            self.window, self.book = None, None
            return
        self.window = window
        self.book = SignalBook(self.line, window.since)
        consumer.assign(partitions)
        if window.since is None:
            consumer.seek_to_beginning(*partitions)
        else:
            start = window.since - timedelta(seconds=self.cfg.window_slack_s)
            found = consumer.offsets_for_times({tp: int(start.timestamp() * 1000) for tp in partitions})
            for tp in partitions:
                if found.get(tp) is None:
                    consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, found[tp].offset)
        log.info("canary_window_opened", line=self.line, canary=window.canary, release=window.release,
                 since=window.since and window.since.isoformat(), partitions=len(partitions))

    def _close_window(self) -> None:
        if self.window is not None:
            log.info("canary_window_closed", line=self.line, canary=self.window.canary)
        self.window, self.book = None, None
        if self._consumer is not None:
            self._consumer.assign([])

    def refresh(self) -> Window | None:
        """Follow the registry: open a window for a new canary, close it when there is none."""
        with session_scope(self.engine) as s:
            state = registry.line_state(s, self.line)
        if state.canary is None:
            self._close_window()
            return None
        window = Window(state.canary, state.stable, state.canary_since)
        if window != self.window:
            self._open_window(window)
        return self.window

    def poll(self, timeout_s: float = 0.5) -> int:
        """Read what the topics have and fold it into the book; returns the records read."""
        if self.book is None:
            time.sleep(timeout_s)
            return 0
        batches = self.consumer().poll(timeout_ms=int(timeout_s * 1000), max_records=5000)
        count = 0
        for tp, records in batches.items():
            event_type = self._topics.get(tp.topic)
            for record in records:
                count += 1
                self._fold(event_type, record)
        return count

    def _fold(self, event_type: str | None, record: Any) -> None:
        try:
            event = decode(record.value, event_type)
        except EventDecodeError as exc:  # triage dead-letters bad records; here they are skipped
            log.debug("signal_undecodable", topic=record.topic, offset=record.offset, error=str(exc))
            return
        if event_type == "Trace":
            self.book.add_trace(served_record(event))
        elif event_type == "FeedbackEvent":
            self.book.add_feedback(feedback_record(event))
        else:
            self.book.add_preference(preference_record(event))

    # -- decisions --------------------------------------------------------------------------

    def evaluate(self) -> Decision | None:
        """The decision for the current window (None without a canary)."""
        if self.window is None or self.book is None:
            return None
        canary, release = str(self.window.canary), str(self.window.release)
        decision = decide(self.book.signals(canary), self.book.signals(release),
                          self.book.head_to_head(canary, release), self.policy,
                          auto_promote=self.cfg.auto_promote)
        self.last_decision = decision
        return decision

    def act(self, decision: Decision) -> Any:
        """Carry out a promote or rollback decision; returns the ModelRelease, or None."""
        if decision.action == "wait" or self.window is None:
            return None
        reason = f"automatic: {decision.summary()}"
        try:
            if decision.action == "rollback":
                event = self.releaser.rollback(self.line, self.window.canary, actor=CONTROLLER,
                                               reason=reason, expect_canary=self.window.canary)
            else:
                event = self.releaser.promote(self.line, self.window.canary, actor=CONTROLLER,
                                              reason=reason, expect_canary=self.window.canary)
        except ReleaseRuleError as exc:  # someone decided by hand in the meantime
            log.info("release_decision_superseded", line=self.line, error=str(exc))
            return None
        self._close_window()
        return event

    def step(self, poll_s: float = 0.5) -> Any:
        """Refresh, read, decide and act once; returns the ModelRelease when one was sent."""
        if self.refresh() is None:
            return None
        deadline = time.monotonic() + poll_s
        while (left := deadline - time.monotonic()) > 0:
            self.poll(min(left, 1.0))
        decision = self.evaluate()
        if decision is None:
            return None
        log.info("release_decision", line=self.line, canary=self.window.canary, action=decision.action,
                 reasons=list(decision.reasons)[:6])
        return self.act(decision)

    def run(self, stop: threading.Event) -> None:
        """Decide every ``decision_interval_s`` until ``stop`` is set."""
        log.info("release_controller_started", line=self.line, auto_promote=self.cfg.auto_promote)
        interval = self.cfg.decision_interval_s
        while not stop.is_set():
            started = time.monotonic()
            self.step(poll_s=interval)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))  # idle without a canary

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def build_controller(settings: Settings, cfg: ExporterSettings, producer: Any) -> ReleaseController:
    from flywheel.db.engine import make_engine

    from .releasing import kafka_send

    engine = make_engine(settings.database())
    releaser = Releaser(settings, engine, kafka_send(producer), producer_name=CONTROLLER)
    return ReleaseController(settings, cfg, engine, releaser)


def main() -> None:
    """Build settings and logging, then decide on canaries until stopped."""
    from flywheel.db.engine import migrate
    from flywheel.kafka.producer import make_producer

    settings = load_settings(service_name=CONTROLLER)
    configure_logging(CONTROLLER, settings.log_level, settings.log_format)
    cfg = load_exporter_settings()
    migrate(settings.database())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    producer = make_producer(settings, client_id=f"{CONTROLLER}-producer")
    controller = build_controller(settings, cfg, producer)
    try:
        controller.run(stop)
    finally:
        controller.close()
        producer.close(timeout=10)


if __name__ == "__main__":
    main()
