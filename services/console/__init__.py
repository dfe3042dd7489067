"""The console: one page and one JSON snapshot of the whole pipeline, for people on call.

It reads, never writes: topic end offsets (throughput), consumer lag, dead letters, the
latest ``pipeline.health`` of every service, each service's ``/healthz`` and Prometheus
``/metrics``, the database (batches, model versions, releases) and Redis (annotation queue,
judge calibration, preference budgets). ``flywheel status`` prints the same snapshot.
"""
