"""``flywheel models promote | rollback``: release decisions by hand, recorded with who decided.

Run::

    flywheel models promote LINE [VERSION] [--actor NAME] [--reason TEXT] [--json]
    flywheel models rollback LINE [VERSION] [--actor NAME] [--reason TEXT] [--json]

``promote`` without a version promotes the line's canary; with one, it serves that version
(it must have an exported artifact) to everyone. ``rollback`` without a version drops the
canary, or, when there is none, goes back from the current release to the one before it.
The actor defaults to ``$FLYWHEEL_ACTOR``, else the login name. Both update the registry,
append a release row and produce a ``ModelRelease`` to ``models.releases``, exactly as the
automatic release controller does.

Registered on the ``models`` group with :func:`add_release_commands`.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Any

import typer

from flywheel.cli.common import cli_settings, console


def default_actor() -> str:
    """Who is acting: ``$FLYWHEEL_ACTOR``, else the login name."""
    explicit = os.environ.get("FLYWHEEL_ACTOR", "").strip()
    if explicit:
        return explicit
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def _releaser() -> tuple[Any, Any]:
    from flywheel.db.engine import make_engine
    from flywheel.kafka.producer import make_producer
    from flywheel.services.exporter.releasing import Releaser, kafka_send

    settings = cli_settings(service_name="cli")
    producer = make_producer(settings, client_id="flywheel-cli")
    return Releaser(settings, make_engine(settings.database()), kafka_send(producer),
                    producer_name="cli"), producer


def _report(event: Any, as_json: bool) -> None:
    from flywheel.events.codec import to_dict

    data = to_dict(event)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    action = data.get("action", "").removeprefix("RELEASE_ACTION_").lower()
    serves = data.get("previous_version", 0) if action == "rollback" else data.get("version", 0)
    console.print(f"{action} {data['model_line']} v{data.get('version', 0)} by {data['actor']}: "
                  f"now serving v{serves}")


def _run(action: str, line: str, version: int | None, actor: str | None, reason: str,
         as_json: bool) -> None:
    releaser, producer = _releaser()
    try:
        who = actor or default_actor()
        if action == "promote":
            event = releaser.promote(line, version, actor=who, reason=reason or "promoted by hand")
        else:
            event = releaser.rollback(line, version, actor=who, reason=reason or "rolled back by hand")
    finally:
        producer.close(timeout=10)
    _report(event, as_json)


def add_release_commands(models_app: typer.Typer) -> None:
    """Add ``promote`` and ``rollback`` to the ``flywheel models`` group."""

    @models_app.command("promote")
    def promote(
        line: str = typer.Argument(..., help="Model line, e.g. shop-assistant."),
        version: int | None = typer.Argument(None, help="Version to promote (default: the canary)."),
        actor: str | None = typer.Option(None, help="Who decides (default: $FLYWHEEL_ACTOR or login)."),
        reason: str = typer.Option("", help="Why, recorded in the release log."),
        as_json: bool = typer.Option(False, "--json", help="Print the ModelRelease as JSON."),
    ) -> None:
        """Serve the canary (or VERSION) to everyone."""
        _run("promote", line, version, actor, reason, as_json)

    @models_app.command("rollback")
    def rollback(
        line: str = typer.Argument(..., help="Model line, e.g. shop-assistant."),
        version: int | None = typer.Argument(None, help="Version to take out (default: canary, else release)."),
        actor: str | None = typer.Option(None, help="Who decides (default: $FLYWHEEL_ACTOR or login)."),
        reason: str = typer.Option("", help="Why, recorded in the release log."),
        as_json: bool = typer.Option(False, "--json", help="Print the ModelRelease as JSON."),
    ) -> None:
        """Drop the canary, or go back to the release before the current one."""
        _run("rollback", line, version, actor, reason, as_json)
