"""The local stack without starting a broker: config rendering, the jar cache, the state file,
PID handling, service discovery and the `dev up`/`down` bookkeeping."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.errors import StackError
from flywheel.settings import load_settings
from flywheel.stack import lifecycle
from flywheel.stack.kafka import (
    MARKER,
    KafkaServer,
    ensure_kafka_jars,
    find_java,
    jars_cached,
    new_cluster_id,
    pom_hash,
    server_properties,
)
from flywheel.stack.process import (
    free_port,
    pid_alive,
    port_is_free,
    process_start_time,
    stop_pid,
    wait_until,
)
from flywheel.stack.redis import find_redis_server
from flywheel.stack.services import (
    DEFAULT_PORTS,
    ServiceInfo,
    _defines_main,
    discover_services,
    resolve_services,
    service_port,
)
from flywheel.stack.state import load_state, save_state, state_path


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def sleeper():
    """A child process that sleeps; killed at teardown if a test left it running."""
    procs = []

    def _start(ignore_term: bool = False) -> subprocess.Popen:
        code = "import signal, time\n"
        if ignore_term:
            code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        code += "print('ready', flush=True)\ntime.sleep(60)\n"
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        proc.stdout.readline()  # the signal disposition is in place once it printed
        procs.append(proc)
        return proc

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# -- Kafka configuration and jars -------------------------------------------------------------


def test_server_properties_describe_a_one_node_kraft_broker(tmp_path: Path) -> None:
    props = _props(server_properties(41001, 41002, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:41002"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:41001,CONTROLLER://127.0.0.1:41002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:41001"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_jar_cache_is_keyed_by_the_pom_hash(tmp_path: Path) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    libs = tmp_path / "libs"
    libs.mkdir()
    assert not jars_cached(libs, pom)
    (libs / "kafka_2.13-3.9.2.jar").write_bytes(b"jar")
    assert not jars_cached(libs, pom)  # no marker yet
    (libs / MARKER).write_text(pom_hash(pom) + "\n")
    assert jars_cached(libs, pom)
    pom.write_text("<project><!-- changed --></project>")
    assert not jars_cached(libs, pom)


def test_cached_jars_need_no_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-3.9.2.jar").write_bytes(b"jar")
    (libs / MARKER).write_text(pom_hash(pom))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ensure_kafka_jars(libs, pom) == libs.resolve()


def test_missing_maven_is_one_actionable_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StackError, match=r"^mvn not found: install Maven"):
        ensure_kafka_jars(tmp_path / "libs", pom)


def test_missing_java_is_one_actionable_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(StackError, match=r"^java not found: install a JDK") as err:
        find_java()
    assert "\n" not in str(err.value)
    assert "FLYWHEEL_KAFKA_BOOTSTRAP" in str(err.value)
    server = KafkaServer(tmp_path / "kafka", free_port(), free_port(), libs_dir=tmp_path / "libs")
    with pytest.raises(StackError, match=r"^java not found"):
        server.start()
    assert server.pid is None


def test_the_repository_pom_pins_kafka_3_9_and_a_matching_binding() -> None:
    from flywheel.stack.kafka import DEFAULT_POM

    text = DEFAULT_POM.read_text()
    assert "<artifactId>kafka_2.13</artifactId>" in text
    assert "<kafka.version>3.9." in text
    assert "<artifactId>slf4j-reload4j</artifactId>" in text


# -- ports, PIDs, state --------------------------------------------------------------------------


def test_free_port_prefers_the_default_and_avoids_busy_ports() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert not port_is_free(taken)
        port = free_port(taken)
        assert port != taken and port_is_free(port)
    idle = free_port()
    assert free_port(idle) == idle
    assert free_port(idle, avoid=[idle]) != idle


def test_stop_pid_stops_the_process_it_was_given(sleeper) -> None:
    proc = sleeper()
    started = process_start_time(proc.pid)
    assert pid_alive(proc.pid, started)
    assert stop_pid(proc.pid, started, timeout_s=5) == "stopped"
    assert not pid_alive(proc.pid)
    assert stop_pid(proc.pid, started) == "gone"


def test_stop_pid_leaves_a_reused_pid_alone(sleeper) -> None:
    proc = sleeper()
    started = process_start_time(proc.pid)
    assert stop_pid(proc.pid, started - 1, timeout_s=1) == "not-ours"
    assert pid_alive(proc.pid, started)


def test_stop_pid_kills_what_ignores_sigterm(sleeper) -> None:
    proc = sleeper(ignore_term=True)
    assert stop_pid(proc.pid, timeout_s=0.5) == "killed"
    assert not pid_alive(proc.pid)


def test_state_file_round_trip_and_removal(tmp_path: Path) -> None:
    state = {"kafka": {"address": "127.0.0.1:39092", "pid": 1},
             "redis": {"url": "redis://127.0.0.1:36379/0", "pid": 2}, "services": {}}
    path = save_state(tmp_path, state)
    assert path == state_path(tmp_path) == tmp_path / "stack" / "state.json"
    assert load_state(tmp_path) == state
    assert load_settings(data_dir=tmp_path).kafka() == "127.0.0.1:39092"
    save_state(tmp_path, {})
    assert not path.exists() and load_state(tmp_path) == {}
    path.parent.mkdir(exist_ok=True)
    path.write_text("[1, 2]")
    assert load_state(tmp_path) == {}


# -- services ----------------------------------------------------------------------------------


def test_discovered_services_have_a_main_module() -> None:
    import importlib.util

    from flywheel.stack.services import EXTRA_SERVICES

    found = discover_services()
    assert set(EXTRA_SERVICES) <= set(found)  # the release controller runs as its own service
    for name, info in found.items():
        assert info.name == name
        assert info.module == EXTRA_SERVICES.get(name, f"flywheel.services.{name}.main")
        assert importlib.util.find_spec(info.module) is not None
        assert info.default_port == DEFAULT_PORTS.get(name)


def test_main_detection_reads_the_source(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("import sys\n\ndef main() -> None:\n    pass\n")
    nested = tmp_path / "nested.py"
    nested.write_text("class App:\n    def main(self):\n        pass\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def main(:\n")
    assert _defines_main(str(good))
    assert not _defines_main(str(nested))
    assert not _defines_main(str(broken))
    assert not _defines_main(None)


def test_service_selection() -> None:
    known = discover_services()
    assert resolve_services("") == []
    assert [s.name for s in resolve_services("all")] == list(known)
    with pytest.raises(StackError, match=r"unknown service 'no-such-service'; known services: "):
        resolve_services("no-such-service")


def test_service_port_from_env_default_or_free() -> None:
    info = ServiceInfo("gateway", "flywheel.services.gateway.main", 8000)
    assert service_port(info, {"FLYWHEEL_GATEWAY_PORT": "9123"}) == 9123
    with pytest.raises(StackError, match=r"^FLYWHEEL_GATEWAY_PORT: expected a port number"):
        service_port(info, {"FLYWHEEL_GATEWAY_PORT": "http"})
    assert service_port(info, {}, avoid=(8000,)) != 8000
    worker = ServiceInfo("triage", "flywheel.services.triage.main", None)
    assert service_port(worker, {}) is None


def test_run_rejects_an_unknown_service() -> None:
    from flywheel.stack.services import run_service

    with pytest.raises(StackError, match=r"known services:"):
        run_service("no-such-service")


# -- dev up / down bookkeeping -------------------------------------------------------------------


def test_up_with_external_addresses_starts_nothing(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, kafka_bootstrap="10.0.0.1:9092",
                             redis_url="redis://10.0.0.2:6379/0")
    result = lifecycle.up(settings)
    assert result.actions == {"kafka": "external", "redis": "external"}
    state = load_state(tmp_path)
    assert state["kafka"] == {"address": "10.0.0.1:9092", "pid": None, "managed": False}
    assert state["redis"] == {"url": "redis://10.0.0.2:6379/0", "pid": None, "managed": False}
    assert lifecycle.down(settings) == {"kafka": "external", "redis": "external"}
    assert not state_path(tmp_path).exists()


def test_up_rejects_unknown_services_before_starting_anything(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(StackError, match="unknown service"):
        lifecycle.up(settings, services="no-such-service")
    assert not state_path(tmp_path).exists()


def test_down_stops_exactly_the_recorded_processes(tmp_path: Path, sleeper) -> None:
    ours, svc, bystander = sleeper(), sleeper(), sleeper()
    save_state(tmp_path, {
        "kafka": {"address": "127.0.0.1:1", "pid": ours.pid,
                  "started": process_start_time(ours.pid), "managed": True},
        "redis": {"url": "redis://10.0.0.2:6379/0", "pid": None, "managed": False},
        "services": {"worker": {"pid": svc.pid, "started": process_start_time(svc.pid),
                                "url": None, "log": "x", "managed": True},
                     # a recorded PID whose process is gone and was reused by another one
                     "stale": {"pid": bystander.pid, "started": 1, "managed": True}},
    })
    results = lifecycle.down(load_settings(data_dir=tmp_path))
    assert results == {"worker": "stopped", "stale": "not-ours", "kafka": "stopped",
                       "redis": "external"}
    assert wait_until(lambda: ours.poll() is not None and svc.poll() is not None, 5)
    assert bystander.poll() is None
    assert not state_path(tmp_path).exists()


def test_stop_services_stops_only_the_named_ones_and_keeps_the_rest(tmp_path: Path,
                                                                   sleeper) -> None:
    trainer, triage = sleeper(), sleeper()
    record = {"url": None, "log": "x", "managed": True}
    save_state(tmp_path, {
        "redis": {"url": "redis://10.0.0.2:6379/0", "pid": None, "managed": False},
        "services": {"trainer": {**record, "pid": trainer.pid,
                                 "started": process_start_time(trainer.pid)},
                     "triage": {**record, "pid": triage.pid,
                                "started": process_start_time(triage.pid)}},
    })
    settings = load_settings(data_dir=tmp_path)
    assert lifecycle.stop_services(settings, ["trainer", "absent"]) == {"trainer": "stopped"}
    assert wait_until(lambda: trainer.poll() is not None, 5)
    assert triage.poll() is None
    state = load_state(tmp_path)
    assert set(state["services"]) == {"triage"} and state["redis"]["managed"] is False


def test_status_reports_dead_processes_and_flattens_rows(tmp_path: Path) -> None:
    save_state(tmp_path, {
        "kafka": {"address": "127.0.0.1:1", "pid": 2**22 + 7, "started": 1, "managed": True,
                  "data_dir": "/d", "log": "/l"},
        "services": {"gateway": {"pid": 2**22 + 8, "started": 1, "url": "http://127.0.0.1:1",
                                 "port": 1, "log": "/g", "managed": True}},
    })
    report = lifecycle.status(load_settings(data_dir=tmp_path))
    assert report["kafka"]["health"] == "not running"
    assert report["services"]["gateway"]["health"] == "not running"
    rows = lifecycle.status_rows(report)
    assert [r["component"] for r in rows] == ["kafka", "gateway"]
    assert rows[0]["address"] == "127.0.0.1:1" and rows[0]["data_dir"] == "/d"
    json.dumps(report)


def test_a_redis_server_binary_is_available() -> None:
    binary = find_redis_server()
    assert os.access(binary, os.X_OK)


def test_root_runs_postgres_as_another_user() -> None:
    from flywheel.stack.postgres import _as_user_prefix

    prefix, user = _as_user_prefix()
    if os.geteuid() == 0:
        assert user is not None and user.pw_uid != 0
        assert prefix[0] in ("runuser", "setpriv")
    else:
        assert prefix == [] and user is None


def test_wait_until_respects_its_deadline() -> None:
    began = time.monotonic()
    assert not wait_until(lambda: False, 0.2, 0.05)
    assert 0.15 < time.monotonic() - began < 2


def test_up_never_forgets_a_running_managed_process(tmp_path: Path, sleeper) -> None:
    ours = sleeper()
    record = {"address": "127.0.0.1:1", "pid": ours.pid,
              "started": process_start_time(ours.pid), "managed": True}
    save_state(tmp_path, {"kafka": record})
    settings = load_settings(data_dir=tmp_path, kafka_bootstrap="10.0.0.1:9092",
                             redis_url="redis://10.0.0.2:6379/0")
    with pytest.raises(StackError, match=r"^kafka: the stack still runs its own kafka"):
        lifecycle.up(settings)
    assert load_state(tmp_path)["kafka"] == record
    assert lifecycle.down(settings)["kafka"] == "stopped"


def test_down_reports_processes_that_already_exited(tmp_path: Path, sleeper) -> None:
    gone = sleeper()
    started = process_start_time(gone.pid)
    gone.kill()
    gone.wait()
    save_state(tmp_path, {"redis": {"url": "redis://127.0.0.1:1/0", "pid": gone.pid,
                                    "started": started, "managed": True}})
    assert lifecycle.down(load_settings(data_dir=tmp_path)) == {"redis": "gone"}
