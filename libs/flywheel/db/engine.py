"""Engines, sessions and schema migrations for SQLite and PostgreSQL.

Usage::

    engine = make_engine(settings.database())
    migrate(settings.database())            # alembic upgrade head
    with session_scope(engine) as session:  # commits on success, rolls back on error
        session.add(App(app_id="shop", name="Shop assistant"))

The Alembic configuration is built in code with the migrations directory inside this
package, so migrations run from an installed wheel as well as from a checkout; there is no
alembic.ini. From the command line: ``flywheel db upgrade`` and ``flywheel db current``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from flywheel.errors import DependencyUnavailable, FlywheelError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class MigrationError(FlywheelError):
    """A schema migration could not be applied or left the database inconsistent."""


def safe_url(url: str | URL) -> str:
    """The URL as a string with any password masked, fit for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def _unavailable(url: str | URL, exc: OperationalError) -> DependencyUnavailable:
    reason = " ".join(str(exc.orig or exc).split())  # one line: drivers add hints on new lines
    return DependencyUnavailable(f"database {safe_url(url)}: {reason}")


def _is_file_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
        and not url.database.startswith("file:")


def make_engine(url: str | URL, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """Create an engine tuned for the backend.

    SQLite: foreign keys enforced (unless ``foreign_keys=False``, used while migrating), WAL
    journal for file databases so readers do not block the writer, connections usable from
    any thread, and the file's directory created if missing. PostgreSQL: connections are
    pinged before use so a restarted server does not surface as an error.

    Args:
        url: SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://...``).
        foreign_keys: SQLite only: enforce foreign keys on every connection.
        **kwargs: passed to :func:`sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)

    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    file_db = _is_file_sqlite(parsed)
    if file_db:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            if file_db:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


@contextmanager
def session_scope(engine: Engine, *, expire_on_commit: bool = False) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises.

    Objects stay readable after the block (``expire_on_commit=False`` by default).
    """
    session = Session(engine, expire_on_commit=expire_on_commit)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file needed).

    ``url`` is used only when no connection is handed over in ``config.attributes``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%', which appears in URL-encoded passwords.
        rendered = make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError("no migration revisions found in " + str(MIGRATIONS_DIR))
    return head


def _run_alembic(url: str | URL, fn: Any, revision: str) -> str | None:
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            fn(config, revision)
            if engine.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise MigrationError(f"foreign keys broken after migration: {broken[:5]}")
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise _unavailable(url, exc) from exc
    finally:
        engine.dispose()


def migrate(url: str | URL, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision`` (default: the newest) and return the revision now applied.

    Foreign keys are not enforced on SQLite while migrating, because batch mode rebuilds
    tables by copy-and-rename; they are checked once the upgrade is done.

    Raises:
        DependencyUnavailable: the database cannot be reached.
        MigrationError: the migrated SQLite database has broken foreign keys.
    """
    return _run_alembic(url, command.upgrade, revision)


def downgrade(url: str | URL, revision: str) -> str | None:
    """Downgrade the schema to ``revision`` (``"base"`` drops every table); return what remains."""
    return _run_alembic(url, command.downgrade, revision)


def current_revision(url: str | URL) -> str | None:
    """The revision the database is at, or None for a database never migrated.

    Raises:
        DependencyUnavailable: the database cannot be reached.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise _unavailable(url, exc) from exc
    finally:
        engine.dispose()
