"""Prometheus metrics of the model server, in a registry owned by each app instance."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .model_manager import Routing

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServingMetrics:
    """Request, token, batch and model-switch metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("flywheel_serving_requests", "Chat requests answered or failed.",
                                ["version", "status", "stream"], registry=r)
        self.latency = Histogram("flywheel_serving_request_seconds", "Request latency.", ["version"],
                                 buckets=_LATENCY, registry=r)
        self.first_token = Histogram("flywheel_serving_first_token_seconds",
                                     "Time to the first streamed token.", ["version"], buckets=_LATENCY,
                                     registry=r)
        self.prompt_tokens = Counter("flywheel_serving_prompt_tokens", "Prompt tokens.", ["version"], registry=r)
        self.completion_tokens = Counter("flywheel_serving_completion_tokens", "Generated tokens.",
                                         ["version"], registry=r)
        self.batch_rows = Histogram("flywheel_serving_batch_rows", "Rows per decoding batch.",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=r)
        self.batch_jobs = Histogram("flywheel_serving_batch_requests", "Requests per decoding batch.",
                                    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=r)
        self.queue_wait = Histogram("flywheel_serving_queue_wait_seconds", "Wait before decoding.",
                                    buckets=_LATENCY, registry=r)
        self.queue_depth = Gauge("flywheel_serving_queue_depth", "Jobs waiting for the worker.", registry=r)
        self.model_info = Gauge("flywheel_serving_model_info", "Live model versions by role.",
                                ["line", "role", "version"], registry=r)
        self.canary_share = Gauge("flywheel_serving_canary_share", "Share of users on the canary.", registry=r)
        self.switches = Counter("flywheel_serving_model_switches", "Routing changes.", registry=r)
        self.trace_sink_errors = Counter("flywheel_serving_trace_sink_errors", "Trace sink failures.",
                                         registry=r)

    def on_routing(self, routing: Routing) -> None:
        self.switches.inc()
        self.model_info.clear()
        for role, handle in (("stable", routing.stable), ("canary", routing.canary)):
            if handle is not None:
                self.model_info.labels(handle.line, role, handle.version).set(1)
        self.canary_share.set(routing.canary_share if routing.canary else 0.0)

    def on_batch(self, rows: int, jobs: int, wait_s: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_jobs.observe(jobs)
        self.queue_wait.observe(wait_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
