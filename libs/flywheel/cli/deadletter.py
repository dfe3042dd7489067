"""``flywheel deadletter``: inspect the dead-letter topic and send messages back after a fix.

    flywheel deadletter list [--json] [--reason RedactionError] [--limit 50]
    flywheel deadletter replay [--reason EventDecodeError] [--limit 100] [--dry-run]

``replay`` sends each selected dead letter's original key and bytes back to its source topic
with ``flywheel-replay-of`` / ``flywheel-attempt`` headers (a message that fails again comes
back with its attempt counted up). Replayed dead letters are remembered in Redis, when it is
configured, so running ``replay`` twice does not send a message twice; ``--again`` overrides.
Only topics of the registry under ``FLYWHEEL_TOPIC_PREFIX`` are replay targets.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import typer

from flywheel.cli.common import cli_settings, console, emit, err_console
from flywheel.errors import UnknownTopicError
from flywheel.settings import check_tcp

app = typer.Typer(help="Dead letters: list them, replay them after a fix.", no_args_is_help=True)
_SETTING = "FLYWHEEL_KAFKA_BOOTSTRAP"
_REPLAYED_TTL_S = 90 * 86400
_COLUMNS = ["event_id", "failed_at", "service", "source", "error_type", "attempt", "error"]


def _select(dead: list, reason: str | None, limit: int | None) -> list:
    if reason:
        dead = [d for d in dead if d.error_type.lower() == reason.lower()]
    return dead[:limit] if limit else dead


def _row(dl) -> dict[str, Any]:
    when = dl.failed_at.ToDatetime(tzinfo=timezone.utc).isoformat(timespec="seconds")
    return {"event_id": dl.envelope.event_id, "failed_at": when, "service": dl.service,
            "source": f"{dl.source_topic}[{dl.partition}]@{dl.offset}", "error_type": dl.error_type,
            "attempt": dl.attempt, "error": dl.error_message[:120], "trace_id": dl.envelope.trace_id,
            "bytes": len(dl.value)}


def _load(reason: str | None, limit: int | None):
    from flywheel.kafka.deadletter import read_dead_letters

    settings = cli_settings()
    bootstrap = settings.kafka()
    check_tcp(_SETTING, bootstrap, timeout_s=3.0)
    return settings, _select(read_dead_letters(bootstrap, settings.topic("deadletter")), reason, limit)


@app.command("list")
def list_dead_letters(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    reason: str | None = typer.Option(None, "--reason", help="Only this error type."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many (oldest first)."),
) -> None:
    """Dead letters on the topic, oldest first."""
    _, dead = _load(reason, limit)
    rows = [_row(d) for d in dead]
    emit(rows, _COLUMNS, as_json=as_json, title="dead letters")
    if not as_json:
        counts: dict[str, int] = {}
        for d in dead:
            counts[d.error_type] = counts.get(d.error_type, 0) + 1
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no dead letters")


def _replay_memory(settings):
    """A Redis client for remembering replays, or None (with a warning) when unavailable."""
    try:
        import redis

        client = redis.Redis.from_url(settings.redis(), socket_timeout=3, socket_connect_timeout=3)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - Redis is optional here
        err_console.print(f"warning: replays are not remembered (Redis: {exc})")
        return None


@app.command()
def replay(
    reason: str | None = typer.Option(None, "--reason", help="Only this error type."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many (oldest first)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be sent."),
    again: bool = typer.Option(False, "--again", help="Also send dead letters replayed before."),
) -> None:
    """Send dead letters back to their source topics (after the cause is fixed)."""
    from flywheel.events.topics import resolve_topic
    from flywheel.kafka.deadletter import replay_headers
    from flywheel.kafka.producer import make_producer

    settings, dead = _load(reason, None)
    memory = None if dry_run else _replay_memory(settings)
    namespace = f"fw:deadletter:{settings.topic_prefix}:replayed:"
    chosen = []
    for dl in dead:
        try:
            resolve_topic(dl.source_topic, settings.topic_prefix)
        except UnknownTopicError:
            err_console.print(f"skipped {dl.envelope.event_id}: {dl.source_topic} is not a registry topic")
            continue
        if not again and memory is not None and memory.exists(namespace + dl.envelope.event_id):
            continue
        chosen.append(dl)
        if limit and len(chosen) >= limit:
            break
    if dry_run:
        emit([_row(d) for d in chosen], _COLUMNS, as_json=False, title="would replay")
        return
    producer = make_producer(settings)
    try:
        for dl in chosen:
            producer.send(dl.source_topic, key=dl.key or None, value=dl.value,
                          headers=replay_headers(dl)).get(timeout=15)
            if memory is not None:
                memory.set(namespace + dl.envelope.event_id, b"1", ex=_REPLAYED_TTL_S)
    finally:
        producer.close()
    console.print(f"replayed {len(chosen)} of {len(dead)} dead letters"
                  + (f" with error type {reason}" if reason else ""))
