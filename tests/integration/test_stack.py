"""The local stack for real: a broker restart keeps topics, messages and committed offsets;
Redis and PostgreSQL round trips; `flywheel dev up/status/down` as the user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from flywheel.events.topics import get_topic
from flywheel.kafka.admin import create_topics, describe_topics, group_offsets
from flywheel.kafka.producer import make_producer
from flywheel.stack.kafka import KafkaServer
from flywheel.stack.process import free_port, pid_alive, tcp_accepts
from flywheel.stack.services import ServiceInfo, ServiceProcess

REPO = Path(__file__).resolve().parents[2]
KAFKA_LIBS = REPO / "var" / "kafka" / "libs"
DEADLINE_S = 60.0
MESSAGES = 100


def _cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flywheel.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


def _consume(bootstrap: str, topic: str, count: int, group: str | None = None,
             commit: bool = False) -> list[tuple[bytes, bytes]]:
    """Read ``count`` records from the start of ``topic`` (joining ``group`` if given)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000)
    try:
        if group:
            consumer.subscribe([topic])
        else:
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            consumer.assign(parts)
            consumer.seek_to_beginning(*parts)
        seen: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(seen) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend((r.key, r.value) for r in records)
        if commit:
            consumer.commit()
        return seen
    finally:
        consumer.close()


def test_broker_restart_keeps_topics_messages_and_offsets(tmp_path: Path, topic_prefix: str,
                                                         group_id: str) -> None:
    port = free_port()
    server = KafkaServer(tmp_path / "kafka", port, free_port(avoid=[port]), libs_dir=KAFKA_LIBS,
                         die_with_parent=True)
    try:
        server.start(timeout_s=180)
    except Exception as exc:  # noqa: BLE001 (same policy as the session fixtures)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Kafka could not start: {exc}", pytrace=False)
        pytest.skip(f"Kafka could not start: {exc}")
    try:
        bootstrap = server.address
        assert create_topics(bootstrap, topic_prefix)
        topic = get_topic("traces.raw").full_name(topic_prefix)
        producer = make_producer(bootstrap)
        sent = {(f"trace-{i}".encode(), f"payload-{i}".encode()) for i in range(MESSAGES)}
        for key, value in sent:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
        producer.close()

        assert set(_consume(bootstrap, topic, MESSAGES, group=group_id, commit=True)) == sent
        committed = group_offsets(bootstrap, group_id)
        assert sum(committed.values()) == MESSAGES
        before = {row["topic"]: row for row in describe_topics(bootstrap, topic_prefix)}
        pid_before = server.pid

        server.restart(timeout_s=180)
        assert server.pid != pid_before and server.address == bootstrap

        after = {row["topic"]: row for row in describe_topics(bootstrap, topic_prefix)}
        assert after == before
        assert after[topic]["end_offset"] == MESSAGES
        assert set(_consume(bootstrap, topic, MESSAGES)) == sent
        assert group_offsets(bootstrap, group_id) == committed
    finally:
        server.stop()
    assert not pid_alive(pid_before)


def test_redis_round_trip(redis_url: str, topic_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        key = f"{topic_prefix}:lease"
        assert client.set(key, "annotator-7", ex=30)
        assert client.get(key) == b"annotator-7"
        assert client.incr(f"{topic_prefix}:budget") == 1
    finally:
        client.close()


def test_postgres_round_trip(postgres_url: str, topic_prefix: str) -> None:
    engine = sa.create_engine(postgres_url)
    table = f"{topic_prefix}_labels"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {table} (id serial PRIMARY KEY, label text)")
            conn.execute(sa.text(f"INSERT INTO {table} (label) VALUES (:a), (:b)"),
                         {"a": "good", "b": "bad"})
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT label FROM {table} ORDER BY id")).scalars().all()
            assert rows == ["good", "bad"]
            assert conn.execute(sa.text("SELECT version()")).scalar().startswith("PostgreSQL")
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {table}")
    finally:
        engine.dispose()


def test_dev_up_status_down(tmp_path: Path) -> None:
    env = {"FLYWHEEL_DATA_DIR": str(tmp_path)}
    began = time.monotonic()
    up = _cli("dev", "up", "--kafka-libs", str(KAFKA_LIBS), env=env)
    assert up.returncode == 0, up.stderr + up.stdout
    up_seconds = time.monotonic() - began

    status = _cli("dev", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["kafka"]["health"] == "ok" and report["redis"]["health"] == "ok"
    pids = [report["kafka"]["pid"], report["redis"]["pid"]]
    assert all(pid_alive(pid) for pid in pids)
    state = json.loads((tmp_path / "stack" / "state.json").read_text())
    assert state["kafka"]["address"].startswith("127.0.0.1:")
    assert state["redis"]["url"].startswith("redis://127.0.0.1:")

    again = _cli("dev", "up", "--kafka-libs", str(KAFKA_LIBS), env=env)
    assert again.returncode == 0, again.stderr
    assert "kafka reused, redis reused" in again.stdout
    assert json.loads(_cli("dev", "status", "--json", env=env).stdout)["kafka"]["pid"] == pids[0]

    # The topic commands find the broker through the state file.
    created = _cli("topics", "create", env=env)
    assert created.returncode == 0, created.stderr

    down = _cli("dev", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids)
    assert not (tmp_path / "stack" / "state.json").exists()
    assert "nothing running" in _cli("dev", "status", env=env).stdout
    print(f"dev up took {up_seconds:.1f}s")


def test_unreachable_broker_fails_fast_naming_the_setting(tmp_path: Path) -> None:
    began = time.monotonic()
    done = _cli("topics", "list", env={"FLYWHEEL_KAFKA_BOOTSTRAP": "127.0.0.1:1",
                                        "FLYWHEEL_DATA_DIR": str(tmp_path)}, timeout=60)
    assert done.returncode != 0
    assert time.monotonic() - began < 15
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "FLYWHEEL_KAFKA_BOOTSTRAP" in lines[0]


def test_a_service_runs_in_the_background_with_its_own_log(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "echo_main.py").write_text(textwrap.dedent("""
        import http.server, os

        def main():
            port = int(os.environ["FLYWHEEL_ECHO_PORT"])
            print("echo_listening", port, os.environ["FLYWHEEL_DATA_DIR"], flush=True)
            http.server.HTTPServer(("127.0.0.1", port),
                                   http.server.SimpleHTTPRequestHandler).serve_forever()
    """))
    info = ServiceInfo("echo", "echo_main", 8009)
    proc = ServiceProcess(info, tmp_path, free_port(), env={"PYTHONPATH": str(pkg)})
    try:
        proc.start(timeout_s=30)
        assert proc.health() == "ok"
        assert proc.record()["url"] == f"http://127.0.0.1:{proc.port}"
        assert tcp_accepts("127.0.0.1", proc.port)
    finally:
        pid = proc.pid
        stopped = proc.stop()
    assert stopped == "stopped" and not pid_alive(pid)
    log = (tmp_path / "logs" / "echo.log").read_text()
    assert "echo_listening" in log and str(tmp_path) in log
