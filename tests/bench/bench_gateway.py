"""Ingest benchmark: the gateway into traces.raw versus a raw producer, on a real broker.

Run with ``make bench`` (all benchmarks) or ``python -m tests.bench.run gateway``. It starts
its own Apache Kafka broker and Redis (flywheel.stack) on free loopback ports, makes an API
key in a SQLite file, starts the gateway as its own process (``python -m
flywheel.services.gateway.main``), drives it over HTTP from this process (keep-alive
connections through the lean client of ``tests/bench/http_load.py``, on uvloop like the
gateway), and in the same run writes the same trace payloads straight to the broker. Everything shares
the machine's cores, so the numbers are what this box does end to end, not a gateway alone.

Phases (each ``PHASE_S`` seconds):

- raw producer, aiokafka (``send``, acks=all, idempotent, linger 5 ms) and kafka-python;
- single-trace requests, JSON, closed loop at fixed concurrency (the rate it sustains);
- single-trace requests, open loop at 1,500 req/s over a fixed pool of 64 keep-alive
  connections opened before it starts (latency counted from the scheduled send, so a request
  waiting for a free connection is charged the wait; the target line also says how late the
  load generator itself sent, p99 and max);
- batches of 100 traces, JSON and binary Protobuf, with Kafka transactions (the default) and
  without (``ATOMIC_BATCHES=false``), to show what atomic batches cost.

The bench process's garbage collector is off during each phase (see :func:`_collector_off`).
Before the first phase, ``WARM_UP_S`` (60 s) of the same writes run unmeasured, so the broker's
JIT is warm (see :func:`_warm_up`).

Targets: batched ingest >= 50% of the raw aiokafka producer's rate; single-trace requests
sustain 1,500 req/s with p99 < 50 ms.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.bench.http_load import HttpLoad, run

REPO = Path(__file__).resolve().parents[2]
KAFKA_LIBS = REPO / "var" / "kafka" / "libs"
PHASE_S = float(os.environ.get("FLYWHEEL_BENCH_PHASE_S", "12"))
WARMUP_S = 2.0  # unmeasured start of each gateway phase
# Unmeasured load before the first phase, so the broker's JIT is warm (see _warm_up).
WARM_UP_S = float(os.environ.get("FLYWHEEL_BENCH_WARM_UP_S", "60"))
SINGLE_CONCURRENCY = 16
# Batch requests in flight at once: enough to keep both workers and their transaction lanes
# busy. With 6, a worker spent part of each cycle waiting for its commits (14-16k Protobuf
# traces/s against 19-21k with 12 in the same runs, p99 65-73 ms against 107-144 ms).
BATCH_CONCURRENCY = int(os.environ.get("FLYWHEEL_BENCH_BATCH_CONCURRENCY", "12"))
BATCH = 100
OPEN_LOOP_RATE = 1500.0
OPEN_LOOP_CONNECTIONS = int(os.environ.get("FLYWHEEL_BENCH_OPEN_LOOP_CONNECTIONS", "64"))
# One worker per core: on this 2-core box two workers beat one even though the broker, Redis
# and the load generator share the cores (batched Protobuf 41-46 % of the raw producer against
# 23-27 %). Override with FLYWHEEL_BENCH_GATEWAY_WORKERS.
WORKERS = int(os.environ.get("FLYWHEEL_BENCH_GATEWAY_WORKERS", str(os.cpu_count() or 1)))


@dataclass
class Result:
    name: str
    requests: int = 0
    events: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    note: str = ""
    statuses: dict[int, int] = field(default_factory=dict)  # error statuses seen
    client_cpu_s: float = 0.0  # the load generator's CPU (this process), gateway phases only
    cpu_s: float = 0.0  # CPU seconds of the writer (gateway processes, or the raw producer)
    # open loop: how late the load generator sent each request after its scheduled time (its
    # own scheduling delays on the shared cores; they are inside the latencies above)
    send_lags: list[float] = field(default_factory=list)
    transactions: float = 0.0  # Kafka transactions the gateway committed in the phase
    transaction_requests: float = 0.0  # batch requests in them (group commit)
    broker_cpu_s: float = 0.0  # the broker's CPU during the phase (its JIT warms up under load)
    steal: float = float("nan")  # share of the machine's CPU time the hypervisor took

    @property
    def broker_cores(self) -> float:
        return self.broker_cpu_s / self.seconds if self.seconds else float("nan")

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s / self.events * 1e6 if self.events else float("nan")

    @property
    def client_cpu_us_per_request(self) -> float:
        return self.client_cpu_s / self.requests * 1e6 if self.requests and self.client_cpu_s \
            else float("nan")

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float, values: list[float] | None = None) -> float:
        """The ``q`` quantile of the latencies (or of ``values``) in milliseconds."""
        values = self.latencies if values is None else values
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# --- payloads ----------------------------------------------------------------------------------

def _sample_trace() -> dict:
    """The golden Trace (a realistic agent turn with tool calls, ~4 KB of JSON), sans envelope."""
    data = json.loads((REPO / "tests" / "golden" / "v1" / "Trace.json").read_text())
    data.pop("envelope", None)
    data.pop("app_id", None)
    return data


class Payloads:
    """Request bodies with fresh, fixed-length trace ids, cut from pre-encoded templates so
    that making a body costs the load generator next to nothing."""

    def __init__(self) -> None:
        from flywheel.events.codec import from_dict

        self.base = _sample_trace()
        self.run = uuid.uuid4().hex[:8]
        self.counter = 0
        self.placeholder = self._id(0)
        text = json.dumps({**self.base, "trace_id": self.placeholder}).encode()
        self._json = text.split(self.placeholder.encode())
        proto = from_dict({**self.base, "trace_id": self.placeholder}, "Trace").SerializeToString()
        self._proto = proto.split(self.placeholder.encode())
        assert len(self._json) == 2 and len(self._proto) == 2

    def _id(self, n: int) -> str:
        return f"bench-{self.run}-{n:012d}"

    def next_id(self) -> bytes:
        self.counter += 1
        return self._id(self.counter).encode()

    def json_single(self) -> bytes:
        return self.next_id().join(self._json)

    def json_batch(self) -> bytes:
        return b'{"traces":[' + b",".join(self.next_id().join(self._json)
                                          for _ in range(BATCH)) + b"]}"

    def proto_batch(self) -> bytes:
        from flywheel.client.wire import frame

        return frame([self.next_id().join(self._proto) for _ in range(BATCH)])

    def encoded_events(self, n: int) -> list[tuple[bytes, bytes]]:
        """(key, value) as the gateway would write them: stamped, binary Protobuf."""
        from datetime import datetime, timezone

        from flywheel.events.codec import encode, from_dict
        from flywheel.events.envelope import new_envelope

        template = from_dict(self.base, "Trace")
        template.app_id = "bench"
        now = datetime.now(timezone.utc)
        out = []
        for _ in range(n):
            trace_id = self.next_id().decode()
            template.trace_id = trace_id
            template.envelope.CopyFrom(new_envelope(template, "bench", trace_id=trace_id,
                                                    app_id="bench", occurred_at=now))
            out.append((trace_id.encode(), encode(template)))
        return out


# --- the stack -------------------------------------------------------------------------------

@dataclass
class Stack:
    root: Path
    kafka: object
    redis: object
    database_url: str
    prefix: str
    key: str = ""
    gateway: subprocess.Popen | None = None
    gateway_url: str = ""

    @property
    def bootstrap(self) -> str:
        return self.kafka.address  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.stop_gateway()
        for component in (self.redis, self.kafka):
            try:
                component.stop()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001
                print(f"could not stop {component}: {exc}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)

    def start_gateway(self, **env: str) -> None:
        from flywheel.stack.process import free_port

        self.stop_gateway()
        port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")},
            "FLYWHEEL_ENV": "test", "FLYWHEEL_DATA_DIR": str(self.root / "gw"),
            "FLYWHEEL_KAFKA_BOOTSTRAP": self.bootstrap,
            "FLYWHEEL_REDIS_URL": self.redis.url,  # type: ignore[attr-defined]
            "FLYWHEEL_DATABASE_URL": self.database_url, "FLYWHEEL_TOPIC_PREFIX": self.prefix,
            "FLYWHEEL_LOG_LEVEL": "WARNING", "FLYWHEEL_GATEWAY_PORT": str(port),
            "FLYWHEEL_GATEWAY_WORKERS": str(WORKERS),
            "FLYWHEEL_GATEWAY_RATE_PER_S": "1000000", "FLYWHEEL_GATEWAY_RATE_BURST": "1000000",
            **env,
        }
        log = open(self.root / f"gateway-{port}.log", "wb")  # noqa: SIM115
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "flywheel.services.gateway.main"], cwd=REPO,
            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.gateway_url = f"http://127.0.0.1:{port}"
        _wait_ready(self.gateway_url, self.gateway)

    def stop_gateway(self) -> None:
        if self.gateway is None:
            return
        try:
            os.killpg(self.gateway.pid, signal.SIGTERM)
            self.gateway.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.gateway.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.gateway = None


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the gateway did not become ready")


def start_stack() -> Stack:
    from flywheel.db.engine import make_engine, migrate
    from flywheel.events.topics import TOPICS
    from flywheel.kafka.admin import create_topics
    from flywheel.keys import create_key
    from flywheel.stack import KafkaServer, RedisServer
    from flywheel.stack.process import free_port

    root = Path(tempfile.mkdtemp(prefix="flywheel-bench-gw-"))
    port = free_port()
    kafka = KafkaServer(root / "kafka", port, free_port(avoid=[port]), libs_dir=KAFKA_LIBS,
                        die_with_parent=True).start(timeout_s=180)
    redis = RedisServer(root / "redis", free_port(), die_with_parent=True).start()
    database_url = f"sqlite:///{root / 'keys.db'}"
    stack = Stack(root, kafka, redis, database_url, prefix="bench" + uuid.uuid4().hex[:6])
    migrate(database_url)
    engine = make_engine(database_url)
    stack.key = create_key(engine, "bench").plain
    engine.dispose()
    create_topics(stack.bootstrap, stack.prefix, [TOPICS["traces.raw"], TOPICS["feedback.events"]])
    return stack


def _gateway_cpu(stack: Stack) -> float:
    """CPU seconds used so far by the gateway process and its workers."""
    import psutil

    if stack.gateway is None:
        return 0.0
    root = psutil.Process(stack.gateway.pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _transaction_totals(stack: Stack) -> tuple[float, float]:
    """(transactions, batch requests in them) the gateway committed so far, from /metrics."""
    import re

    import httpx

    if stack.gateway is None:
        return 0.0, 0.0
    try:
        text = httpx.get(f"{stack.gateway_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return float("nan"), float("nan")
    values = [re.search(rf"^flywheel_gateway_transaction_requests_{name} (\S+)$", text, re.M)
              for name in ("count", "sum")]
    return tuple(float(v[1]) if v else 0.0 for v in values)  # type: ignore[return-value]


def _broker_cpu(stack: Stack) -> float:
    """CPU seconds used so far by the broker's JVM."""
    import psutil

    try:
        times = psutil.Process(stack.kafka.pid).cpu_times()  # type: ignore[attr-defined]
    except (psutil.Error, TypeError, ValueError):
        return float("nan")
    return times.user + times.system


