"""The ingest gateway: traces, feedback and OTLP GenAI spans over HTTP into Kafka.

Run with ``python -m flywheel.services.gateway.main`` (or ``flywheel run gateway``); see
``services/gateway/README.md`` for the API.
"""
