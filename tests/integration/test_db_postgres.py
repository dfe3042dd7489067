"""Migrations and round trips on PostgreSQL (a throwaway cluster from the ``postgres_url``
fixture). Each test module run gets its own database, dropped afterwards."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from flywheel.db import models as m
from flywheel.db.engine import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    session_scope,
)
from flywheel.db.samples import sample_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_url(postgres_url):
    """A fresh database on the test cluster, as a ``postgresql+psycopg`` URL."""
    server = make_url(postgres_url).set(drivername="postgresql+psycopg")
    name = f"flywheel_db_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def engine(pg_url):
    migrate(pg_url)
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()
    downgrade(pg_url, "base")


def _sample(cls: type[SQLModel]) -> SQLModel:
    return next(row for row in sample_rows() if isinstance(row, cls))


def _insert(engine, *rows: SQLModel) -> None:
    with session_scope(engine) as session:
        for row in rows:
            session.add(row)
            session.flush()


def test_migrate_is_idempotent_and_matches_models(engine, pg_url):
    assert migrate(pg_url) == head_revision() == current_revision(pg_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations differ on PostgreSQL: {diff}"


def test_check_constraints_match_models(engine):
    inspector = sa.inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        expected = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert found == expected, table.name


def test_every_table_round_trips(engine):
    rows = sample_rows()
    assert {type(r) for r in rows} == set(m.TABLES)
    expected = [(type(r), r.model_dump()) for r in rows]
    _insert(engine, *rows)
    with session_scope(engine) as session:
        for (cls, values), row in zip(expected, rows):
            loaded = session.get(cls, sa.inspect(row).identity)
            assert loaded is not None, cls.__name__
            assert loaded.model_dump() == values, cls.__name__


def test_timestamps_are_timestamptz_in_utc(engine):
    created = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    _insert(engine, m.App(app_id="tz", name="tz", created_at=created))
    with session_scope(engine) as session:
        loaded = session.get(m.App, "tz")
    assert loaded.created_at == created and loaded.created_at.utcoffset() == timedelta(0)


def test_json_round_trips_unicode_and_nesting(engine):
    payload = {"messages": [{"role": "user", "content": "Grüße 👋"}], "k": [1, 2.5, None]}
    _insert(engine, m.AnnotationTask(task_id="t", trace_id="t", kind="k", payload=payload))
    with session_scope(engine) as session:
        assert session.get(m.AnnotationTask, "t").payload == payload


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda: m.App(app_id="other", name="Shop assistant s"),
        lambda: m.Annotator(username="ada-s", password_hash="x"),
        lambda: m.ApiKey(app_id="app-s", key_prefix="fw_s", key_hash="0" * 64),
        lambda: m.Example(kind=m.ExampleKind.SFT, source="x",
                          content_hash=_sample(m.Example).content_hash),
        lambda: m.Label(task_id="task-s", trace_id="x", kind="k",
                        labeller_type=m.LabellerType.HUMAN, labeller_id="ann-s"),
    ],
    ids=["app name", "username", "key prefix", "example content", "label per labeller"],
)
def test_unique_constraints_are_enforced(engine, duplicate):
    _insert(engine, *sample_rows())
    with pytest.raises(IntegrityError):
        _insert(engine, duplicate())


def test_status_values_are_checked_by_the_database(engine):
    _insert(engine, *sample_rows())
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE model_versions SET status = 'bogus' WHERE line = 'line-s'"
            )


def test_downgrade_to_base_and_upgrade_again(engine, pg_url):
    _insert(engine, *sample_rows())
    assert downgrade(pg_url, "base") is None
    assert current_revision(pg_url) is None
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    assert migrate(pg_url) == head_revision()
    _insert(engine, *sample_rows())
