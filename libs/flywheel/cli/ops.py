"""``flywheel lag`` and ``flywheel status``: the pipeline at a glance, from a terminal.

    flywheel lag [--json] [--group PREFIX] [--all-groups]
    flywheel status [--json] [--rate-window 1.0] [--console http://127.0.0.1:8004]

``lag`` reads committed and end offsets from the broker, per consumer group and partition.
``status`` collects the console's snapshot (services, topics and throughput, lag, dead
letters, annotation queue and judge agreement, preference budgets, the next batch, the
release and canary) with the console's own code, so both show the same numbers;
``--console`` prints a running console's ``/api/snapshot`` instead. ``--json`` prints the
snapshot as the console serves it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from flywheel.cli.common import console, emit
from flywheel.errors import DependencyUnavailable
from flywheel.settings import check_tcp, load_settings

_SETTING = "FLYWHEEL_KAFKA_BOOTSTRAP"
LAG_COLUMNS = ["group", "topic", "partition", "committed", "end", "lag"]


def register(app: typer.Typer) -> None:
    """Add ``lag`` and ``status`` as top-level commands."""
    app.command("lag")(lag)
    app.command("status")(status)


def lag(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    group: str | None = typer.Option(
        None, "--group", help="Only groups whose id starts with this (default: '<prefix>-')."),
    all_groups: bool = typer.Option(
        False, "--all-groups", help="Every group and topic on the broker, not only Flywheel's."),
) -> None:
    """Consumer lag per group and partition: committed offset, end offset and their gap."""
    from kafka.errors import KafkaError

    from flywheel.kafka.lag import consumer_lag

    settings = load_settings()
    bootstrap = settings.kafka()
    check_tcp(_SETTING, bootstrap, timeout_s=3.0)
    prefix = settings.topic_prefix
    group_prefix = "" if all_groups else (group if group is not None else f"{prefix}-")
    topic_prefix = "" if all_groups else f"{prefix}."
    try:
        rows = [row.as_dict() for row in consumer_lag(bootstrap, group_prefix, topic_prefix)]
    except (KafkaError, OSError) as exc:
        raise DependencyUnavailable(f"Kafka at {bootstrap}: {type(exc).__name__}: {exc}") from None
    if as_json:
        emit(rows, LAG_COLUMNS, as_json=True)
        return
    if not rows:
        console.print(f"no consumer group starting with {group_prefix!r} has committed offsets")
        return
    emit(rows, LAG_COLUMNS, as_json=False, title="consumer lag")
    from flywheel.services.console.logic import lag_by_group

    groups = [{**g, "topics": ", ".join(g["topics"])} for g in lag_by_group(rows)]
    emit(groups, ["group", "topics", "partitions", "lag", "max_lag"], as_json=False,
         title="per group")


def _fetch(console_url: str) -> dict[str, Any]:
    import httpx

    url = f"{console_url.rstrip('/')}/api/snapshot"
    try:
        response = httpx.get(url, timeout=60)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DependencyUnavailable(f"console at {url}: {exc}") from None


def status(
    as_json: bool = typer.Option(False, "--json", help="Print the snapshot as JSON."),
    rate_window: float = typer.Option(
        1.0, "--rate-window", min=0.0, help="Seconds between the two offset samples (0: no rates)."),
    console_url: str | None = typer.Option(
        None, "--console", help="Print a running console's /api/snapshot instead."),
) -> None:
    """Every service's health, topics and throughput, lag, queues, the next batch, the release."""
    if console_url:
        snap = _fetch(console_url)
    else:
        from flywheel.services.console.collector import collect_once
        from flywheel.services.console.settings import ConsoleSettings

        snap = collect_once(load_settings(ConsoleSettings), rate_window_s=rate_window or None)
    if as_json:
        sys.stdout.write(json.dumps(snap, indent=2, default=str) + "\n")
        return
    print_status(snap)


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{digits}f}"
    return str(int(value)) if isinstance(value, float) else str(value)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def print_status(snap: dict[str, Any]) -> None:
    """The snapshot as a few rich tables."""
    for source, state in snap["sources"].items():
        if state != "ok":
            console.print(f"[red]{source} unavailable:[/red] {state}")
    emit([{**s, "address": s["url"] or ("not started" if s["kind"] == "http" else "worker"),
           "pid": s["pid"] or ""} for s in snap["services"]],
         ["name", "state", "reason", "address", "pid"], as_json=False, title="services")
    emit([{"topic": t["short"], "partitions": t["partitions"] if t["exists"] else "missing",
           "end_offset": t["end_offset"], "events/s": _num(t["rate_per_s"])}
          for t in snap["topics"]], ["topic", "partitions", "end_offset", "events/s"],
         as_json=False, title="topics")
    if snap["lag"]["groups"]:
        emit([{**g, "topics": ", ".join(g["topics"])} for g in snap["lag"]["groups"]],
             ["group", "topics", "partitions", "lag"], as_json=False, title="consumer lag")
    emit(_pipeline_rows(snap), ["figure", "value"], as_json=False, title="pipeline")


def _pipeline_rows(snap: dict[str, Any]) -> list[dict[str, str]]:
    dl = snap["deadletters"]
    queue = snap["annotation"].get("queue") or {}
    prefs = snap["preferences"] or {}
    fill = snap["batches"]["open"]
    rows = [
        {"figure": "dead letters", "value": f"{dl['total']} "
         + ", ".join(f"{k}: {n}" for k, n in dl["by_reason"].items())},
        {"figure": "annotation queue", "value": f"label {_num(queue.get('label'))}, "
         f"review {_num(queue.get('review'))}"},
    ]
    for c in snap["annotation"].get("calibration") or []:
        rows.append({"figure": f"judge agreement ({c['criterion']})",
                     "value": f"{_num(c['agreement'], 3)} over {_num(c['n'])} pairs"
                     + (" LOW" if c["low"] else "")})
    if prefs:
        rows.append({"figure": "preference budget today",
                     "value": f"{prefs['questions']} questions to {prefs['users']} users, "
                     f"{prefs['at_limit']} at the limit of {prefs['limit']}"})
    rows.append({"figure": f"next batch ({fill['model_line']})",
                 "value": f"{_pct(fill['fill'])}: sft {_num(fill['sft']['ready'])}/"
                 f"{fill['sft']['threshold']}, dpo {_num(fill['dpo']['ready'])}/"
                 f"{fill['dpo']['threshold']} ({fill['source']})"})
    rows.append({"figure": "batches", "value": str(snap["batches"]["count"])})
    for line in snap["releases"]["lines"]:
        current = f"v{line['current']['version']}" if line["current"] else "–"
        canary = f"v{line['canary']['version']}" if line["canary"] else "–"
        rows.append({"figure": f"release ({line['line']})",
                     "value": f"{current}, canary {canary}"})
    signals = snap["releases"]["serving"].get("signals")
    if signals:
        rows.append({"figure": "canary share", "value": _pct(signals["canary_share"])})
    return rows

