"""``flywheel topics``: create the registry's topics, list them, and read any of them as JSON.

    flywheel topics create
    flywheel topics list [--json]
    flywheel topics tail TOPIC [--from-beginning] [--follow] [--key K] [--grep RE] [--limit N]

Names come from the topic registry under ``FLYWHEEL_TOPIC_PREFIX``; the broker from
``FLYWHEEL_KAFKA_BOOTSTRAP`` or the dev stack.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any

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


# -- tail -------------------------------------------------------------------------------------

_IDLE_TIMEOUT_S = 30.0


def _record_line(record: Any, short: str, prefix: str) -> str:
    """One consumed record as a JSON line: coordinates, key and the decoded event."""
    from flywheel.errors import FlywheelError
    from flywheel.events.codec import decode_topic_value, to_dict

    line: dict[str, Any] = {
        "topic": short, "partition": record.partition, "offset": record.offset,
        "timestamp": datetime.fromtimestamp(record.timestamp / 1000, timezone.utc).isoformat()
        if record.timestamp is not None and record.timestamp >= 0 else None,
        "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
    }
    try:
        line["event"] = to_dict(decode_topic_value(short, record.value or b"", prefix=prefix))
    except FlywheelError as exc:
        line["error"] = str(exc)
        line["value_base64"] = base64.b64encode(record.value or b"").decode()
    return json.dumps(line, ensure_ascii=False)


def _wanted(record: Any, text: str, key: str | None, patterns: list[re.Pattern]) -> bool:
    if key is not None and (record.key is None
                            or record.key.decode("utf-8", "replace") != key):
        return False
    return all(p.search(text) for p in patterns)


@app.command()
def tail(
    topic: str = typer.Argument(..., help="Short name (traces.raw) or full broker name."),
    from_beginning: bool = typer.Option(
        False, "--from-beginning", help="Start at the oldest record of each partition."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new records until interrupted."),
    key: str | None = typer.Option(None, "--key", help="Only records with this key."),
    grep: list[str] = typer.Option(
        [], "--grep", help="Only records whose JSON line matches this regular expression "
                           "(repeatable: all must match)."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Stop after printing this many records."),
    lines: int = typer.Option(
        10, "--lines", "-n", min=0,
        help="Without --from-beginning: start this many records before each partition's end."),
) -> None:
    """Print a topic's records decoded to JSON lines; without --follow, stop at the end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    from flywheel.events.topics import resolve_topic

    bootstrap, prefix = _bootstrap()
    spec = resolve_topic(topic, prefix)
    name = spec.full_name(prefix)
    patterns = [re.compile(p) for p in grep]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, client_id="flywheel-tail")
    try:
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            raise ConfigError(_SETTING, f"topic {name} does not exist on {bootstrap} "
                                        "(run `flywheel topics create`)")
        tps = [TopicPartition(name, p) for p in sorted(partitions)]
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, begins[tp] if from_beginning else max(begins[tp], ends[tp] - lines))
        _print_records(consumer, tps, ends, spec.short, prefix, follow=follow, key=key,
                       patterns=patterns, limit=limit)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter's final
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        consumer.close()


def _print_records(consumer: Any, tps: list, ends: dict, short: str, prefix: str, *,
                   follow: bool, key: str | None, patterns: list[re.Pattern],
                   limit: int | None) -> None:
    pending = {tp for tp in tps if consumer.position(tp) < ends[tp]}
    printed, idle_since = 0, time.monotonic()
    while follow or pending:
        batches = consumer.poll(timeout_ms=500)
        for tp in sorted(batches, key=lambda t: t.partition):
            for record in batches[tp]:
                if not follow and record.offset >= ends[tp]:
                    continue
                text = _record_line(record, short, prefix)
                if _wanted(record, text, key, patterns):
                    sys.stdout.write(text + "\n")
                    printed += 1
                    if limit is not None and printed >= limit:
                        sys.stdout.flush()
                        return
        if batches:
            idle_since = time.monotonic()
            sys.stdout.flush()
        pending = {tp for tp in pending if consumer.position(tp) < ends[tp]}
        if not follow and pending and time.monotonic() - idle_since > _IDLE_TIMEOUT_S:
            raise DependencyUnavailable(f"no records from {tps[0].topic} for "
                                        f"{_IDLE_TIMEOUT_S:.0f}s before its end offsets")
