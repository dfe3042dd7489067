"""The topic registry: the one place where topics are declared.

Full broker names are ``<prefix>.<domain>.<event>.v<N>`` (``flywheel.traces.raw.v1`` with the
default prefix, set by ``FLYWHEEL_TOPIC_PREFIX``). Services refer to topics by their short
name (``traces.raw``) and never spell the full name themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.errors import UnknownTopicError

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name parts, the event it carries, its key and its storage policy."""

    short: str
    domain: str
    event: str
    event_type: str
    key: str
    partitions: int
    retention_ms: int
    compact: bool = False
    version: int = 1
    description: str = ""

    def full_name(self, prefix: str = "flywheel") -> str:
        return f"{prefix}.{self.domain}.{self.event}.v{self.version}"

    def config(self) -> dict[str, str]:
        """Broker topic configs for ``CreateTopics``."""
        if self.compact:
            return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


def _spec(short: str, event_type: str, key: str, partitions: int, retention_days: float,
          description: str, *, domain: str | None = None, event: str | None = None,
          compact: bool = False) -> TopicSpec:
    d, _, e = short.partition(".")
    retention = -1 if retention_days < 0 else int(retention_days * DAY_MS)
    return TopicSpec(short, domain or d, event or e, f"flywheel.v1.{event_type}", key,
                     partitions, retention, compact, description=description)


TOPICS: dict[str, TopicSpec] = {
    t.short: t
    for t in [
        _spec("traces.raw", "Trace", "trace_id", 6, 7, "Traces as ingested (gateway, serving)."),
        _spec("feedback.events", "FeedbackEvent", "trace_id", 6, 7, "User feedback on traces."),
        _spec("traces.triaged", "TriageDecision", "trace_id", 6, 30, "One route per trace."),
        _spec("preference.requests", "PreferenceRequest", "trace_id", 3, 7,
              "Traces for which a user preference should be asked."),
        _spec("preference.answers", "PreferenceAnswer", "trace_id", 3, 30,
              "Users' choices between two answers."),
        _spec("annotation.tasks", "AnnotationTask", "task_id", 3, 30, "Work for annotators."),
        _spec("annotation.labels", "AnnotationLabel", "task_id", 3, 30,
              "Labels from people, the judge and the teacher."),
        _spec("examples.sft", "SftExample", "example_id", 3, 30, "Curated SFT examples."),
        _spec("examples.dpo", "DpoExample", "example_id", 3, 30, "Curated preference pairs."),
        _spec("examples.eval", "EvalExample", "example_id", 3, -1, "The held-out eval set.",
              compact=True),
        _spec("datasets.batches", "DatasetBatch", "model_line", 1, -1,
              "A versioned batch is ready for training."),
        _spec("models.candidates", "ModelCandidate", "model_line", 1, -1,
              "Trained versions with their gate metrics."),
        _spec("models.releases", "ModelRelease", "model_line", 1, -1,
              "Canary, promote and rollback decisions."),
        _spec("deadletter", "DeadLetter", "event_id", 3, 30,
              "Messages that could not be processed, with the error.",
              domain="pipeline", event="deadletter"),
        _spec("pipeline.health", "PipelineHealth", "service", 1, 1,
              "Periodic counts from every service."),
    ]
}


def get_topic(short_name: str) -> TopicSpec:
    """The spec for a short name, or UnknownTopicError listing the valid ones."""
    try:
        return TOPICS[short_name]
    except KeyError:
        raise UnknownTopicError(
            f"unknown topic {short_name!r}; known: {', '.join(sorted(TOPICS))}"
        ) from None


def full_topic_name(short_name: str, prefix: str = "flywheel") -> str:
    return get_topic(short_name).full_name(prefix)


def resolve_topic(name: str, prefix: str = "flywheel") -> TopicSpec:
    """Accept a short name or a full broker name and return its spec."""
    if name in TOPICS:
        return TOPICS[name]
    for spec in TOPICS.values():
        if spec.full_name(prefix) == name:
            return spec
    raise UnknownTopicError(f"unknown topic {name!r}; known: {', '.join(sorted(TOPICS))}")
