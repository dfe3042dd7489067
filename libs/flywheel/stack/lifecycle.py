"""``flywheel dev up | status | down``: the local stack as recorded in the state file.

Layout under the data dir (``FLYWHEEL_DATA_DIR``, default ``var/``)::

    kafka/libs/           broker jars from Maven Central (fetched once)
    stack/state.json      what is running, read by Settings.kafka()/redis()
    stack/kafka/          server.properties and the broker's data (data/)
    stack/redis/          Redis data (append-only file)
    stack/postgres/       PostgreSQL cluster (only with --postgres)
    logs/<name>.log       one log per process

``up`` is idempotent: a recorded process that still runs and answers is reused. When
``FLYWHEEL_KAFKA_BOOTSTRAP`` / ``FLYWHEEL_REDIS_URL`` / a PostgreSQL ``FLYWHEEL_DATABASE_URL``
are set, that component is recorded as external and nothing is started for it. ``down``
stops exactly the processes ``up`` started (PID plus start time) and nothing else.

Services run with ``FLYWHEEL_DATA_DIR`` set to the absolute data dir (so they find the state
file), their port in ``FLYWHEEL_<SERVICE>_PORT``, and, when the stack runs PostgreSQL and no
database is configured, ``FLYWHEEL_DATABASE_URL`` pointing at it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import StackError
from flywheel.settings import Settings
from flywheel.stack.component import HEALTH_OK
from flywheel.stack.kafka import DEFAULT_CONTROLLER_PORT, DEFAULT_PORT as KAFKA_PORT, KafkaServer
from flywheel.stack.postgres import DEFAULT_PORT as PG_PORT, PostgresCluster
from flywheel.stack.process import file_lock, free_port, pid_alive, stop_pid
from flywheel.stack.redis import DEFAULT_PORT as REDIS_PORT, RedisServer, ping
from flywheel.stack.services import (
    ServiceInfo,
    ServiceProcess,
    resolve_services,
    service_health,
    service_port,
)
from flywheel.stack.state import load_state, save_state

INFRA = ("kafka", "redis", "postgres")
Progress = Callable[[str, str], None]


@dataclass
class StackPaths:
    """Where the stack keeps its files under one data dir."""

    data_dir: Path
    kafka_libs: Path | None = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.kafka_libs = Path(self.kafka_libs or self.data_dir / "kafka" / "libs").resolve()

    @property
    def stack(self) -> Path:
        return self.data_dir / "stack"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def lock(self) -> Path:
        return self.stack / ".lock"


@dataclass
class UpResult:
    """What ``up`` did per component ("started", "reused", "external") and how long it took."""

    state: dict[str, Any]
    actions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _quiet(_name: str, _what: str) -> None:
    return None


def _alive(rec: dict[str, Any] | None) -> bool:
    return bool(rec and rec.get("managed") and pid_alive(rec.get("pid"), rec.get("started")))


def _record_external(name: str, state: dict, record: dict[str, Any]) -> str:
    """Record a configured (external) component, never forgetting a process we still run."""
    prev = state.get(name)
    if _alive(prev):
        raise StackError(
            f"{name}: the stack still runs its own {name} (pid {prev['pid']}) but an external one "
            "is configured now; run `flywheel dev down` first so that process is not orphaned")
    state[name] = record
    return "external"


def _up_kafka(settings: Settings, paths: StackPaths, state: dict, timeout_s: float) -> str:
    if settings.kafka_bootstrap:
        return _record_external(
            "kafka", state, {"address": settings.kafka_bootstrap, "pid": None, "managed": False})
    prev = state.get("kafka")
    if _alive(prev):
        server = _kafka_from_record(paths, prev)
        server.wait_ready(timeout_s)
        return "reused"
    port = free_port((prev or {}).get("port") or KAFKA_PORT)
    controller = free_port((prev or {}).get("controller_port") or DEFAULT_CONTROLLER_PORT,
                           avoid=[port])
    server = KafkaServer(paths.stack / "kafka", port, controller, libs_dir=paths.kafka_libs,
                         log_file=paths.logs / "kafka.log", strict_ports=False)
    server.start(timeout_s)
    state["kafka"] = server.record()
    return "started"


def _kafka_from_record(paths: StackPaths, rec: dict) -> KafkaServer:
    server = KafkaServer(paths.stack / "kafka", rec["port"], rec.get("controller_port"),
                         libs_dir=paths.kafka_libs, log_file=Path(rec.get("log") or
                                                                  paths.logs / "kafka.log"))
    server.pid, server.started = rec.get("pid"), rec.get("started")
    return server


def _up_redis(settings: Settings, paths: StackPaths, state: dict, timeout_s: float) -> str:
    if settings.redis_url:
        return _record_external(
            "redis", state, {"url": settings.redis_url, "pid": None, "managed": False})
    prev = state.get("redis")
    if _alive(prev):
        if ping(prev["url"], 2.0) != HEALTH_OK:
            raise StackError(f"redis: pid {prev['pid']} runs but {prev['url']} does not answer "
                             "PING; run `flywheel dev down` and `flywheel dev up` again")
        return "reused"
    port = free_port((prev or {}).get("port") or REDIS_PORT)
    server = RedisServer(paths.stack / "redis", port, persist=True,
                         log_file=paths.logs / "redis.log", strict_port=False)
    server.start(min(timeout_s, 30.0))
    state["redis"] = server.record()
    return "started"


def _up_postgres(settings: Settings, paths: StackPaths, state: dict, timeout_s: float) -> str:
    url = settings.database_url or ""
    if url.startswith("postgresql"):
        return _record_external("postgres", state, {"url": url, "pid": None, "managed": False})
    prev = state.get("postgres")
    if _alive(prev):
        return "reused"
    port = free_port((prev or {}).get("port") or PG_PORT)
    cluster = PostgresCluster(paths.stack / "postgres", port,
                              log_file=paths.logs / "postgres.log", strict_port=False)
    cluster.start(timeout_s)
    state["postgres"] = cluster.record()
    return "started"


def _service_env(settings: Settings, state: dict) -> dict[str, str]:
    """Extra environment for services: the stack's PostgreSQL when no database is configured."""
    pg = state.get("postgres") or {}
    if pg.get("url") and not settings.database_url:
        return {"FLYWHEEL_DATABASE_URL": pg["url"]}
    return {}


