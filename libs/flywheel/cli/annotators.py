"""``flywheel annotators``: accounts and API tokens of the annotation service.

Run::

    flywheel annotators create --username ana --role annotator   # asks for the password
    flywheel annotators create --username rev --role reviewer --password '...'
    flywheel annotators token --username ana                     # prints a token once
    flywheel annotators list

Passwords are stored as salted scrypt hashes, tokens as SHA-256 digests; a token is printed
only when created. Scripts send it as ``Authorization: Bearer <token>``. The database is
``FLYWHEEL_DATABASE_URL`` (SQLite under ``FLYWHEEL_DATA_DIR`` when unset), migrated already
(``flywheel db upgrade``).
"""

from __future__ import annotations

import typer

from flywheel.cli.common import cli_settings, emit

app = typer.Typer(help="Annotator accounts and API tokens.", no_args_is_help=True)

_ROLES = ("annotator", "reviewer", "admin")


def _engine():  # noqa: ANN202
    from flywheel.db.engine import make_engine

    return make_engine(cli_settings().database())


@app.command()
def create(
    username: str = typer.Option(..., "--username", "-u", help="Login name."),
    role: str = typer.Option("annotator", "--role", "-r", help="annotator, reviewer or admin."),
    password: str = typer.Option(None, "--password", "-p", help="Password (prompted if omitted)."),
) -> None:
    """Create an account."""
    from flywheel.services.annotation.auth import create_annotator
    from flywheel.services.annotation.errors import AnnotationError

    if role not in _ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(_ROLES)}", param_hint="--role")
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise typer.BadParameter("use at least 8 characters", param_hint="--password")
    engine = _engine()
    try:
        created = create_annotator(engine, username, password, role)
    except AnnotationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    typer.echo(f"created {created.username} ({created.role}), id {created.annotator_id}")


@app.command()
def token(
    username: str = typer.Option(..., "--username", "-u", help="Account to issue the token for."),
    name: str = typer.Option(None, "--name", help="A note on what the token is for."),
) -> None:
    """Issue an API token for a scripted annotator and print it (shown only once)."""
    from flywheel.services.annotation.auth import create_token
    from flywheel.services.annotation.errors import AnnotationError

    engine = _engine()
    try:
        typer.echo(create_token(engine, username, name))
    except AnnotationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List active accounts."""
    from flywheel.services.annotation.auth import list_annotators

    engine = _engine()
    try:
        rows = [{"username": p.username, "role": p.role, "annotator_id": p.annotator_id}
                for p in list_annotators(engine)]
    finally:
        engine.dispose()
    emit(rows, ["username", "role", "annotator_id"], as_json, title="Annotators")
