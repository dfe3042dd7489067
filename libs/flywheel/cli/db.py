"""``flywheel db``: apply and inspect schema migrations on the configured database.

Run::

    flywheel db upgrade            # to the newest revision shipped with this version
    flywheel db current [--json] [--check]  # the revision; --check exits 1 if not newest
    flywheel db downgrade REV      # for example ``base`` (drops every table)

The database is ``FLYWHEEL_DATABASE_URL``, or SQLite under ``FLYWHEEL_DATA_DIR`` when unset.
"""

from __future__ import annotations

import json

import typer

from flywheel.cli.common import cli_settings

app = typer.Typer(
    help="Database schema: migrations and their status.",
    no_args_is_help=True,
)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: the newest)."),
) -> None:
    """Upgrade the database schema (idempotent: a database at the target is left as is)."""
    from flywheel.db.engine import migrate, safe_url

    url = cli_settings().database()
    applied = migrate(url, revision)
    typer.echo(f"database {safe_url(url)} at revision {applied}")


@app.command()
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, for example 'base'."),
) -> None:
    """Downgrade the database schema to REVISION."""
    from flywheel.db.engine import downgrade as run_downgrade
    from flywheel.db.engine import safe_url

    url = cli_settings().database()
    applied = run_downgrade(url, revision)
    typer.echo(f"database {safe_url(url)} at revision {applied or 'base'}")


@app.command()
def current(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    check: bool = typer.Option(False, "--check", help="Exit 1 unless at the newest revision."),
) -> None:
    """Print the database's revision and whether it is at the newest one."""
    from flywheel.db.engine import current_revision, head_revision, safe_url

    url = cli_settings().database()
    revision = current_revision(url)
    head = head_revision()
    status = {
        "database": safe_url(url),
        "current": revision,
        "head": head,
        "up_to_date": revision == head,
    }
    if as_json:
        typer.echo(json.dumps(status))
    else:
        state = "up to date" if status["up_to_date"] else "needs `flywheel db upgrade`"
        typer.echo(f"database {status['database']}: revision {revision or 'none'} "
                   f"(head {head}, {state})")
    if check and not status["up_to_date"]:
        raise typer.Exit(1)
