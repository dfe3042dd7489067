"""Prometheus metrics of the gateway, on a registry per app instance.

With several uvicorn workers, ``main`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory and
``/metrics`` aggregates every worker; with one worker the app's own registry is served.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_GROUP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
ROUTES = ("/v1/traces", "/v1/feedback", "/v1/otlp/v1/traces", "/healthz", "/readyz", "/metrics")


class GatewayMetrics:
    """Requests, latency, events produced, duplicates, rejections by reason, OTLP spans and
    requests per transaction."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("flywheel_gateway_requests_total", "HTTP requests by route and status.",
                                ["route", "status"], registry=r)
        self.latency = Histogram("flywheel_gateway_request_seconds", "HTTP request latency.",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.produced = Counter("flywheel_gateway_events_produced_total",
                                "Events acknowledged by the broker, by topic.", ["topic"], registry=r)
        self.duplicates = Counter("flywheel_gateway_events_duplicate_total",
                                  "Events not produced because their id was seen in the window.",
                                  ["kind"], registry=r)
        self.rejected = Counter("flywheel_gateway_rejected_total",
                                "Requests refused, by reason (the error code).", ["reason"],
                                registry=r)
        self.produce_latency = Histogram("flywheel_gateway_produce_seconds",
                                         "Time from produce to broker acknowledgement.",
                                         ["path"], buckets=_LATENCY_BUCKETS, registry=r)
        self.otlp_spans = Counter("flywheel_gateway_otlp_spans_total",
                                  "OTLP spans by outcome (converted, skipped, held, rejected, late).",
                                  ["outcome"], registry=r)
        self.transaction_requests = Histogram(
            "flywheel_gateway_transaction_requests",
            "Batch requests per committed Kafka transaction (group commit; _count is the "
            "number of transactions).", buckets=_GROUP_BUCKETS, registry=r)
        self._route_latency = {route: self.latency.labels(route) for route in ROUTES}
        self._request_counters: dict[tuple[str, int], Any] = {}  # (route, status) -> child

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        route = route if route in self._route_latency else "other"
        counter = self._request_counters.get((route, status))
        if counter is None:
            counter = self._request_counters[(route, status)] = self.requests.labels(route, str(status))
        counter.inc()
        child = self._route_latency.get(route)
        (child or self.latency.labels(route)).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
