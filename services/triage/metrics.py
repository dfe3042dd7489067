"""Triage metrics: Prometheus series and the window counts sent to ``pipeline.health``.

Prometheus (own registry per app, served on ``FLYWHEEL_TRIAGE_METRICS_PORT`` when set):

* ``flywheel_triage_inputs_total{topic,outcome}``: records read (ingested, redelivered,
  deadlettered, late_ignored, ...);
* ``flywheel_triage_decisions_total{route,reason}``: decisions emitted, ``reason`` = policy rule;
* ``flywheel_triage_superseded_total{route}``: decisions that replaced an earlier one;
* ``flywheel_triage_deadletters_total{reason}``: by error type;
* ``flywheel_triage_pii_redactions_total{kind}``, ``flywheel_triage_duplicates_total{kind}``;
* ``flywheel_triage_model_calls_total{outcome}``: ok / failed / skipped / unavailable;
* ``flywheel_triage_budget_total{route,outcome}``: granted / overflow;
* gauges ``flywheel_triage_pending``, ``flywheel_triage_queued{route}``,
  ``flywheel_triage_state_entries``; histogram ``flywheel_triage_batch_seconds``.
"""

from __future__ import annotations

from collections import Counter as _Counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class TriageMetrics:
    """Prometheus series plus a flat counter window for ``pipeline.health``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.inputs = Counter("flywheel_triage_inputs_total", "Records read.", ["topic", "outcome"], registry=r)
        self.decisions = Counter("flywheel_triage_decisions_total", "Decisions emitted.",
                                 ["route", "reason"], registry=r)
        self.superseded = Counter("flywheel_triage_superseded_total",
                                  "Decisions that replaced an earlier one.", ["route"], registry=r)
        self.deadletters = Counter("flywheel_triage_deadletters_total", "Dead letters sent.",
                                   ["reason"], registry=r)
        self.pii = Counter("flywheel_triage_pii_redactions_total", "Redactions.", ["kind"], registry=r)
        self.duplicates = Counter("flywheel_triage_duplicates_total", "Duplicates.", ["kind"], registry=r)
        self.model_calls = Counter("flywheel_triage_model_calls_total", "Uncertainty sampling.",
                                   ["outcome"], registry=r)
        self.budget = Counter("flywheel_triage_budget_total", "Budget outcomes.",
                              ["route", "outcome"], registry=r)
        self.pending = Gauge("flywheel_triage_pending", "Traces waiting for a decision.", registry=r)
        self.queued = Gauge("flywheel_triage_queued", "Items waiting for a budget slot.", ["route"],
                            registry=r)
        self.entries = Gauge("flywheel_triage_state_entries", "Join state entries held.", registry=r)
        self.batch_seconds = Histogram("flywheel_triage_batch_seconds", "Time per stream batch.",
                                       registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                            0.5, 1, 2.5, 5))
        self.window: _Counter[str] = _Counter()
        self._children: dict[tuple, object] = {}

    def _child(self, metric, *labels: str):
        # prometheus_client's labels() takes a lock and builds a key per call; cache children.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count(self, key: str, n: int = 1) -> None:
        self.window[key] += n

    def input(self, topic: str, outcome: str, n: int = 1) -> None:
        self._child(self.inputs, topic, outcome).inc(n)
        self.window[f"{topic}.{outcome}"] += n

    def decision(self, route: str, rule: str, superseding: bool) -> None:
        self._child(self.decisions, route, rule).inc()
        self.window[f"route.{route}"] += 1
        if superseding:
            self.superseded.labels(route).inc()
            self.count("superseded")

    def deadletter(self, reason: str) -> None:
        self.deadletters.labels(reason).inc()
        self.count("deadlettered")
        self.count(f"deadletter.{reason}")

    def redactions(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            self._child(self.pii, kind).inc(n)
            self.window[f"pii.{kind}"] += n

    def take_window(self) -> dict[str, int]:
        """The counts since the last call (and reset)."""
        out = dict(self.window)
        self.window.clear()
        return out

    def serve(self, port: int) -> None:
        """Expose the registry over HTTP on 127.0.0.1 (no-op for port 0)."""
        if port:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)
