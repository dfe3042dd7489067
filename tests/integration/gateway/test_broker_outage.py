"""A broker outage: the gateway answers 503 and writes nothing partial; the SDK buffers (and
spills to disk), and once the broker is back every trace arrives exactly once.

Uses its own Kafka broker (not the session's), because it stops and restarts it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from flywheel.client import Client, RetryPolicy
from flywheel.events.topics import TOPICS
from flywheel.errors import FlywheelError
from flywheel.kafka.admin import create_topics
from flywheel.stack.kafka import KafkaServer
from flywheel.stack.process import free_port

from .conftest import read_topic

KAFKA_LIBS = Path(__file__).resolve().parents[3] / "var" / "kafka" / "libs"


@pytest.fixture
def own_broker(tmp_path):  # noqa: ANN001, ANN201
    port = free_port()
    server = KafkaServer(tmp_path / "kafka", port, free_port(avoid=[port]), libs_dir=KAFKA_LIBS,
                         die_with_parent=True)
    try:
        server.start(timeout_s=180)
    except FlywheelError as exc:
        pytest.skip(f"Kafka could not start: {exc}")
    yield server
    server.stop()


def _message(i: int) -> list[dict]:
    return [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "ok"}]


def test_outage_gives_503_and_sdk_buffered_traces_arrive_exactly_once(
        own_broker, start_gateway, make_settings, topic_prefix, tmp_path) -> None:  # noqa: ANN001
    bootstrap = own_broker.address
    create_topics(bootstrap, topic_prefix, [TOPICS["traces.raw"], TOPICS["feedback.events"]])
    gw = start_gateway(make_settings(kafka_bootstrap=bootstrap, service_name="gateway"),
                       produce_deadline_s=2.0, retry_after_s=1)
    client = Client(gw.base_url, gw.key, spill_dir=tmp_path / "spool", max_buffer=40,
                    flush_interval_s=0.2, retry=RetryPolicy(base_s=0.2, max_s=2.0),
                    close_at_exit=False)
    before = [client.log_trace(messages=_message(i)) for i in range(20)]
    assert client.flush(60)

    own_broker.stop()
    url = f"{gw.base_url}/v1/traces"
    single = httpx.post(url, json={"trace_id": "during-1", "messages": _message(0)},
                        headers=gw.headers(), timeout=30)
    batch = httpx.post(url, json=[{"trace_id": f"during-batch-{i}", "messages": _message(i)}
                                  for i in range(10)], headers=gw.headers(), timeout=30)
    for response in (single, batch):
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "broker_unavailable"
        assert response.headers["retry-after"] == "1"
    assert httpx.get(f"{gw.base_url}/readyz", timeout=30).status_code == 503

    during = [client.log_trace(messages=_message(i)) for i in range(150)]
    assert not client.flush(3)  # nothing can be acknowledged now
    assert client.stats.retries > 0
    assert list((tmp_path / "spool").rglob("*.seg")), "beyond max_buffer, events spill to disk"

    own_broker.restart(timeout_s=180)
    assert client.flush(180), client.stats
    client.close()

    expected = set(before) | set(during)
    records = read_topic(bootstrap, gw.topic("traces.raw"), expected, timeout_s=60, settle_s=3)
    counts = Counter(r.key.decode() for r in records)
    assert set(counts) >= expected
    assert [k for k, n in counts.items() if n > 1] == []
    # Refused with 503 and never retried: nothing of them may be visible.
    assert not {k for k in counts if k.startswith("during")}
