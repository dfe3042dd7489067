"""Tables and migrations on a SQLite file: schema drift, round trips, constraints, the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import SQLModel, select
from typer.testing import CliRunner

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
from flywheel.db.types import utcnow


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'var' / 'flywheel.db'}"


@pytest.fixture
def engine(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _identity(row: SQLModel) -> tuple:
    return sa.inspect(row).identity


def _insert(engine, *rows: SQLModel) -> None:
    with session_scope(engine) as session:
        for row in rows:
            session.add(row)
            session.flush()


# -- migrations -------------------------------------------------------------------------------


def test_migrate_creates_every_table_and_is_idempotent(db_url):
    assert current_revision(db_url) is None
    assert migrate(db_url) == head_revision()
    assert migrate(db_url) == head_revision()
    engine = make_engine(db_url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
    assert {t.__tablename__ for t in m.TABLES} == set(SQLModel.metadata.tables)


def test_migrations_match_models(engine):
    """The `alembic check` equivalent: a migrated database has exactly the models' schema."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations differ; add a revision: {diff}"


def test_check_constraints_match_models(engine):
    """compare_metadata ignores CHECK constraints, so compare the status guards by name."""
    inspector = sa.inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        expected = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert found == expected, table.name


def test_downgrade_to_base_and_upgrade_again(engine, db_url):
    _insert(engine, *sample_rows())
    assert downgrade(db_url, "base") is None
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    assert migrate(db_url) == head_revision()
    _insert(engine, *sample_rows())


def test_sqlite_pragmas(engine):
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# -- round trips ------------------------------------------------------------------------------


def test_every_table_round_trips(engine):
    rows = sample_rows()
    assert {type(r) for r in rows} == set(m.TABLES)
    expected = [(type(r), r.model_dump()) for r in rows]
    _insert(engine, *rows)
    with session_scope(engine) as session:
        for (cls, values), row in zip(expected, rows):
            loaded = session.get(cls, _identity(row))
            assert loaded is not None, cls.__name__
            assert loaded.model_dump() == values, cls.__name__


def test_timestamps_come_back_aware_utc(engine):
    paris = timezone(timedelta(hours=1))
    created = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=paris)
    _insert(engine, m.App(app_id="tz", name="tz", created_at=created))
    with session_scope(engine) as session:
        loaded = session.get(m.App, "tz")
    assert loaded.created_at == created
    assert loaded.created_at.utcoffset() == timedelta(0)


def test_defaults_are_filled(engine):
    _insert(engine, m.ModelLine(line="l", base_model="b"),
            m.ModelVersion(line="l", version=1, base_model="b"))
    with session_scope(engine) as session:
        version = session.get(m.ModelVersion, ("l", 1))
    assert version.status is m.ModelStatus.TRAINING
    assert version.batch_ids == [] and version.metrics == {} and version.status_history == []
    assert version.created_at.tzinfo is not None
    assert utcnow() - version.created_at < timedelta(minutes=1)


def test_naive_datetime_is_refused(engine):
    with pytest.raises(StatementError, match="naive datetime"):
        _insert(engine, m.App(app_id="naive", name="naive", created_at=datetime(2025, 1, 1)))


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"list": [1, 2.5, None, True, "é"], "empty": {}}},
        {"messages": [{"role": "user", "content": "x" * 10_000}]},
        {},
    ],
)
def test_json_columns_round_trip(engine, value):
    answer = {"choice": "a", "detail": value}
    _insert(engine, m.PreferenceRequest(request_id="p", trace_id="t", user_id="u", payload=value,
                                        expires_at=utcnow(), answer=answer))
    with session_scope(engine) as session:
        loaded = session.get(m.PreferenceRequest, "p")
    assert loaded.payload == value
    assert loaded.answer == answer


def test_nullable_json_stays_null(engine):
    _insert(engine, m.PreferenceRequest(request_id="p", trace_id="t", user_id="u",
                                        expires_at=utcnow()))
    with engine.connect() as connection:
        raw = connection.exec_driver_sql(
            "SELECT answer FROM preference_requests WHERE request_id = 'p'"
        ).scalar()
    assert raw is None


