"""Triage throughput on the cheap path (no model calls), one worker and two workers.

Starts its own Kafka broker and Redis (flywheel.stack) on free loopback ports, produces a mix
of shop traces (chats, agent runs failing both ways, some PII, many duplicates) and measures, on
the same topic in the same run:

* the raw consume rate of traces.raw with aiokafka (the ceiling);
* a no-op Faust agent reading it in batches (Faust's own cost);
* the triage worker, one process: decisions per second between its first and last decision
  (broker timestamps, so start-up and recovery do not count);
* two triage workers sharing the partitions (total and per worker).

Run ``make bench`` or ``python -m tests.bench.run triage``; ``FLYWHEEL_BENCH_TRIAGE_N`` sets the
number of traces (default 20,000).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TARGET_PER_WORKER = 1500
N_DEFAULT = 20_000


def _traces(n: int) -> list[tuple[bytes, bytes]]:
    from flywheel.services.triage import samples

    rng = random.Random(20261121)
    out = []
    for i in range(n):
        kind = i % 10
        if kind < 7:
            trace = samples.chat_trace(rng, f"b-{i}", correct=kind != 0,
                                       pii="email" if i % 13 == 0 else None)
        else:
            trace = samples.agent_trace(rng, f"b-{i}",
                                        failure=(None, "invented_tool", "tool_timeout")[kind - 7])
        out.append(samples.record(trace))
    return out


def _produce(settings, records) -> float:
    from flywheel.kafka.producer import make_producer

    producer = make_producer(settings, linger_ms=20, batch_size=512 * 1024,
                             enable_idempotence=False)
    started = time.perf_counter()
    for key, value in records:
        producer.send(settings.topic("traces.raw"), key=key, value=value)
    producer.flush(120)
    producer.close()
    return len(records) / (time.perf_counter() - started)


async def _raw_consume(bootstrap: str, topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        from flywheel.events.topics import get_topic

        tps = [TopicPartition(topic, p) for p in range(get_topic("traces.raw").partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        await consumer.getmany(timeout_ms=1000, max_records=1)  # connect and fetch metadata
        await consumer.seek_to_beginning(*tps)
        seen, started = 0, time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in batches.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _noop_agent(bootstrap: str, prefix: str, n: int, data_dir: str) -> None:
    """Child process: a Faust agent that only counts batches; prints its rate and exits."""
    import faust

    from flywheel.kafka.faust_app import make_faust_app
    from flywheel.settings import Settings

    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, data_dir=Path(data_dir))
    (settings.data_dir / "faust" / "noop").mkdir(parents=True, exist_ok=True)
    app = make_faust_app(settings, "noop")
    source = app.topic(settings.topic("traces.raw"), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw", partitions=6)
    state = {"n": 0, "t0": 0.0}

    @app.agent(source)
    async def count(stream):  # noqa: ANN001
        async for events in stream.take_events(500, within=0.05):
            if not state["n"]:
                state["t0"] = time.perf_counter()
            state["n"] += len(events)
            if state["n"] >= n:
                sys.stdout.write(f"RATE {state['n'] / (time.perf_counter() - state['t0']):.1f}\n")
                sys.stdout.flush()
                os._exit(0)

    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


def _run_noop(settings, n: int, tmp: Path) -> float:
    proc = subprocess.run([sys.executable, "-m", "tests.bench.bench_triage", "--noop-agent",
                           settings.kafka(), settings.topic_prefix, str(n), str(tmp / "noop")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    for line in proc.stdout.splitlines():
        if "RATE " in line:  # the worker's terminal codes may precede it
            return float(line.split("RATE ", 1)[1].split()[0])
    raise RuntimeError(f"no-op agent failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _policy(tmp: Path) -> Path:
    from flywheel.services.triage.logic.policy import load_policy

    data = load_policy().model_dump()
    for budget in data["budgets"].values():  # the bench measures processing, not budget waits
        budget["per_hour"], budget["burst"] = 1e9, 1e9
    data["version"] += "-bench"
    path = tmp / "bench_policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start_worker(settings, name: str, tmp: Path, policy: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update({"FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(), "FLYWHEEL_REDIS_URL": settings.redis(),
                "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix,
                "FLYWHEEL_DATA_DIR": str(tmp / name),
                "FLYWHEEL_LOG_LEVEL": os.environ.get("FLYWHEEL_BENCH_LOG_LEVEL", "WARNING"),
                "FLYWHEEL_TRIAGE_HOLD_S": "0", "FLYWHEEL_TRIAGE_MODEL_URL": "",
                "FLYWHEEL_TRIAGE_POLICY_PATH": str(policy), "FLYWHEEL_TRIAGE_INSTANCE": name})
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "flywheel.services.triage.main"], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _triage_rate(settings, n: int, workers: int, tmp: Path, policy: Path) -> dict[str, float]:
    """Decisions per second over all workers between the first and the last decision, the wall
    time from start to the last decision, and the workers' CPU seconds per trace in that span."""
    from kafka import KafkaConsumer, TopicPartition

    procs = [_start_worker(settings, f"{settings.topic_prefix}-w{i}", tmp, policy)
             for i in range(workers)]
    started = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka(), group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    topic = settings.topic("traces.triaged")
    consumer.assign([TopicPartition(topic, p) for p in range(6)])
    first: dict[bytes, int] = {}
    cpu_start = None
    try:
        deadline = time.monotonic() + 900
        while len(first) < n:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"triage run stopped early with {len(first)}/{n} decisions; "
                                   f"see the logs in {tmp}")
            for records in consumer.poll(timeout_ms=200, max_records=10_000).values():
                if cpu_start is None:
                    cpu_start = sum(_cpu_seconds(p.pid) for p in procs)
                for r in records:
                    first.setdefault(r.key, r.timestamp)
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - (cpu_start or 0.0)
        wall = time.perf_counter() - started
    finally:
        consumer.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    stamps = sorted(first.values())
    span = max(1e-3, (stamps[-1] - stamps[0]) / 1000)
    return {"rate": (len(stamps) - 1) / span, "wall": wall, "cpu_per_trace": cpu / n,
            "cpu_share": cpu / span / workers}


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from flywheel.services.triage.main import ensure_topics
    from flywheel.settings import Settings
    from flywheel.stack.kafka import KafkaServer
    from flywheel.stack.process import free_port
    from flywheel.stack.redis import RedisServer

    n = int(os.environ.get("FLYWHEEL_BENCH_TRIAGE_N", N_DEFAULT))
    console = Console(width=150)
    keep = os.environ.get("FLYWHEEL_BENCH_KEEP") == "1"  # keep logs and data for a post-mortem
    with tempfile.TemporaryDirectory(prefix="bench-triage-") as tmpdir:
        tmp = Path(tempfile.mkdtemp(prefix="bench-triage-kept-")) if keep else Path(tmpdir)
        port = free_port()
        kafka = KafkaServer(tmp / "kafka", port, free_port(avoid=[port]),
                            libs_dir=REPO / "var" / "kafka" / "libs", strict_ports=False)
        redis = RedisServer(tmp / "redis", free_port(), strict_port=False)
        kafka.start(timeout_s=180)
        redis.start()
        try:
            one = Settings(kafka_bootstrap=kafka.address, redis_url=redis.url, topic_prefix="bench1",
                           data_dir=tmp)
            two = one.model_copy(update={"topic_prefix": "bench2"})
            for s in (one, two):
                ensure_topics(s)
            records = _traces(n)
            produce_rate = _produce(one, records)
            _produce(two, records)
            policy = _policy(tmp)
            load_before = _load()
            raw = asyncio.run(_raw_consume(one.kafka(), one.topic("traces.raw"), n))
            noop = _run_noop(one, n, tmp)
            r1 = _triage_rate(one, n, 1, tmp, policy)
            r2 = _triage_rate(two, n, 2, tmp, policy)
            load_after = _load()
        finally:
            kafka.stop()
            redis.stop()
    table = Table(title=f"triage throughput, cheap path, {n:,} traces (load avg {load_before} "
                        f"-> {load_after}, {os.cpu_count()} cores)")
    for col in ("measurement", "rate /s", "per worker /s", "vs raw consume", "CPU/trace",
                "CPU share", "per worker at 1 core", "target"):
        table.add_column(col, justify="right" if col != "measurement" else "left")
    table.add_row("produce (kafka-python, acks=all)", f"{produce_rate:,.0f}", "", "", "", "", "", "")
    table.add_row("raw consume traces.raw (aiokafka, ceiling)", f"{raw:,.0f}", "", "100%", "", "",
                  "", "")
    table.add_row("no-op Faust agent, take_events(500)", f"{noop:,.0f}", f"{noop:,.0f}",
                  f"{noop / raw:.0%}", "", "", "", "")
    for label, r, w in (("triage, 1 worker", r1, 1), ("triage, 2 workers", r2, 2)):
        table.add_row(f"{label} ({r['wall']:.0f} s wall)", f"{r['rate']:,.0f}",
                      f"{r['rate'] / w:,.0f}", f"{r['rate'] / raw:.1%}",
                      f"{r['cpu_per_trace'] * 1e6:,.0f} us", f"{r['cpu_share']:.0%}",
                      f"{1 / r['cpu_per_trace']:,.0f}", f"{TARGET_PER_WORKER:,}")
    console.print(table)
    console.print("CPU share: the part of one core each worker got while deciding (other "
                  "processes share the machine); per worker at 1 core = 1 / CPU per trace.")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--noop-agent":
        _noop_agent(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
