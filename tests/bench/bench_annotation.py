"""Benchmark: a scripted annotator labels 500 tasks through the annotation API.

Run with ``make bench`` (all benchmarks) or ``python -m tests.bench.run annotation``.

It starts what it needs on free loopback ports: an Apache Kafka broker and Redis (or uses
``FLYWHEEL_TEST_KAFKA_BOOTSTRAP`` / ``FLYWHEEL_TEST_REDIS_URL``), a SQLite database, and the
annotation service as its own process (``python -m flywheel.services.annotation.main``, with
its Faust consumer). 500 rate tasks are produced to ``annotation.tasks``; once they are queued,
one client with an API token claims and labels them one after another over HTTP. Latency is
measured per claim, per submit and per claim-and-submit; the target is p99 < 100 ms per
claim-and-submit. Finally every label is read back from ``annotation.labels``.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from tests.bench.deps import dependencies

TASKS = 500
TARGET_P99_MS = 100.0
DEADLINE_S = 120.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _service(stack: ExitStack, root: Path, env: dict[str, str], port: int) -> str:
    log = open(root / "annotation.log", "wb")  # noqa: SIM115
    stack.callback(log.close)
    process = subprocess.Popen([sys.executable, "-m", "flywheel.services.annotation.main"],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)

    def stop() -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if process.poll() is not None:
            raise RuntimeError("the annotation service exited:\n"
                               + (root / "annotation.log").read_text()[-3000:])
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the annotation service was not ready in time")
        time.sleep(0.2)


def _produce_tasks(settings, count: int) -> None:  # noqa: ANN001
    from flywheel.events.codec import encode
    from flywheel.events.envelope import stamp
    from flywheel.kafka.producer import make_producer
    from flywheel.v1 import annotation_pb2

    producer = make_producer(settings)
    try:
        for i in range(count):
            trace_id = f"tr_bench_{i}"
            event = annotation_pb2.AnnotationTask(
                task_id=f"at_bench_{uuid.uuid4().hex[:10]}", trace_id=trace_id,
                kind=annotation_pb2.ANNOTATION_KIND_RATE, priority=(i % 97) / 97,
                required_annotators=1, intent="order_status")
            event.trace.trace_id = trace_id
            event.trace.messages.add(role="user", content=f"Where is my order {1000 + i}?")
            event.trace.messages.add(role="assistant",
                                     content=f"Order {1000 + i} has shipped and arrives soon.")
            producer.send(settings.topic("annotation.tasks"), key=event.task_id.encode(),
                          value=encode(stamp(event, "bench", app_id="shop")))
        producer.flush(timeout=60)
    finally:
        producer.close()


def _count_labels(settings, expected: int) -> int:  # noqa: ANN001
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(settings.topic("annotation.labels"),
                             bootstrap_servers=settings.kafka(), auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    seen = 0
    try:
        deadline = time.monotonic() + DEADLINE_S
        while seen < expected and time.monotonic() < deadline:
            seen += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
    finally:
        consumer.close()
    return seen


def _label_all(client: httpx.Client, headers: dict[str, str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"claim": [], "submit": [], "claim + submit": []}
    while True:
        started = time.perf_counter()
        claimed = client.post("/v1/tasks/claim", headers=headers)
        middle = time.perf_counter()
        if claimed.status_code == 204:
            return times
        claimed.raise_for_status()
        body = claimed.json()
        rating = 3 if "shipped" in body["task"]["answer"][0]["content"] else 1
        done = client.post(f"/v1/tasks/{body['task']['task_id']}/labels", headers=headers,
                           json={"rating": rating, "lease_token": body["lease"]["token"]})
        ended = time.perf_counter()
        done.raise_for_status()
        times["claim"].append((middle - started) * 1000)
        times["submit"].append((ended - middle) * 1000)
        times["claim + submit"].append((ended - started) * 1000)


def _table(times: dict[str, list[float]], wall_s: float, labels_seen: int) -> Table:
    table = Table(title=f"annotation: scripted annotator, {TASKS} rate tasks over HTTP "
                        f"(target p99 < {TARGET_P99_MS:.0f} ms per claim + submit)")
    for column in ("step", "n", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "target"):
        table.add_column(column, justify="right" if column != "step" else "left")
    for step, values in times.items():
        p99 = _percentile(values, 99)
        target = ("PASS" if p99 < TARGET_P99_MS else "FAIL") if step == "claim + submit" else ""
        table.add_row(step, str(len(values)), f"{statistics.fmean(values):.1f}",
                      f"{_percentile(values, 50):.1f}", f"{_percentile(values, 95):.1f}",
                      f"{p99:.1f}", f"{max(values):.1f}", target)
    table.caption = (f"{len(times['claim'])} labels in {wall_s:.1f} s "
                     f"({len(times['claim']) / wall_s:.0f} labels/s); "
                     f"{labels_seen} labels read back from annotation.labels")
    return table


def main() -> None:
    """Start the dependencies and the service, label 500 tasks, print the table."""
    from flywheel.db.engine import make_engine, migrate
    from flywheel.services.annotation import auth
    from flywheel.stack.process import free_port
    from flywheel.settings import Settings

    console = Console()
    with ExitStack() as stack:
        root = Path(tempfile.mkdtemp(prefix="flywheel-bench-annotation-"))
        kafka, redis_url = dependencies(stack, root)
        settings = Settings(env="test", data_dir=root, kafka_bootstrap=kafka, redis_url=redis_url,
                            topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
                            database_url=f"sqlite:///{root / 'flywheel.db'}")
        migrate(settings.database())
        engine = make_engine(settings.database())
        auth.create_annotator(engine, "scripted", "bench-password", "annotator")
        token = auth.create_token(engine, "scripted", "bench")
        engine.dispose()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
        env.update({"FLYWHEEL_ENV": "test", "FLYWHEEL_DATA_DIR": str(root),
                    "FLYWHEEL_KAFKA_BOOTSTRAP": kafka, "FLYWHEEL_REDIS_URL": redis_url,
                    "FLYWHEEL_DATABASE_URL": settings.database(),
                    "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix, "FLYWHEEL_LOG_LEVEL": "WARNING",
                    "FLYWHEEL_ANNOTATION_PORT": str(port)})
        base = _service(stack, root, env, port)
        _produce_tasks(settings, TASKS)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + DEADLINE_S
            while client.get("/v1/queue", headers=headers).json()["label_queue"] < TASKS:
                if time.monotonic() > deadline:
                    raise RuntimeError("the tasks did not all reach the queue in time")
                time.sleep(0.2)
            started = time.perf_counter()
            times = _label_all(client, headers)
            wall = time.perf_counter() - started
        labels_seen = _count_labels(settings, TASKS)
        console.print(_table(times, wall, labels_seen))
        if len(times["claim"]) != TASKS or labels_seen < TASKS:
            raise RuntimeError(f"labelled {len(times['claim'])}, read back {labels_seen} "
                               f"of {TASKS}")


if __name__ == "__main__":
    main()
