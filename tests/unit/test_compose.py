"""docker-compose.yml and deploy/Dockerfile: valid for Compose, complete, consistent.

`docker compose config` needs only the client (no engine); those tests skip when neither the
compose plugin nor the standalone `docker-compose` is installed. The rest parse the files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"

# Every deployable service (ARCHITECTURE.md), the port of those serving HTTP, and those
# needing the ML image.
SERVICES = ("gateway", "triage", "preferences", "annotation", "curator", "trainer",
            "exporter", "release-controller", "serving", "console")
# Services that are a second process of another service's package.
EXTRA = {"release-controller": "exporter"}
HTTP_PORTS = {"gateway": 8000, "serving": 8001, "preferences": 8002, "annotation": 8003,
              "console": 8004}
ML_SERVICES = {"trainer", "exporter", "release-controller", "serving"}
INFRA = ("kafka", "redis", "postgres")
VOLUMES = {"kafka", "redis", "postgres", "data"}


def _compose_cli() -> tuple[list[str] | None, str]:
    """The compose command line available here, or None and why not."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"], ""
    standalone = shutil.which("docker-compose")
    if standalone:
        return [standalone], ""
    if docker:
        return None, "the docker client has no compose plugin and docker-compose is absent"
    return None, "no docker client installed"


@pytest.fixture(scope="module")
def compose_cli() -> list[str]:
    cli, reason = _compose_cli()
    if cli is None:
        pytest.skip(reason)
    return cli


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _run(cli: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*cli, "-f", str(COMPOSE_FILE), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else list(command)


def _run_targets(compose: dict) -> dict[str, str]:
    """compose service -> the name in its `flywheel run <name>` command."""
    targets = {}
    for name, service in compose["services"].items():
        command = _command(service)
        if command[:1] == ["flywheel"]:
            command = command[1:]
        if command[:1] == ["run"]:
            assert len(command) == 2, f"{name}: expected `run <service>`, got {command}"
            targets[name] = command[1]
    return targets


# -- docker compose config ------------------------------------------------------------------


def test_compose_config_is_valid(compose_cli):
    result = _run(compose_cli, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_config_lists_services_with_healthchecks(compose_cli):
    result = _run(compose_cli, "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    assert set(services) == {*SERVICES, *INFRA, "init"}
    for name in (*INFRA, *HTTP_PORTS):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert VOLUMES <= set(resolved["volumes"])


# -- the file itself -------------------------------------------------------------------------


def test_every_service_runs_once(compose):
    targets = _run_targets(compose)
    assert sorted(targets.values()) == sorted(SERVICES)
    assert all(name == target for name, target in targets.items())


@pytest.mark.parametrize("name", SERVICES)
def test_service_package_exists(name):
    package = ROOT / "services" / EXTRA.get(name, name)
    if not package.exists():
        pytest.xfail(f"services/{name}/ is not written yet")
    assert (package / "__init__.py").is_file(), f"services/{name}/ is not a package"


def test_every_service_package_has_a_compose_entry(compose):
    packages = {p.name for p in (ROOT / "services").iterdir()
                if (p / "__init__.py").is_file() and not p.name.startswith("_")}
    missing = packages - set(_run_targets(compose).values())
    assert not missing, f"service packages without a compose entry: {sorted(missing)}"


def test_infrastructure_images_and_healthchecks(compose):
    services = compose["services"]
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["redis"]["image"] == "redis:7"
    assert services["postgres"]["image"] == "postgres:16"
    checks = {name: " ".join(_as_list(services[name]["healthcheck"]["test"])) for name in INFRA}
    assert "/opt/kafka/bin/kafka-topics.sh" in checks["kafka"] and "--list" in checks["kafka"]
    assert "redis-cli ping" in checks["redis"]
    assert "pg_isready" in checks["postgres"]
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def test_init_migrates_and_creates_topics_before_services(compose):
    services = compose["services"]
    init = " ".join(_as_list(services["init"].get("entrypoint", [])) + _command(services["init"]))
    assert "flywheel db upgrade" in init and "flywheel topics create" in init
    assert init.index("db upgrade") < init.index("topics create")
    for name in SERVICES:
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully", name
        for infra in INFRA:
            assert depends[infra]["condition"] == "service_healthy", (name, infra)


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_build_and_volume(compose, name):
    service = compose["services"][name]
    env = service["environment"]
    assert env["FLYWHEEL_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["FLYWHEEL_REDIS_URL"] == "redis://redis:6379/0"
    assert env["FLYWHEEL_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["FLYWHEEL_DATABASE_URL"]
    assert env["FLYWHEEL_DATA_DIR"] == "/data"
    assert env["FLYWHEEL_SERVICE_NAME"] == name
    assert "data:/data" in service["volumes"]
    build = service["build"]
    assert build["context"] == "." and build["dockerfile"] == "deploy/Dockerfile"
    assert (build["args"]["EXTRAS"] == "ml") == (name in ML_SERVICES)


@pytest.mark.parametrize("name", sorted(HTTP_PORTS))
def test_http_services_publish_their_port_and_check_healthz(compose, name):
    service = compose["services"][name]
    port = HTTP_PORTS[name]
    env = service["environment"]
    assert env[f"FLYWHEEL_{name.upper()}_PORT"] == str(port)
    assert env[f"FLYWHEEL_{name.upper()}_HOST"] == "0.0.0.0"
    assert any(str(p).endswith(f":{port}") for p in service["ports"]), service["ports"]
    check = " ".join(_as_list(service["healthcheck"]["test"]))
    assert f"127.0.0.1:{port}/healthz" in check


def test_named_volumes(compose):
    assert VOLUMES <= set(compose["volumes"])


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_shape():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and all(f in ("${PYTHON_IMAGE}", "python:3.11-slim") for f in froms)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^ARG EXTRAS=", text, re.M)
    assert "-c deploy/constraints.txt" in text
    torch_at = text.index("torch")
    assert torch_at < text.index("COPY libs"), "torch must be installed before the project"
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert re.search(r'^ENTRYPOINT \["flywheel"\]', text, re.M)


def test_torch_pin_matches_pyproject():
    constraints = (ROOT / "deploy" / "constraints.txt").read_text()
    pin = re.search(r"^torch==(\S+)", constraints, re.M)
    assert pin, "deploy/constraints.txt must pin torch"
    assert f'"torch=={pin.group(1)}"' in (ROOT / "pyproject.toml").read_text()
