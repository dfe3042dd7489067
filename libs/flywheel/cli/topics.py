"""``flywheel topics``: create the registry's topics and list them with their end offsets.

    flywheel topics create
    flywheel topics list [--json]

Names come from the topic registry under ``FLYWHEEL_TOPIC_PREFIX``; the broker from
``FLYWHEEL_KAFKA_BOOTSTRAP`` or the dev stack.
"""

from __future__ import annotations

import typer

from flywheel.cli.common import cli_settings, console, emit
from flywheel.errors import ConfigError, DependencyUnavailable
from flywheel.settings import check_tcp

app = typer.Typer(help="Kafka topics from the registry.", no_args_is_help=True)
_SETTING = "FLYWHEEL_KAFKA_BOOTSTRAP"


def _bootstrap() -> tuple[str, str]:
    """(bootstrap, prefix), failing fast with one line when the broker does not answer."""
    settings = cli_settings()
    bootstrap = settings.kafka()
    check_tcp(_SETTING, bootstrap, timeout_s=3.0)
    return bootstrap, settings.topic_prefix


@app.command()
def create() -> None:
    """Create every registered topic that does not exist yet (idempotent)."""
    from flywheel.kafka.admin import create_topics

    bootstrap, prefix = _bootstrap()
    try:
        result = create_topics(bootstrap, prefix)
    except DependencyUnavailable as exc:
        raise ConfigError(_SETTING, str(exc)) from None
    emit([{"topic": name, "result": state} for name, state in result.items()],
         ["topic", "result"], as_json=False)
    created = sum(state == "created" for state in result.values())
    console.print(f"{created} created, {len(result) - created} already existed")


@app.command("list")
def list_topics(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every registered topic: partitions and end offsets (missing ones say so)."""
    from flywheel.kafka.admin import describe_topics

    bootstrap, prefix = _bootstrap()
    try:
        rows = describe_topics(bootstrap, prefix)
    except DependencyUnavailable as exc:
        raise ConfigError(_SETTING, str(exc)) from None
    if as_json:
        emit(rows, [], as_json=True)
        return
    table = [{**row, "partitions": row["partitions"] if row["exists"] else "missing",
              "end_offsets": " ".join(f"{p}:{o}" for p, o in row["end_offsets"].items())}
             for row in rows]
    emit(table, ["topic", "partitions", "end_offset", "end_offsets"], as_json=False)
