"""Prometheus metrics of the console: its own work, plus the latest snapshot's key figures
(end offsets, lag per group, dead letters by reason, service states) for alerting."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .logic import UP


class ConsoleMetrics:
    """A registry per app instance."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.snapshots = Counter("flywheel_console_snapshots", "Snapshots collected.", registry=r)
        self.snapshot_seconds = Histogram(
            "flywheel_console_snapshot_seconds", "Time to collect one snapshot.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=r)
        self.source_up = Gauge("flywheel_console_source_up",
                               "1 when the source answered for the latest snapshot.", ["source"],
                               registry=r)
        self.end_offset = Gauge("flywheel_console_topic_end_offset",
                                "Sum of the end offsets of a topic's partitions.", ["topic"],
                                registry=r)
        self.lag = Gauge("flywheel_console_consumer_lag", "Consumer lag summed per group.",
                         ["group"], registry=r)
        self.deadletters = Gauge("flywheel_console_deadletters", "Dead letters by reason.",
                                 ["reason"], registry=r)
        self.service_up = Gauge("flywheel_console_service_up", "1 when the service is up.",
                                ["service"], registry=r)

    def observe(self, snap: dict[str, Any], seconds: float) -> None:
        """Record one fresh snapshot."""
        self.snapshots.inc()
        self.snapshot_seconds.observe(seconds)
        for gauge in (self.source_up, self.end_offset, self.lag, self.deadletters,
                      self.service_up):
            gauge.clear()
        for source, state in snap["sources"].items():
            if "." not in source:
                self.source_up.labels(source).set(1 if state == "ok" else 0)
        for topic in snap["topics"]:
            if topic["exists"]:
                self.end_offset.labels(topic["short"]).set(topic["end_offset"])
        for group in snap["lag"]["groups"]:
            self.lag.labels(group["group"]).set(group["lag"])
        for reason, n in snap["deadletters"]["by_reason"].items():
            self.deadletters.labels(reason).set(n)
        for service in snap["services"]:
            self.service_up.labels(service["name"]).set(1 if service["state"] == UP else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
