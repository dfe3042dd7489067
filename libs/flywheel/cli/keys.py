"""``flywheel keys``: per-app API keys for the gateway.

Run::

    flywheel keys create --app shop [--label ci]   # prints the key once; store it now
    flywheel keys list [--app shop] [--json]
    flywheel keys revoke KEY_ID

Keys are stored hashed in the configured database (``FLYWHEEL_DATABASE_URL``, or SQLite under
``FLYWHEEL_DATA_DIR``); run ``flywheel db upgrade`` first. The gateway caches key lookups for
``FLYWHEEL_GATEWAY_AUTH_CACHE_S`` seconds, so a revocation takes effect within that time.
"""

from __future__ import annotations

import json

import typer

from flywheel.cli.common import cli_settings, emit

app = typer.Typer(help="Per-app API keys for the gateway.", no_args_is_help=True)


def _engine():  # noqa: ANN202 - sqlalchemy Engine, imported lazily to keep --help fast
    from flywheel.db.engine import make_engine

    return make_engine(cli_settings().database())


@app.command()
def create(
    app_name: str = typer.Option(..., "--app", help="App name or id; created when new."),
    label: str = typer.Option(None, "--label", help="Free text to recognise the key later."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Create an API key for an app and print it (the only time it is shown)."""
    from flywheel.keys import create_key

    created = create_key(_engine(), app_name, label)
    if as_json:
        typer.echo(json.dumps({"key_id": created.key_id, "app_id": created.app_id,
                               "key_prefix": created.key_prefix, "key": created.plain}))
        return
    typer.echo(f"app:    {created.app_id}")
    typer.echo(f"key id: {created.key_id}")
    typer.echo(f"key:    {created.plain}")
    typer.echo("Store the key now: it is kept only as a hash and cannot be shown again.", err=True)


@app.command("list")
def list_(
    app_name: str = typer.Option(None, "--app", help="Only the keys of this app (name or id)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List API keys (prefix, app, label, created, revoked); never the secrets."""
    from flywheel.keys import list_keys

    rows = [
        {"key_id": k.key_id, "app_id": k.app_id, "key_prefix": k.key_prefix,
         "label": k.label or "", "created_at": k.created_at.isoformat(),
         "revoked_at": k.revoked_at.isoformat() if k.revoked_at else ""}
        for k in list_keys(_engine(), app_name)
    ]
    emit(rows, ["key_id", "app_id", "key_prefix", "label", "created_at", "revoked_at"],
         as_json, title="API keys")


@app.command()
def revoke(key_id: str = typer.Argument(..., help="The key id shown by `create` or `list`.")) -> None:
    """Revoke an API key; requests with it get 401 once gateway caches expire."""
    from flywheel.keys import revoke_key

    info = revoke_key(_engine(), key_id)
    typer.echo(f"revoked {info.key_id} ({info.key_prefix}, app {info.app_id}) "
               f"at {info.revoked_at.isoformat() if info.revoked_at else '?'}")