def _cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat (0, 0 elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user and nice]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


# --- load generation ---------------------------------------------------------------------

def _target(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path


async def closed_loop(url: str, key: str, make_body, content_type: str,  # noqa: ANN001
                      concurrency: int, events_per_request: int, name: str,
                      seconds: float | None = None) -> Result:
    """``concurrency`` connections each sending back to back for ``seconds`` (PHASE_S) after
    a warm-up."""
    seconds = PHASE_S if seconds is None else seconds
    result = Result(name)
    base, path = _target(url)
    load = HttpLoad(base, concurrency)
    headers = {"x-api-key": key, "content-type": content_type}
    measuring = False
    stop_at = time.monotonic() + WARMUP_S + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            request = load.request_bytes(path, headers, make_body())
            started = time.perf_counter()
            status = await load.send(request)
            ok = status == 200
            if not ok:
                result.statuses[status] = result.statuses.get(status, 0) + 1
            if measuring:
                result.requests += 1
                result.latencies.append(time.perf_counter() - started)
                result.events += events_per_request if ok else 0
                result.errors += 0 if ok else 1

    try:
        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(WARMUP_S)
        measuring, began = True, time.monotonic()
        await asyncio.gather(*tasks)
        result.seconds = time.monotonic() - began
    finally:
        load.close()
    return result


async def open_loop(url: str, key: str, make_body, rate: float, name: str,  # noqa: ANN001
                    connections: int = OPEN_LOOP_CONNECTIONS, seconds: float | None = None,
                    ) -> Result:
    """Send at a fixed schedule; latency runs from the scheduled time (no coordinated omission).

    Every millisecond the requests that are due go out (no task per request: answers arrive
    as callbacks), so the generator's own CPU stays small next to the gateway's.
    """
    result = Result(name)
    base, path = _target(url)
    load = HttpLoad(base, connections)
    await load.open_all()
    headers = {"x-api-key": key, "content-type": "application/json"}
    loop = asyncio.get_running_loop()
    outstanding = 0
    sending = True  # all_done only once the last request went out and every one is answered
    all_done = loop.create_future()

    def answered(scheduled: float, status: int) -> None:
        nonlocal outstanding
        ok = status == 200
        if not ok:
            result.statuses[status] = result.statuses.get(status, 0) + 1
        result.latencies.append(time.perf_counter() - scheduled)
        result.requests += 1
        result.events += 1 if ok else 0
        result.errors += 0 if ok else 1
        outstanding -= 1
        if outstanding == 0 and not sending and not all_done.done():
            all_done.set_result(None)

    def send(scheduled: float) -> None:
        nonlocal outstanding
        outstanding += 1
        load.submit(load.request_bytes(path, headers, make_body()),
                    lambda status: answered(scheduled, status))
        result.send_lags.append(time.perf_counter() - scheduled)

    try:
        for _ in range(200):  # warm-up: connections and caches
            send(time.perf_counter())
        sending = False
        await all_done
        result.latencies.clear()
        result.send_lags.clear()
        result.statuses.clear()
        result.requests = result.events = result.errors = 0
        all_done, sending = loop.create_future(), True
        total, sent = int(rate * (PHASE_S if seconds is None else seconds)), 0
        began = time.perf_counter()
        while sent < total:
            due = min(total, int((time.perf_counter() - began) * rate) + 1)
            while sent < due:
                send(began + sent / rate)
                sent += 1
            await asyncio.sleep(0.001)
        sending = False
        if outstanding:
            await all_done
        result.seconds = time.perf_counter() - began
    finally:
        load.close()
    return result


def _cycle(events: list[tuple[bytes, bytes]]):  # noqa: ANN202
    while True:
        yield from events


async def raw_aiokafka(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]],
                       seconds: float | None = None) -> Result:
    """aiokafka as a service would use it: ``send`` per record, acks=all, idempotent."""
    seconds = PHASE_S if seconds is None else seconds
    from aiokafka import AIOKafkaProducer

    result = Result("raw producer: aiokafka send()")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        source = _cycle(events)
        await asyncio.gather(*[await producer.send(topic, v, key=k)
                               for k, v in (next(source) for _ in range(2000))])
        began, futures, cpu = time.monotonic(), [], time.process_time()
        while time.monotonic() - began < seconds:
            for _ in range(5000):
                key, value = next(source)
                futures.append(await producer.send(topic, value, key=key))
            await asyncio.gather(*futures)
            result.events += len(futures)
            futures.clear()
        result.seconds = time.monotonic() - began
        result.cpu_s = time.process_time() - cpu
    finally:
        await producer.stop()
    result.requests = result.events
    return result