def _up_services(chosen: list[ServiceInfo], paths: StackPaths, state: dict, timeout_s: float,
                 progress: Progress, env: dict[str, str]) -> dict[str, str]:
    """Launch every chosen service first, then wait for all: start-up overlaps."""
    services = state.setdefault("services", {})
    actions: dict[str, str] = {}
    launched: list[ServiceProcess] = []
    for info in chosen:
        if _alive(services.get(info.name)):
            actions[info.name] = "reused"
            continue
        taken = tuple(rec.get("port") for rec in services.values() if rec.get("port"))
        proc = ServiceProcess(info, paths.data_dir, service_port(info, avoid=taken), env).launch()
        services[info.name] = proc.record()  # recorded at once, so `dev down` can stop it
        launched.append(proc)
        progress(info.name, f"launched (pid {proc.pid})")
    save_state(paths.data_dir, state)
    failures = []
    deadline = time.monotonic() + timeout_s
    for proc in launched:
        try:
            proc.wait_ready(max(1.0, deadline - time.monotonic()))
            actions[proc.name] = "started"
        except StackError as exc:
            actions[proc.name] = "failed"
            failures.append(str(exc))
    if failures:
        raise StackError("services failed to start (`flywheel dev down` stops the rest):\n"
                         + "\n".join(failures))
    return actions


def up(settings: Settings, *, services: str = "", postgres: bool = False,
       kafka_libs: Path | None = None, timeout_s: float = 90.0,
       progress: Progress = _quiet) -> UpResult:
    """Start (or reuse) Kafka, Redis, optionally PostgreSQL, and the selected services."""
    began = time.monotonic()
    paths = StackPaths(settings.data_dir, kafka_libs)
    chosen = resolve_services(services)  # unknown names fail before anything starts
    paths.stack.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.lock):
        state = load_state(paths.data_dir)
        result = UpResult(state)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("kafka", lambda: _up_kafka(settings, paths, state, timeout_s)),
            ("redis", lambda: _up_redis(settings, paths, state, timeout_s)),
        ]
        if postgres:
            steps.append(("postgres", lambda: _up_postgres(settings, paths, state, timeout_s)))
        try:
            for name, step in steps:
                progress(name, "starting")
                t0 = time.monotonic()
                result.actions[name] = step()
                progress(name, f"{result.actions[name]} in {time.monotonic() - t0:.1f}s")
                save_state(paths.data_dir, state)
            if chosen:
                result.actions.update(_up_services(chosen, paths, state, timeout_s, progress,
                                                   _service_env(settings, state)))
        finally:
            save_state(paths.data_dir, state)
    result.seconds = time.monotonic() - began
    return result


