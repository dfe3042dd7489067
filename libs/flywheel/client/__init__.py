"""The Flywheel Python SDK: log traces and feedback to the gateway, or straight to Kafka.

    from flywheel.client import Client

    client = Client("http://127.0.0.1:8000", api_key="fw_...")
    with client.run(user_id="u-1", model="gpt-4o") as run:
        run.user("Where is my order?")
        with run.model_call() as call:
            call.output("It shipped yesterday.")
    client.log_feedback(run.trace_id, thumbs="up")
    client.close()

- :class:`Client` (threads) and :class:`AsyncClient` (asyncio): ``log_trace``, ``log_feedback``,
  ``run()`` (an :class:`AgentRun` recorder), ``flush()``, ``close()`` / ``aclose()``.
- Background batching (``batch_size``, ``flush_interval_s``), retries with exponential backoff
  and jitter on 409/429/5xx and connection errors (Retry-After honoured), a bounded memory
  buffer (``max_buffer``) that spills to a disk spool, replayed after restarts.
- ``Client.direct(bootstrap, app_id)``: produce with kafka-python (acks=all), no gateway.
"""

from flywheel.client.aio import AsyncClient
from flywheel.client.core import ClientStats
from flywheel.client.retry import RetryPolicy
from flywheel.client.run import AgentRun
from flywheel.client.sync import Client
from flywheel.client.transport import AsyncHttpTransport, HttpTransport, KafkaTransport, SendOutcome
from flywheel.client.wire import build_feedback, build_trace

__all__ = [
    "AgentRun",
    "AsyncClient",
    "AsyncHttpTransport",
    "Client",
    "ClientStats",
    "HttpTransport",
    "KafkaTransport",
    "RetryPolicy",
    "SendOutcome",
    "build_feedback",
    "build_trace",
]