def raw_kafka_python(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> Result:
    """kafka-python (the SDK's direct mode): ``send`` per record, acks=all, idempotent."""
    from flywheel.kafka.producer import make_producer

    result = Result("raw producer: kafka-python send()")
    producer = make_producer(bootstrap, client_id="bench-raw")
    try:
        source = _cycle(events)
        for _ in range(2000):
            key, value = next(source)
            producer.send(topic, key=key, value=value)
        producer.flush()
        began, cpu = time.monotonic(), time.process_time()
        while time.monotonic() - began < PHASE_S:
            for _ in range(2000):
                key, value = next(source)
                producer.send(topic, key=key, value=value)
            result.events += 2000
        producer.flush()
        result.seconds = time.monotonic() - began
        result.cpu_s = time.process_time() - cpu
    finally:
        producer.close()
    result.requests = result.events
    return result


# --- the run ----------------------------------------------------------------------------------

@contextmanager
def _collector_off() -> Iterator[None]:
    """The load generator's (this process's) cyclic garbage collector off for one phase.

    This process holds the payloads, the stack handles and every imported module; a full
    collection here took 110-118 ms (measured with gc.callbacks), during which no request was
    sent, and the open loop counted that pause in the latency of every request due in it
    (about 170 requests, 1 % of a 12 s phase at 1,500 req/s: enough to decide its p99). The
    raw producer phases run the same way, so both sides of the comparison are measured alike.
    The collector runs before and after the phase instead.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _measured(stack: Stack, coro) -> Result:  # noqa: ANN001 - a coroutine to run
    """A gateway phase: its result with the gateway's and the load generator's CPU, the
    transactions committed, the broker's CPU and the steal."""
    transactions = _transaction_totals(stack)

    def phase() -> Result:
        before, client = _gateway_cpu(stack), time.process_time()
        result = run(coro)
        result.client_cpu_s = time.process_time() - client
        # The load before the measured window is small (a 2 s warm-up); it is counted too.
        result.cpu_s = _gateway_cpu(stack) - before
        return result

    result = _raw_measured(stack, phase)
    after = _transaction_totals(stack)
    result.transactions = after[0] - transactions[0]
    result.transaction_requests = after[1] - transactions[1]
    return result


def _raw_measured(stack: Stack, phase) -> Result:  # noqa: ANN001 - returns the phase's Result
    """``phase()`` with the collector off, and the broker's CPU and the steal during it."""
    with _collector_off():
        broker, ticks = _broker_cpu(stack), _cpu_ticks()
        result = phase()
    result.broker_cpu_s = _broker_cpu(stack) - broker
    _phase_steal(result, ticks)
    return result


def _phase_steal(result: Result, ticks: tuple[int, int]) -> None:
    steal, total = _cpu_ticks()
    if total > ticks[1]:
        result.steal = (steal - ticks[0]) / (total - ticks[1])


def _gateway_phases(stack: Stack, payloads: Payloads, label: str, singles: bool = True,
                    ) -> list[Result]:
    url = f"{stack.gateway_url}/v1/traces"
    results = []
    if singles:
        results.append(_measured(stack, closed_loop(
            url, stack.key, payloads.json_single, "application/json", SINGLE_CONCURRENCY, 1,
            f"gateway {label}: 1 trace/request, JSON, {SINGLE_CONCURRENCY} connections")))
        results.append(_measured(stack, open_loop(
            url, stack.key, payloads.json_single, OPEN_LOOP_RATE,
            f"gateway {label}: 1 trace/request, JSON, open loop {OPEN_LOOP_RATE:.0f} req/s, "
            f"{OPEN_LOOP_CONNECTIONS} connections")))
    results.append(_measured(stack, closed_loop(
        url, stack.key, payloads.json_batch, "application/json", BATCH_CONCURRENCY, BATCH,
        f"gateway {label}: {BATCH} traces/request, JSON")))
    results.append(_measured(stack, closed_loop(
        url, stack.key, payloads.proto_batch, "application/x-protobuf; delimited=true",
        BATCH_CONCURRENCY, BATCH, f"gateway {label}: {BATCH} traces/request, Protobuf")))
    return results


def _warm_up(stack: Stack, payloads: Payloads, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    """Load the broker with every kind of write the phases make before any phase is measured.

    The broker's JIT compiles its request paths while they carry load: in four back-to-back
    10 s runs of batched Protobuf through the gateway with transactions, the broker's CPU fell
    from 0.74 to 0.52, 0.38 and 0.30 cores while the gateway's rate rose from 14,683 to 23,086
    traces/s; a production broker has long been warm. So the raw producer, transactional
    batches and single-trace requests run unmeasured first (``WARM_UP_S`` in all), and the
    table's "broker cores" column shows what each measured phase cost the broker.
    """
    if WARM_UP_S <= 0:
        return
    started = time.monotonic()
    url = f"{stack.gateway_url}/v1/traces"
    with _collector_off():
        run(raw_aiokafka(stack.bootstrap, topic, events, seconds=WARM_UP_S * 0.25))
        run(closed_loop(url, stack.key, payloads.proto_batch,
                        "application/x-protobuf; delimited=true", BATCH_CONCURRENCY, BATCH,
                        "warm-up", seconds=WARM_UP_S * 0.5))
        run(open_loop(url, stack.key, payloads.json_single, OPEN_LOOP_RATE, "warm-up",
                      seconds=WARM_UP_S * 0.25))
    print(f"warm-up: {time.monotonic() - started:.0f} s of raw, batched and single-trace "
          "writes before the measured phases", flush=True)


def _print(results: list[Result], raw_rate: float) -> None:
    from rich.console import Console
    from rich.table import Table

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(title=f"Gateway ingest into traces.raw ({os.cpu_count()} cores, load average "
                        f"{load}, {WORKERS} gateway workers, {PHASE_S:.0f} s per phase)")
    for column in ("phase", "traces/s", "req/s", "p50 ms", "p99 ms", "errors", "vs raw aiokafka",
                   "writer CPU µs/trace", "client CPU µs/req", "req/txn", "broker cores",
                   "steal"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for r in results:
        share = f"{r.events_per_s / raw_rate:.0%}" if raw_rate else "-"
        if r.statuses:
            r.note = ", ".join(f"{n}x {code or 'no answer'}" for code, n in sorted(r.statuses.items()))
        table.add_row(r.name + (f" ({r.note})" if r.note else ""), f"{r.events_per_s:,.0f}",
                      f"{r.requests_per_s:,.0f}",
                      "-" if not r.latencies else f"{r.pct(0.50):.1f}",
                      "-" if not r.latencies else f"{r.pct(0.99):.1f}", str(r.errors), share,
                      f"{r.cpu_us_per_event:,.0f}",
                      "-" if math.isnan(r.client_cpu_us_per_request)
                      else f"{r.client_cpu_us_per_request:,.0f}",
                      f"{r.transaction_requests / r.transactions:.1f}" if r.transactions > 0
                      else "-",
                      "-" if math.isnan(r.broker_cores) else f"{r.broker_cores:.2f}",
                      "-" if math.isnan(r.steal) else f"{r.steal:.0%}")
    Console(width=200).print(table)


def _targets(results: list[Result], raw_rate: float) -> None:
    by_name = {r.name: r for r in results}
    batched = max((r.events_per_s for n, r in by_name.items()
                   if "traces/request" in n and "atomic" in n), default=0.0)
    single = next((r for n, r in by_name.items() if "open loop" in n and "atomic" in n), None)
    print(f"target: batched ingest >= 50% of raw aiokafka: "
          f"{batched / raw_rate:.0%} ({'met' if batched >= raw_rate / 2 else 'MISSED'})")
    if single is not None:
        ok = single.requests_per_s >= OPEN_LOOP_RATE * 0.97 and single.pct(0.99) < 50 \
            and not single.errors
        print(f"target: 1,500 single-trace req/s with p99 < 50 ms: "
              f"{single.requests_per_s:,.0f} req/s, p99 {single.pct(0.99):.1f} ms, "
              f"{single.errors} errors ({'met' if ok else 'MISSED'}); the load generator "
              f"sent p99 {single.pct(0.99, single.send_lags):.1f} ms, max "
              f"{single.pct(1.0, single.send_lags):.1f} ms after schedule")


def main() -> None:
    """Start the stack, run every phase, print the table, stop everything."""
    stack = start_stack()
    try:
        payloads = Payloads()
        topic = f"{stack.prefix}.traces.raw.v1"
        events = payloads.encoded_events(20_000)
        stack.start_gateway()
        _warm_up(stack, payloads, topic, events)
        raw = [_raw_measured(stack, lambda: run(raw_aiokafka(stack.bootstrap, topic, events))),
               _raw_measured(stack, lambda: raw_kafka_python(stack.bootstrap, topic, events))]
        results = list(raw)
        results += _gateway_phases(stack, payloads, "atomic")
        stack.start_gateway(FLYWHEEL_GATEWAY_ATOMIC_BATCHES="false")
        results += _gateway_phases(stack, payloads, "plain", singles=False)
        _print(results, raw[0].events_per_s)
        _targets(results, raw[0].events_per_s)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