def _stop_record(name: str, rec: dict, paths: StackPaths) -> str:
    if not rec.get("managed"):
        return "external"
    if name == "postgres" and rec.get("data_dir"):
        cluster = PostgresCluster(Path(rec["data_dir"]).parent, rec.get("port"))
        cluster.pid, cluster.started = rec.get("pid"), rec.get("started")
        return cluster.stop()
    timeout = 30.0 if name == "kafka" else 15.0
    return stop_pid(rec.get("pid"), rec.get("started"), timeout)


def stop_services(settings: Settings, names: Iterable[str],
                  progress: Progress = _quiet) -> dict[str, str]:
    """Stop the named services ``up`` started (their supervisors with them) and forget them;
    the rest of the stack keeps running."""
    paths = StackPaths(settings.data_dir)
    results: dict[str, str] = {}
    with file_lock(paths.lock):
        state = load_state(paths.data_dir)
        services = state.get("services") or {}
        for name in names:
            if name in services:
                results[name] = _stop_record(name, services.pop(name), paths)
                progress(name, results[name])
        save_state(paths.data_dir, state)
    return results


def down(settings: Settings, progress: Progress = _quiet) -> dict[str, str]:
    """Stop every process ``up`` recorded (services first), then forget the state."""
    paths = StackPaths(settings.data_dir)
    results: dict[str, str] = {}
    with file_lock(paths.lock):
        state = load_state(paths.data_dir)
        for name, rec in (state.get("services") or {}).items():
            results[name] = _stop_record(name, rec, paths)
            progress(name, results[name])
        for name in ("kafka", "redis", "postgres"):
            if state.get(name):
                results[name] = _stop_record(name, state[name], paths)
                progress(name, results[name])
        save_state(paths.data_dir, {})
    return results


def _pg_health(url: str) -> str:
    import psycopg

    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                             connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return HEALTH_OK
    except Exception as exc:  # noqa: BLE001 (any driver error means "not healthy")
        return f"{type(exc).__name__}"


def _infra_health(name: str, rec: dict) -> str:
    if rec.get("managed") and not pid_alive(rec.get("pid"), rec.get("started")):
        return "not running"
    if name == "kafka":
        from flywheel.kafka.admin import probe

        return probe(rec["address"], 3.0)
    if name == "redis":
        return ping(rec["url"], 2.0)
    return _pg_health(rec["url"])


def status(settings: Settings) -> dict[str, Any]:
    """Every recorded component with its live health (and the configured externals)."""
    state = load_state(settings.data_dir.resolve())
    if settings.kafka_bootstrap and not state.get("kafka"):
        state["kafka"] = {"address": settings.kafka_bootstrap, "pid": None, "managed": False}
    if settings.redis_url and not state.get("redis"):
        state["redis"] = {"url": settings.redis_url, "pid": None, "managed": False}
    report: dict[str, Any] = {}
    for name in INFRA:
        if state.get(name):
            report[name] = {**state[name], "health": _infra_health(name, state[name])}
    services = state.get("services") or {}
    if services:
        report["services"] = {
            name: {**rec, "health": service_health(rec.get("pid"), rec.get("started"),
                                                   rec.get("port"))}
            for name, rec in services.items()
        }
    return report


def status_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The status report flattened to one row per component (for a table)."""
    rows = []
    for name in INFRA:
        rec = report.get(name)
        if rec:
            rows.append({"component": name, "address": rec.get("address") or rec.get("url"),
                         "pid": rec.get("pid") or ("external" if not rec.get("managed") else ""),
                         "data_dir": rec.get("data_dir", ""), "log": rec.get("log", ""),
                         "health": rec["health"]})
    for name, rec in (report.get("services") or {}).items():
        rows.append({"component": name, "address": rec.get("url") or "", "pid": rec.get("pid"),
                     "data_dir": "", "log": rec.get("log", ""), "health": rec["health"]})
    return rows
