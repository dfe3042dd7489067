"""The snapshot: one JSON document with everything the console page and ``flywheel status`` show.

Sources are read concurrently and independently: the broker (topic end offsets, consumer
lag, dead letters, ``pipeline.health``), every service's ``/healthz``, ``/readyz`` and
``/metrics``, the database (batches, model versions, releases, annotation tasks) and Redis
(annotation queue, judge calibration, preference budgets). A source that fails leaves its
sections empty and its error under ``sources``; the snapshot itself never fails.

Usage::

    collector = Collector(settings)
    snap = collector.snapshot(rate_window_s=1.0)   # two offset samples one second apart
    collector.close()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from flywheel.errors import DependencyUnavailable, FlywheelError
from flywheel.settings import check_tcp
from flywheel.stack.state import load_state

from . import logic
from .readers import DeadLetterReader, HealthReader
from .settings import ConsoleSettings

SNAPSHOT_VERSION = 1
EXPECTED_SERVICES = ("gateway", "triage", "preferences", "annotation", "curator", "trainer",
                     "exporter", "serving", "console")
"""The services of the loop (ARCHITECTURE.md); ones never started are shown as down."""
OK = "ok"
HISTORY_ROWS = 50
RELEASE_LOG_ROWS = 20
POOL_GAUGES = {"sft": ("pool.sft", "pool_sft", "pooled_sft"),
               "dpo": ("pool.dpo", "pool_dpo", "pooled_dpo")}


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, FlywheelError) else f"{type(exc).__name__}: {text}"[:300]


def _thresholds(notes: list[str]) -> tuple[int, int, str, int]:
    """(min SFT, min DPO, model line, daily preference budget) as those services read them;
    the defaults, with a note, when their settings cannot be read."""
    min_sft, min_dpo, line, budget = 64, 32, "shop-assistant", 3
    try:
        from flywheel.services.curator.settings import CuratorSettings

        curator = CuratorSettings()
        min_sft, min_dpo, line = curator.min_sft, curator.min_dpo, curator.model_line
    except Exception as exc:  # noqa: BLE001 - a broken curator config must not hide the page
        notes.append(f"curator settings unreadable, batch thresholds are defaults: {_reason(exc)}")
    try:
        from flywheel.services.preferences.settings import PreferencesSection

        budget = PreferencesSection().daily_budget
    except Exception as exc:  # noqa: BLE001
        notes.append(f"preferences settings unreadable, daily budget is 3: {_reason(exc)}")
    return min_sft, min_dpo, line, budget


class Collector:
    """Gathers snapshots; keeps offset samples and incremental topic readers between them."""

    def __init__(self, settings: ConsoleSettings, *, own_service: str | None = None,
                 http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.config = settings.console
        self.prefix = settings.topic_prefix
        self.own_service = own_service
        self.clock = clock
        self.samples: deque[logic.Sample] = deque(maxlen=self.config.history)
        self.notes: list[str] = []
        self.min_sft, self.min_dpo, self.model_line, self.daily_budget = _thresholds(self.notes)
        self._http = http or httpx.Client(timeout=self.config.http_timeout_s)
        self._own_http = http is None
        self._lock = threading.Lock()
        self._samples_lock = threading.Lock()
        self._readers: tuple[str, DeadLetterReader, HealthReader] | None = None
        self._engine: tuple[str, Engine] | None = None
        self._redis: tuple[str, Any] | None = None
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0
        self._readers_lock = threading.Lock()
        # Six source jobs plus the service probes run at once.
        self._pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="console-collect")

    # -- broker -----------------------------------------------------------------------------

    def _bootstrap(self) -> str:
        bootstrap = self.settings.kafka()
        check_tcp("FLYWHEEL_KAFKA_BOOTSTRAP", bootstrap, timeout_s=1.5)
        return bootstrap

    def sample_topics(self) -> list[dict[str, Any]]:
        """Describe every registered topic and record the end offsets as a throughput sample."""
        from flywheel.kafka.admin import describe_topics

        rows = describe_topics(self._bootstrap(), self.prefix,
                               timeout_s=self.config.kafka_timeout_s)
        with self._samples_lock:
            sample = (self.clock(), {r["short"]: r["end_offset"] for r in rows if r["exists"]})
            # The background sampler and a snapshot may race: keep the samples in time order.
            if not self.samples or sample[0] >= self.samples[-1][0]:
                self.samples.append(sample)
        return rows

    def _topics(self, rate_window_s: float | None) -> dict[str, Any]:
        rows = self.sample_topics()
        if rate_window_s:
            time.sleep(rate_window_s)
            rows = self.sample_topics()
        with self._samples_lock:
            samples = list(self.samples)
        window = min(self.config.min_rate_window_s, rate_window_s or self.config.min_rate_window_s)
        rates, dt = logic.rates_from_samples(samples, window)
        series = logic.throughput_series(samples, window)
        topics = [{**row, "end_offsets": {str(p): o for p, o in row["end_offsets"].items()},
                   "rate_per_s": rates.get(row["short"]) if row["exists"] else None}
                  for row in rows]
        total = round(sum(rates.values()), 3) if rates else None
        return {"topics": topics,
                "throughput": {"window_s": dt, "total_rate_per_s": total,
                               "series": [{"at": _iso(p["at"]), "rates": p["rates"]}
                                          for p in series]}}

    def _lag(self) -> dict[str, Any]:
        from flywheel.kafka.lag import consumer_lag

        rows = [row.as_dict() for row in consumer_lag(self._bootstrap(), f"{self.prefix}-",
                                                      f"{self.prefix}.")]
        groups = logic.lag_by_group(rows)
        return {"rows": rows, "groups": groups, "total": sum(g["lag"] for g in groups)}

    def _readers_for(self, bootstrap: str) -> tuple[DeadLetterReader, HealthReader]:
        with self._readers_lock:
            return self._make_readers(bootstrap)

    def _make_readers(self, bootstrap: str) -> tuple[DeadLetterReader, HealthReader]:
        if self._readers is None or self._readers[0] != bootstrap:
            if self._readers is not None:
                self._readers[1].close()
                self._readers[2].close()
            timeout = self.config.kafka_timeout_s
            dead = DeadLetterReader(bootstrap, self.prefix, self.settings.topic("deadletter"),
                                    max_per_partition=self.config.deadletter_scan_max,
                                    timeout_s=timeout)
            health = HealthReader(bootstrap, self.settings.topic("pipeline.health"),
                                  max_per_partition=self.config.health_scan_max, timeout_s=timeout)
            self._readers = (bootstrap, dead, health)
        return self._readers[1], self._readers[2]

    def _deadletters(self) -> dict[str, Any]:
        return self._readers_for(self._bootstrap())[0].refresh()

    def _health(self) -> list[dict[str, Any]]:
        now = self.clock()
        events = self._readers_for(self._bootstrap())[1].refresh()
        return [{**e, "at": _iso(e["at"]),
                 "age_s": None if e["at"] is None else round(max(0.0, now - e["at"]), 1)}
                for e in events]

    # -- services ---------------------------------------------------------------------------

    def _service_records(self) -> dict[str, dict[str, Any]]:
        state = load_state(self.settings.data_dir.resolve()).get("services") or {}
        names = set(EXPECTED_SERVICES) | set(state) | set(self.config.services) \
            | set(self.config.metrics_urls)
        try:
            from flywheel.stack.services import discover_services

            names |= set(discover_services())
        except Exception as exc:  # noqa: BLE001 - discovery is a convenience
            self._note(f"service discovery failed: {_reason(exc)}")
        out = {}
        for name in sorted(names):
            rec = dict(state.get(name) or {})
            url = self.config.services.get(name) or rec.get("url")
            out[name] = {"url": url.rstrip("/") if url else None, "pid": rec.get("pid"),
                         "started": rec.get("started"),
                         "metrics_url": self.config.metrics_urls.get(name)
                         or (f"{url.rstrip('/')}/metrics" if url else None)}
        return out

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def _get(self, url: str) -> tuple[int | str, httpx.Response | None]:
        try:
            response = self._http.get(url)
            return response.status_code, response
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}", None

    def _probe(self, name: str, rec: dict[str, Any]) -> dict[str, Any]:
        from flywheel.stack.process import pid_alive
        from flywheel.stack.services import DEFAULT_PORTS

        out: dict[str, Any] = {"name": name, "url": rec["url"], "pid": rec["pid"],
                               "kind": "http" if rec["url"] or name in DEFAULT_PORTS
                               else "worker"}
        out["pid_alive"] = pid_alive(rec["pid"], rec["started"]) if rec["pid"] else None
        out["healthz"] = out["readyz"] = None
        if rec["url"]:
            out["healthz"], _ = self._get(f"{rec['url']}/healthz")
            if out["healthz"] == 200:
                out["readyz"], response = self._get(f"{rec['url']}/readyz")
                out["ready"] = _json_body(response)
        out["metrics"], out["_families"] = self._scrape(rec["metrics_url"]) \
            if rec["metrics_url"] else ({"url": None, "error": "no metrics endpoint"}, {})
        return out

    def _scrape(self, url: str) -> tuple[dict[str, Any], dict[str, Any]]:
        status, response = self._get(url)
        if status != 200 or response is None:
            return {"url": url, "error": f"{status}"}, {}
        try:
            families = logic.parse_metrics(response.text)
        except (ValueError, TypeError) as exc:
            return {"url": url, "error": f"unparseable: {_reason(exc)}"}, {}
        return {"url": url, "error": None, "families": len(families),
                "totals": logic.metric_totals(families)}, families

    def _services(self) -> list[dict[str, Any]]:
        records = self._service_records()
        futures = {name: self._pool.submit(self._probe, name, rec)
                   for name, rec in records.items()}
        return [futures[name].result() for name in records]

    def _service_rows(self, probes: list[dict[str, Any]],
                      health: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ages: dict[str, float] = {}
        for event in health:
            if event["age_s"] is not None:
                ages[event["service"]] = min(ages.get(event["service"], event["age_s"]),
                                             event["age_s"])
        rows = []
        for probe in probes:
            row = {k: v for k, v in probe.items() if not k.startswith("_")}
            row["health_age_s"] = ages.get(probe["name"])
            if probe["name"] == self.own_service:
                row["state"], row["reason"] = logic.UP, "this process"
            else:
                row["state"], row["reason"] = logic.service_state(
                    url=probe["url"], healthz=probe["healthz"], readyz=probe["readyz"],
                    pid_alive=probe["pid_alive"], health_age_s=row["health_age_s"],
                    stale_s=self.config.health_stale_s)
            rows.append(row)
        return rows

    # -- database ---------------------------------------------------------------------------

    def _engine_for(self, url: str) -> Engine:
        from flywheel.db.engine import make_engine

        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and \
                parsed.database != ":memory:" and not Path(parsed.database).exists():
            # Reading must not create an empty database file.
            raise DependencyUnavailable(f"no database at {parsed.database} "
                                        "(run `flywheel db upgrade`)")
        if self._engine is None or self._engine[0] != url:
            if self._engine is not None:
                self._engine[1].dispose()
            self._engine = (url, make_engine(url))
        return self._engine[1]

    def _sql(self) -> dict[str, Any]:
        from .queries import read_database

        return read_database(self._engine_for(self.settings.database()))

    # -- Redis ------------------------------------------------------------------------------

    def _redis_client(self) -> Any:
        import redis

        url = self.settings.redis()
        if self._redis is None or self._redis[0] != url:
            client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=3,
                                          socket_connect_timeout=1.5)
            self._redis = (url, client)
        return self._redis[1]

    def _redis_figures(self) -> dict[str, Any]:
        from .queries import read_redis

        return read_redis(self._redis_client(), datetime.fromtimestamp(self.clock(), timezone.utc),
                          self.daily_budget)

    # -- the snapshot -----------------------------------------------------------------------

    def snapshot(self, *, rate_window_s: float | None = None,
                 max_age_s: float = 0.0) -> dict[str, Any]:
        """A snapshot of everything; one younger than ``max_age_s`` is returned as is.

        Args:
            rate_window_s: sample end offsets twice this far apart (the CLI); None uses the
                samples taken so far (the console samples in the background).
            max_age_s: reuse the previous snapshot when it is younger than this.
        """
        with self._lock:
            if self._last is not None and self.clock() - self._last_at < max_age_s:
                return self._last
            began = time.monotonic()
            snap = self._collect(rate_window_s)
            snap["took_ms"] = int((time.monotonic() - began) * 1000)
            self._last, self._last_at = snap, self.clock()
            return snap

    def _collect(self, rate_window_s: float | None) -> dict[str, Any]:
        jobs: dict[str, Future] = {
            "topics": self._pool.submit(self._topics, rate_window_s),
            "lag": self._pool.submit(self._lag),
            "deadletters": self._pool.submit(self._deadletters),
            "health": self._pool.submit(self._health),
            "sql": self._pool.submit(self._sql),
            "redis": self._pool.submit(self._redis_figures),
        }
        probes = self._services()
        results, errors = {}, {}
        for name, job in jobs.items():
            try:
                results[name] = job.result()
            except Exception as exc:  # noqa: BLE001 - reported in the snapshot, never raised
                errors[name] = _reason(exc)
        return self.assemble(results, errors, probes)

    def assemble(self, results: dict[str, Any], errors: dict[str, str],
                 probes: list[dict[str, Any]]) -> dict[str, Any]:
        """Build the snapshot from what each source returned (``errors`` names those that
        failed) and the service probes."""
        topics = results.get("topics") or {"topics": [], "throughput": {
            "window_s": None, "total_rate_per_s": None, "series": []}}
        health = results.get("health") or []
        sql = results.get("sql") or {}
        redis_part = results.get("redis") or {}
        services = self._service_rows(probes, health)
        families = {p["name"]: p["_families"] for p in probes}
        kafka_errors = [errors[k] for k in ("topics", "lag", "deadletters", "health")
                        if k in errors]
        snap: dict[str, Any] = {
            "version": SNAPSHOT_VERSION,
            "generated_at": _iso(self.clock()),
            "took_ms": 0,
            "prefix": self.prefix,
            "sources": {"kafka": kafka_errors[0] if kafka_errors else OK,
                        "database": errors.get("sql", OK), "redis": errors.get("redis", OK),
                        **{f"kafka.{k}": errors[k] for k in ("topics", "lag", "deadletters",
                                                              "health") if k in errors}},
            **topics,
            "lag": results.get("lag") or {"rows": [], "groups": [], "total": 0},
            "deadletters": results.get("deadletters") or logic.DeadLetterTally().as_dict(),
            "health": health,
            "services": services,
            "annotation": {**(redis_part.get("annotation") or {}),
                           "tasks": sql.get("annotation_tasks") or {}},
            "preferences": redis_part.get("preferences") or {},
            "batches": self._batches(topics["topics"], health, sql),
            "models": sql.get("models") or [],
            "training": redis_part.get("training") or [],
            "releases": self._releases(sql, families.get("serving") or {},
                                       next((s for s in services if s["name"] == "serving"), None)),
            "notes": list(self.notes),
            "task_metric": {"name": self.config.task_metric,
                            "points": logic.task_metric_points(
                                sql.get("releases") or [], sql.get("models") or [],
                                self.config.task_metric)},
        }
        snap["summary"] = _summary(snap)
        return snap

    def _batches(self, topics: list[dict[str, Any]], health: list[dict[str, Any]],
                 sql: dict[str, Any]) -> dict[str, Any]:
        all_batches = sql.get("batches") or []
        pooled = _pool_from_health(health)
        if pooled is not None:
            source = "pipeline.health"
        else:
            ends = {t["short"]: t["end_offset"] for t in topics if t["exists"]}
            pooled = logic.pooled_estimate(ends, all_batches) if ends and "batches" in sql \
                else (None, None)
            source = "estimate"
        fill = logic.open_batch_fill(pooled_sft=pooled[0], pooled_dpo=pooled[1],
                                     min_sft=self.min_sft, min_dpo=self.min_dpo, source=source)
        fill["model_line"] = self.model_line
        history = all_batches[-HISTORY_ROWS:]
        return {"open": fill, "history": history, "count": len(all_batches)}

    def _releases(self, sql: dict[str, Any], serving_families: dict[str, Any],
                  serving: dict[str, Any] | None) -> dict[str, Any]:
        log_rows = sql.get("releases") or []
        lines = logic.release_state(log_rows)
        for model in sql.get("models") or []:
            line = lines.setdefault(model["line"], {"line": model["line"], "current": None,
                                                    "canary": None, "actions": 0})
            stamp = {"version": model["version"], "at": model["updated_at"], "actor": None,
                     "reason": "model status"}
            if model["status"] == "released" and line["current"] is None:
                line["current"] = stamp
            if model["status"] == "canary" and line["canary"] is None:
                line["canary"] = stamp
            if line["canary"] and line["canary"]["version"] == model["version"]:
                line["canary"]["share"] = model.get("canary_share")
        signals = logic.serving_signals(serving_families) if serving_families else None
        ready = (serving or {}).get("ready") if serving else None
        return {"lines": [lines[k] for k in sorted(lines)],
                "log": list(reversed(log_rows))[:RELEASE_LOG_ROWS],
                "serving": {"state": (serving or {}).get("state", logic.DOWN),
                            "ready": ready, "signals": signals}}

    def close(self) -> None:
        """Close clients and readers (the snapshot object stays usable)."""
        with self._lock:
            if self._readers is not None:
                self._readers[1].close()
                self._readers[2].close()
                self._readers = None
            if self._engine is not None:
                self._engine[1].dispose()
                self._engine = None
            if self._redis is not None:
                self._redis[1].close()
                self._redis = None
            if self._own_http:
                self._http.close()
            self._pool.shutdown(wait=False, cancel_futures=True)


def _json_body(response: httpx.Response | None) -> Any:
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and len(body) <= 20 else None


def _pool_from_health(health: list[dict[str, Any]]) -> tuple[int | None, int | None] | None:
    """Pooled examples as the curator reports them in pipeline.health gauges, if it does."""
    found: dict[str, int] = {}
    for event in health:
        if event["service"] != "curator":
            continue
        for kind, names in POOL_GAUGES.items():
            for name in names:
                if name in event["gauges"]:
                    found[kind] = found.get(kind, 0) + int(event["gauges"][name])
                    break
    if not found:
        return None
    return found.get("sft"), found.get("dpo")


def _summary(snap: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers (the page's top row and the first table of ``flywheel status``)."""
    services = snap["services"]
    lines = snap["releases"]["lines"]
    line = next((x for x in lines if x["line"] == snap["batches"]["open"]["model_line"]),
                lines[0] if lines else None)
    return {
        "services_up": sum(1 for s in services if s["state"] == logic.UP),
        "services_total": len(services),
        "events_total": sum(t["end_offset"] for t in snap["topics"]),
        "rate_per_s": snap["throughput"]["total_rate_per_s"],
        "lag_total": snap["lag"]["total"],
        "deadletters": snap["deadletters"]["total"],
        "label_queue": (snap["annotation"].get("queue") or {}).get("label"),
        "review_queue": (snap["annotation"].get("queue") or {}).get("review"),
        "batch_fill": snap["batches"]["open"]["fill"],
        "batches": snap["batches"]["count"],
        "release": None if not line or not line["current"] else line["current"]["version"],
        "canary": None if not line or not line["canary"] else line["canary"]["version"],
        "model_line": line["line"] if line else None,
    }


def collect_once(settings: ConsoleSettings, rate_window_s: float | None = 1.0) -> dict[str, Any]:
    """One snapshot from a fresh collector (``flywheel status``)."""
    collector = Collector(settings)
    try:
        return collector.snapshot(rate_window_s=rate_window_s)
    finally:
        collector.close()

