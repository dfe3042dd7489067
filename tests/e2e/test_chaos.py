"""Chaos end to end: the whole loop keeps its books straight through crashes, outages and poison.

The real stack (Apache Kafka, Redis, SQLite) and all nine services run as subprocesses through
``flywheel.stack.lifecycle``, exactly as ``flywheel demo`` starts them, with the simulated shop
world driving them over HTTP. While the world runs:

1. the broker and Redis are stopped and started again through ``lifecycle.up`` (their data
   dirs are kept, so topics, offsets, changelogs, leases and budgets must survive);
2. every service is SIGKILLed once and started again, all through ``lifecycle.up``. This comes
   right after the broker restart on purpose: services resolve the broker and Redis addresses
   once, at start, and ``lifecycle.up`` may bring a stopped broker back on another port (see
   the note it prints), so the restart is also what reconnects them; a service that already
   died during the outage is started again like a supervisor would;
3. undecodable bytes are published on every topic a stream processor consumes; each consumer
   must dead-letter them with the record's coordinates and commit past them.

The release controller (``python -m flywheel.services.exporter.controller``, the exporter's
second process, which promotes canaries) is not a service ``lifecycle`` discovers, so the test
runs it itself as a stack ``ServiceProcess`` (unless the stack starts it) and treats it like
the other services: killed once, restarted, and watched. Without it no canary is ever
promoted and nothing is ever released.

Then the loop must still deliver: a model version released after the faults, the processors
still producing, and, once the world stopped and the pipeline drained,
:func:`flywheel.demo.reconcile.reconcile` finding no trace lost, no label derived into two
batches and no training example twice.

Everything that goes wrong is collected and asserted together at the end, so one run reports
every broken expectation. ``lifecycle.down`` stops everything in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from flywheel.errors import FlywheelError
from flywheel.settings import Settings, load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration,
              pytest.mark.ml, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
KAFKA_LIBS = REPO / "var" / "kafka" / "libs"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
LINE = "shop-assistant"
GARBAGE = b"\xff\xff\xff\xff\xff chaos: not protobuf"

# Topic -> the services whose stream processors consume it and must dead-letter what they
# cannot decode. examples.*, models.releases and pipeline.health have no such consumer (serving
# and the release controller only follow topics and skip bad records), so they are not poisoned.
POISONED: dict[str, tuple[str, ...]] = {
    "traces.raw": ("triage",),
    "feedback.events": ("triage",),
    "traces.triaged": ("curator", "annotation"),
    "preference.requests": ("preferences",),
    "preference.answers": ("curator",),
    "annotation.tasks": ("annotation", "curator"),
    "annotation.labels": ("curator",),
    "datasets.batches": ("trainer",),
    "models.candidates": ("exporter",),
}

# A short training job and a permissive gate and canary: accuracy does not matter here, only
# that a version travels the whole loop within minutes on two cores. A canary is rolled back as
# soon as the next candidate is exported, so batches must come slower than the release
# controller decides: one every few dozen seconds at this traffic, not every few seconds.
FAST = {
    "FLYWHEEL_CURATOR_MIN_SFT": "200",
    "FLYWHEEL_CURATOR_MAX_AGE_S": "90",
    "FLYWHEEL_CURATOR_EVAL_SHARE": "0.05",
    "FLYWHEEL_TRAINER_MAX_SFT_STEPS": "10",
    "FLYWHEEL_TRAINER_SFT_BATCH_SIZE": "8",
    "FLYWHEEL_TRAINER_MAX_DPO_STEPS": "1",
    "FLYWHEEL_TRAINER_DPO_BATCH_SIZE": "4",
    "FLYWHEEL_TRAINER_EVAL_SOURCE": "shop",
    "FLYWHEEL_TRAINER_EVAL_SET_SIZE": "16",
    "FLYWHEEL_TRAINER_MAX_NEW_TOKENS": "16",
    "FLYWHEEL_TRAINER_SLICE_SIZE": "0",
    "FLYWHEEL_TRAINER_PRIMARY_MARGIN": "1.0",
    "FLYWHEEL_TRAINER_SLICE_MARGIN": "1.0",
    "FLYWHEEL_TRAINER_LOCK_TTL_S": "10",
    "FLYWHEEL_TRAINER_NUM_THREADS": "1",
    "FLYWHEEL_EXPORTER_PARITY_PROMPTS": "4",
    "FLYWHEEL_EXPORTER_PARITY_MAX_NEW_TOKENS": "8",
    "FLYWHEEL_EXPORTER_THREADS": "1",
    "FLYWHEEL_EXPORTER_CANARY_SHARE": "0.5",
    "FLYWHEEL_EXPORTER_MIN_REQUESTS": "8",
    "FLYWHEEL_EXPORTER_MIN_SAMPLES": "3",
    "FLYWHEEL_EXPORTER_REQUIRE_FEEDBACK": "false",
    "FLYWHEEL_EXPORTER_DECISION_INTERVAL_S": "3",
    "FLYWHEEL_EXPORTER_RATE_MARGIN": "1.0",
    "FLYWHEEL_EXPORTER_RATING_MARGIN": "6.0",
    "FLYWHEEL_EXPORTER_WIN_MARGIN": "0.49",
}

STARTUP_S = 420.0        # stack, tiny model and nine services on two busy cores
RELEASE_BUDGET_S = 480.0  # from the last fault to a released version
DRAIN_S = 240.0
PORT_WAIT_S = 15.0        # a short chance for the old broker and Redis ports to free up


class Run:
    """The state of one chaos run: settings, timings, and every expectation that failed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.t0 = time.monotonic()
        self.phases: dict[str, float] = {}
        self.failures: list[str] = []
        self.notes: list[str] = []
        self._phase_start = self.t0

    def say(self, text: str) -> None:
        print(f"[chaos {time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._phase_start, 1)
        self._phase_start = now
        self.say(f"-- {name} done in {self.phases[name]:.0f}s")

    def fail(self, text: str) -> None:
        self.failures.append(text)
        self.say(f"FAILED: {text}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.say(f"note: {text}")


# -- helpers ----------------------------------------------------------------------------------


def _build_base(path: Path, errors: list[BaseException]) -> None:
    try:
        from flywheel.ml.tiny import init_tiny

        init_tiny(path, pretrain_steps=20)
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


def _controller_info() -> Any:
    """The release controller as a stack service; None when the stack already runs it."""
    from flywheel.stack.services import ServiceInfo, resolve_services

    module = "flywheel.services.exporter.controller"
    if any(info.module == module for info in resolve_services("all")):
        return None
    return ServiceInfo("release-controller", module, None)


def _services(settings: Settings) -> dict[str, dict[str, Any]]:
    from flywheel.stack import lifecycle

    return lifecycle.status(settings).get("services") or {}


def _not_running(settings: Settings) -> list[str]:
    return sorted(n for n, rec in _services(settings).items() if rec["health"] == "not running")


def _log_tail(settings: Settings, name: str, lines: int = 12) -> str:
    from flywheel.stack.process import tail

    return tail(settings.data_dir / "logs" / f"{name}.log", lines)


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _sigkill(settings: Settings, name: str) -> str:
    """SIGKILL one service's process (the child of its supervisor, whose pid the stack records);
    the supervisor must start it again on its own."""
    from flywheel.stack.process import pid_alive, wait_until

    rec = _services(settings).get(name) or {}
    pid, started = rec.get("pid"), rec.get("started")
    if not pid_alive(pid, started):
        return "its supervisor had already exited"
    children = _children(pid)
    if not children:
        return "no service process under its supervisor (restarting)"
    os.kill(children[0], signal.SIGKILL)
    wait_until(lambda: not pid_alive(children[0]), 15.0, 0.05)
    back = wait_until(lambda: bool(_children(pid)) and _children(pid)[0] != children[0], 30.0, 0.2)
    return f"killed pid {children[0]}; " + ("restarted by its supervisor" if back
                                            else "NOT restarted within 30 s")


def _sigkill_process(proc: Any) -> str:
    """SIGKILL a ServiceProcess the test started itself (and reap it)."""
    if proc.health() == "not running":
        return "had already exited"
    pid = proc.pid
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc._proc.wait(timeout=15)
    return f"killed (pid {pid})"


def _wait(predicate: Callable[[], bool], seconds: float, interval: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(interval)
    return False


def _ever_released(settings: Settings) -> set[int]:
    from flywheel.demo.runner import registry_versions

    return {v.version for v in registry_versions(settings, LINE)
            if v.status == "released" or v.released_at is not None}


def _publish_garbage(settings: Settings) -> list[tuple[str, str, int, int]]:
    """One undecodable record per poisoned topic: (short name, full name, partition, offset)."""
    from flywheel.kafka.producer import make_producer, produce_sync

    producer = make_producer(settings.kafka())
    try:
        out = []
        for short in POISONED:
            meta = produce_sync(producer, settings.topic(short), f"chaos-{short}".encode(),
                                GARBAGE, timeout_s=30.0)
            out.append((short, settings.topic(short), meta.partition, meta.offset))
        return out
    finally:
        producer.close(timeout=10)


def _poison_status(settings: Settings, garbage: list[tuple[str, str, int, int]]
                   ) -> tuple[list[str], list[str]]:
    """(records not dead-lettered by every consumer, consumers not committed past them)."""
    from kafka import TopicPartition

    from flywheel.kafka.admin import group_offsets
    from flywheel.kafka.deadletter import read_dead_letters

    bootstrap = settings.kafka()
    letters = read_dead_letters(bootstrap, settings.topic("deadletter"), timeout_s=60.0)
    by_coords: dict[tuple[str, int, int], set[str]] = {}
    for dl in letters:
        by_coords.setdefault((dl.source_topic, dl.partition, dl.offset), set()).add(dl.service)
    committed = {svc: group_offsets(bootstrap, f"{settings.topic_prefix}-{svc}")
                 for svc in {s for services in POISONED.values() for s in services}}
    undead, stuck = [], []
    for short, topic, partition, offset in garbage:
        for svc in POISONED[short]:
            if svc not in by_coords.get((topic, partition, offset), set()):
                undead.append(f"{short}[{partition}]@{offset} by {svc}")
            if committed[svc].get(TopicPartition(topic, partition), -1) <= offset:
                stuck.append(f"{svc} on {short}[{partition}] (garbage at {offset})")
    return undead, stuck


# -- the test ---------------------------------------------------------------------------------


def test_the_loop_survives_crashes_outages_and_poison(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.demo.expert import Expert, QuestionBook
    from flywheel.demo.reconcile import reconcile_drained
    from flywheel.demo.runner import (
        SERVICES,
        DemoConfig,
        ExpertServer,
        end_offsets,
        prepare_run,
        progress_line,
        registry_versions,
        service_env,
        service_ports,
        wait_ready,
        world_until,
        write_policy,
    )
    from flywheel.demo.world import World, WorldConfig, WorldUrls
    from flywheel.stack import lifecycle
    from flywheel.stack.process import port_is_free, stop_pid
    from flywheel.stack.services import ServiceProcess
    from flywheel.stack.state import load_state

    data = (tmp_path / "data").resolve()
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(data))
    settings = load_settings()
    run = Run(settings)
    console = Console(stderr=False, force_terminal=False, width=120)
    cfg = DemoConfig(minutes=30, seed=0, label_budget=100_000, users=2, model_line=LINE)

    def up(services: str = "", timeout_s: float = 180.0) -> Any:
        return lifecycle.up(settings, services=services, kafka_libs=KAFKA_LIBS,
                            timeout_s=timeout_s, progress=lambda n, w: run.say(f"  {n}: {w}"))

    base_errors: list[BaseException] = []
    builder = threading.Thread(target=_build_base, name="tiny-base", daemon=True,
                               args=(data / "models" / "tiny-base", base_errors))
    stop_world = threading.Event()
    world_thread: threading.Thread | None = None
    expert: ExpertServer | None = None
    controller_info = _controller_info()
    controller = ServiceProcess(controller_info, data) if controller_info else None

    def dead() -> list[str]:
        found = _not_running(settings)
        if controller is not None and controller.health() == "not running":
            found.append(controller.name)
        return found

    def log_of(name: str) -> str:
        return _log_tail(settings, name)
    try:
        # -- start: stack and base model together, then the services and the world ----------
        builder.start()
        try:
            up()
        except FlywheelError as exc:
            builder.join()
            if IN_CI:
                pytest.fail(f"the stack could not start: {exc}", pytrace=False)
            pytest.skip(f"the stack could not start: {exc}")
        builder.join(timeout=STARTUP_S)
        assert not base_errors and not builder.is_alive(), f"tiny base model: {base_errors}"
        api_key, token = prepare_run(settings, cfg, console)
        book = QuestionBook()
        expert = ExpertServer(Expert(book, seed=cfg.seed))
        expert.start()
        policy = write_policy(cfg.policy, 20_000, data / "demo" / "triage-policy.yaml")
        env = {**service_env(cfg, settings, expert.url, policy, service_ports()), **FAST}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = up(",".join(SERVICES), timeout_s=STARTUP_S)
        if controller is not None:
            controller.start(timeout_s=60)
            run.say(f"  release-controller: started (pid {controller.pid})")
        urls = {n: (r or {}).get("url") for n, r in result.state.get("services", {}).items()}
        wait_ready(urls["serving"], STARTUP_S, "serving")
        world = World(WorldUrls(urls["serving"], urls["gateway"], urls["preferences"],
                                urls["annotation"]), api_key, token, book,
                      WorldConfig(seed=cfg.seed, users=cfg.users, model_line=LINE,
                                  label_budget=cfg.label_budget))
        world_thread = threading.Thread(
            target=lambda: asyncio.run(world_until(world, 3600, stop_world)),
            name="world", daemon=True)
        world_thread.start()
        run.phase("start-up")

        def progress() -> None:
            with contextlib.suppress(Exception):
                run.say(progress_line(end_offsets(settings), world, registry_versions(
                    settings, LINE), time.monotonic() - run.t0))

        # -- fault 1: the broker and Redis go away and come back ----------------------------------
        time.sleep(20)  # let traffic flow through every stage first
        state = load_state(data)
        kafka, redis = state["kafka"], state["redis"]
        run.say(f"stopping Kafka {kafka['address']}: "
                f"{stop_pid(kafka['pid'], kafka.get('started'), 30.0)}")
        run.say(f"stopping Redis {redis['url']}: {stop_pid(redis['pid'], redis.get('started'), 15)}")
        ports = {"kafka": kafka["port"], "redis": redis["port"]}
        if not _wait(lambda: all(port_is_free(p) for p in ports.values()), PORT_WAIT_S, 1.0):
            held = [n for n, p in ports.items() if not port_is_free(p)]
            run.note(f"the old ports of {held} cannot be bound {PORT_WAIT_S:.0f}s after the stop "
                     "(TIME_WAIT, or a client's self-connect while the port lies in the "
                     "ephemeral range): lifecycle.up moves them, and running services are not "
                     "told")
        up()
        state = load_state(data)
        moved = {name: (old, new) for name, old, new in (
            ("kafka", kafka["address"], state["kafka"]["address"]),
            ("redis", redis["url"], state["redis"]["url"])) if old != new}
        if moved:
            run.note(f"came back elsewhere: {moved}")
        died = dead()
        if died:
            run.note(f"services that exited during the broker and Redis outage: {died}")
            for name in died:
                run.say(f"{name} log:\n{log_of(name)}")
        progress()
        run.phase("broker and Redis restart")

        # -- fault 2: SIGKILL every service once; their supervisors start them again ------------
        training = [v.version for v in registry_versions(settings, LINE) if v.status == "training"]
        for name in SERVICES:
            outcome = _sigkill(settings, name)
            run.say(f"SIGKILL {name}: {outcome}")
            if "NOT restarted" in outcome:
                run.fail(f"{name} was not restarted after a SIGKILL")
        if controller is not None:
            run.say(f"SIGKILL {controller.name}: {_sigkill_process(controller)}")
        run.say(f"(versions in training when the trainer died: {training or 'none'})")
        up(",".join(SERVICES), timeout_s=STARTUP_S)
        if controller is not None:
            controller.start(timeout_s=60)
        wait_ready(urls["serving"], STARTUP_S, "serving after its restart")
        progress()
        run.phase("SIGKILL and restart of every service")

        # -- fault 3: poison on every consumed topic ------------------------------------------
        before = end_offsets(settings)
        garbage = _publish_garbage(settings)
        released_before = _ever_released(settings)
        run.say(f"published garbage: {[(g[0], g[2], g[3]) for g in garbage]}; "
                f"released so far: {sorted(released_before) or 'none'}")
        run.phase("poison")

        # -- the loop must keep going: dead letters, commits past the poison, a new release -----
        deadline = time.monotonic() + RELEASE_BUDGET_S
        undead: list[str] = ["not checked yet"]
        stuck: list[str] = ["not checked yet"]
        new_release: set[int] = set()
        died: list[str] = []
        last_progress = 0.0
        while time.monotonic() < deadline:
            if undead or stuck:
                with contextlib.suppress(Exception):
                    undead, stuck = _poison_status(settings, garbage)
            with contextlib.suppress(Exception):
                new_release = _ever_released(settings) - released_before
            died = dead()
            if died or (not undead and not stuck and new_release):
                break
            if time.monotonic() - last_progress > 30:
                progress()
                last_progress = time.monotonic()
            time.sleep(5)
        run.phase("dead letters and a release after the faults")
        for name in died:
            run.fail(f"{name} died on its own; its log ends with:\n{log_of(name)}")
        if undead:
            run.fail(f"garbage not dead-lettered: {undead}")
        if stuck:
            run.fail(f"consumers not past the garbage: {stuck}")
        if not new_release:
            run.fail(f"no version released within {RELEASE_BUDGET_S:.0f}s after the faults")
        after = end_offsets(settings)
        for short in ("traces.triaged", "annotation.labels", "examples.sft"):
            if after.get(short, 0) <= before.get(short, 0):
                run.fail(f"no new records on {short} after the faults "
                         f"({before.get(short, 0)} -> {after.get(short, 0)})")

        # -- drain and reconcile --------------------------------------------------------------
        stop_world.set()
        world_thread.join(timeout=60)
        run.say(f"world stopped: {world.stats.asked} questions, {world.stats.labels} labels, "
                f"errors {dict(world.stats.errors.most_common(6))}")
        # Drained: nothing missing, or DRAIN_S passed (a rebalance after the restarts can
        # pause triage for tens of seconds on a loaded machine).
        report = reconcile_drained(settings, LINE, drain_s=DRAIN_S, say=run.say)
        run.phase("drain and reconcile")
        print(json.dumps(report.to_dict(), indent=2), flush=True)
        if not report.ok:
            run.fail("reconciliation: " + "; ".join(report.problems))
        if report.traces.queued:
            run.fail(f"{report.traces.queued} trace(s) still unread by triage after {DRAIN_S:.0f} s")
        if report.traces.ingested == 0 or report.labels.labels == 0 or report.examples.batches == 0:
            run.fail(f"too little went through to reconcile: {report.traces.ingested} traces, "
                     f"{report.labels.labels} labels, {report.examples.batches} batches")
    finally:
        stop_world.set()
        if world_thread is not None:
            world_thread.join(timeout=30)
        if expert is not None:
            expert.stop()
        if controller is not None and controller.pid is not None:
            controller.stop()
        with contextlib.suppress(Exception):
            lifecycle.down(settings)
        builder.join(timeout=60)
        run.say(f"phases (s): {run.phases}; total {time.monotonic() - run.t0:.0f}s")
        for text in run.notes:
            run.say(f"note: {text}")
    if run.failures:
        pytest.fail("\n".join(run.failures), pytrace=False)