def test_lineage_from_release_to_traces(engine):
    _insert(engine, *sample_rows())
    with session_scope(engine) as session:
        release = session.exec(select(m.Release)).one()
        version = session.get(m.ModelVersion, (release.line, release.version))
        examples = session.exec(
            select(m.Example)
            .join(m.BatchExample, m.BatchExample.example_id == m.Example.example_id)
            .where(m.BatchExample.batch_id.in_(version.batch_ids))
        ).all()
    assert [e.trace_ids for e in examples] == [["trace-s"]]
    assert examples[0].kafka_offset == 2**40 + 7


# -- constraints ------------------------------------------------------------------------------


def _duplicate_cases():
    def base():
        return {type(r): r for r in sample_rows("a")}

    def other(cls, **changes):
        row = {type(r): r for r in sample_rows("b")}[cls]
        for key, value in changes.items():
            setattr(row, key, value)
        return row

    a = base()
    return {
        "app name": other(m.App, name=a[m.App].name),
        "api key prefix": other(m.ApiKey, key_prefix=a[m.ApiKey].key_prefix, app_id="app-a"),
        "annotator username": other(m.Annotator, username=a[m.Annotator].username),
        "session token hash": other(m.AnnotatorSession, annotator_id="ann-a",
                                    token_hash=a[m.AnnotatorSession].token_hash),
        "api token hash": other(m.AnnotatorToken, annotator_id="ann-a",
                                token_hash=a[m.AnnotatorToken].token_hash),
        "guideline kind+version": other(m.Guideline, version=a[m.Guideline].version),
        "one label per labeller and task": other(m.Label, task_id="task-a",
                                                 labeller_id="ann-a"),
        "webhook app+url": other(m.Webhook, app_id="app-a", url=a[m.Webhook].url),
        "batch line+version": other(m.DatasetBatch, model_line="line-a"),
        "example kind+content": other(m.Example, content_hash=a[m.Example].content_hash,
                                      batch_id=None),
        "model line+version": other(m.ModelVersion, line="line-a"),
    }


@pytest.mark.parametrize("case", sorted(_duplicate_cases()))
def test_unique_constraints_are_enforced(engine, case):
    _insert(engine, *sample_rows("a"))
    duplicate = _duplicate_cases()[case]
    with pytest.raises(IntegrityError):
        _insert(engine, duplicate)


def test_foreign_keys_are_enforced(engine):
    with pytest.raises(IntegrityError):
        _insert(engine, m.ApiKey(app_id="missing", key_prefix="fw_x", key_hash="0" * 64))


def test_deleting_an_app_cascades_to_its_keys(engine):
    _insert(engine, *sample_rows())
    with session_scope(engine) as session:
        session.delete(session.get(m.Webhook, "hook-s"))
        session.delete(session.get(m.PreferenceRequest, "pref-s"))
        session.flush()
        session.delete(session.get(m.App, "app-s"))
    with session_scope(engine) as session:
        assert session.exec(select(m.ApiKey)).all() == []


def test_status_values_are_checked_by_the_database(engine):
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO annotation_tasks (task_id, trace_id, kind, priority, payload, "
                "required_annotators, status, created_at, updated_at) VALUES "
                "('t', 't', 'k', 0, '{}', 1, 'bogus', '2025-01-01', '2025-01-01')"
            )


def test_session_scope_rolls_back_on_error(engine):
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            session.add(m.App(app_id="gone", name="gone"))
            session.flush()
            raise RuntimeError("boom")
    with session_scope(engine) as session:
        assert session.get(m.App, "gone") is None


# -- CLI --------------------------------------------------------------------------------------


def test_cli_upgrade_and_current(tmp_path, monkeypatch, db_url):
    from flywheel.cli.db import app

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", db_url)
    runner = CliRunner()

    before = runner.invoke(app, ["current", "--check"])
    assert before.exit_code == 1 and "revision none" in before.output

    upgraded = runner.invoke(app, ["upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"at revision {head_revision()}" in upgraded.output

    current = runner.invoke(app, ["current", "--json", "--check"])
    assert current.exit_code == 0, current.output
    assert '"up_to_date": true' in current.output


def test_cli_reports_unreachable_database_in_one_line(tmp_path, monkeypatch):
    from flywheel.cli.db import app
    from flywheel.errors import DependencyUnavailable

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL",
                       "postgresql+psycopg://u:hunter2@127.0.0.1:1/x?connect_timeout=2")
    result = CliRunner().invoke(app, ["current"])
    assert isinstance(result.exception, DependencyUnavailable)
    message = str(result.exception)
    assert "\n" not in message and "hunter2" not in message and "***" in message
