"""Helpers for the triage integration tests: worker subprocesses, producing, reading topics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition

from flywheel.events.codec import decode
from flywheel.events.topics import get_topic
from flywheel.kafka.producer import make_producer
from flywheel.services.triage.logic.policy import load_policy
from flywheel.services.triage.main import ensure_topics
from flywheel.settings import Settings

REPO = Path(__file__).resolve().parents[3]


class TriageWorker:
    """``python -m flywheel.services.triage.main`` as a subprocess, stopped by PID."""

    def __init__(self, settings: Settings, name: str, log_dir: Path, **triage_env: Any) -> None:
        self.settings = settings
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
        self.env.update({
            "FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(),
            "FLYWHEEL_REDIS_URL": settings.redis(),
            "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix,
            "FLYWHEEL_DATA_DIR": str(log_dir / name),
            "FLYWHEEL_LOG_LEVEL": "WARNING",
            "FLYWHEEL_TRIAGE_MODEL_URL": "",
            "FLYWHEEL_TRIAGE_INSTANCE": name,
        })
        self.env.update({f"FLYWHEEL_TRIAGE_{k.upper()}": str(v) for k, v in triage_env.items()})
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TriageWorker":
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "flywheel.services.triage.main"],
                                     cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        if self.alive:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout_s: float = 30.0) -> None:
        if not self.alive:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class TopicReader:
    """Reads registry topics from the beginning, without a consumer group."""

    def __init__(self, settings: Settings, shorts: Iterable[str]) -> None:
        self.settings = settings
        self.names = {settings.topic(s): s for s in shorts}
        self.consumer = KafkaConsumer(bootstrap_servers=settings.kafka(), group_id=None,
                                      enable_auto_commit=False, auto_offset_reset="earliest")
        tps = [TopicPartition(name, p) for name, short in self.names.items()
               for p in range(get_topic(short).partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.records: dict[str, list] = {s: [] for s in self.names.values()}

    def poll(self) -> None:
        for tp, batch in self.consumer.poll(timeout_ms=300, max_records=20_000).items():
            self.records[self.names[tp.topic]].extend(batch)

    def events(self, short: str, event_type: str) -> list:
        return [decode(r.value, event_type) for r in self.records[short]]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str,
                 workers: Iterable[TriageWorker] = ()) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if predicate():
                return
            for w in workers:
                if not w.alive:
                    raise AssertionError(f"worker {w.name} died:\n{w.log_tail()}")
        logs = "\n".join(w.log_tail() for w in workers)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{logs}")

    def close(self) -> None:
        self.consumer.close()


def produce(settings: Settings, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Send (short topic, key, value) records with acks=all; returns how many."""
    producer = make_producer(settings, linger_ms=20, enable_idempotence=False)
    n = 0
    try:
        for short, key, value in records:
            producer.send(settings.topic(short), key=key, value=value)
            n += 1
        producer.flush(60)
    finally:
        producer.close()
    return n


def write_policy(path: Path, **changes: Any) -> Path:
    """The default policy with unlimited budgets, plus ``changes`` (section -> fields)."""
    data = load_policy().model_dump()
    for budget in data["budgets"].values():
        budget["per_hour"], budget["burst"] = 1e9, 1e9
    for section, fields in changes.items():
        data[section].update(fields)
    data["version"] += "-test"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def triage_settings(make_settings, topic_prefix: str) -> Settings:
    """Settings on the session broker and Redis, with every registry topic created."""
    settings = make_settings()
    ensure_topics(settings)
    return settings


@pytest.fixture
def workers(tmp_path: Path):
    """Start workers with ``workers.start(settings, name, **env)``; all stopped at the end."""
    started: list[TriageWorker] = []

    class _Workers:
        def start(self, settings: Settings, name: str, **env: Any) -> TriageWorker:
            w = TriageWorker(settings, name, tmp_path, **env).start()
            started.append(w)
            return w

    yield _Workers()
    for w in started:
        w.stop()
