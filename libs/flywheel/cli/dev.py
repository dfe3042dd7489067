"""``flywheel dev``: the local stack (Apache Kafka in KRaft mode, Redis, optional PostgreSQL).

    flywheel dev up [--services all|gateway,triage] [--postgres]
    flywheel dev status [--json]
    flywheel dev down

State lives under ``FLYWHEEL_DATA_DIR`` (default ``var/``); see flywheel.stack.lifecycle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from flywheel.cli.common import cli_settings, console, emit, err_console

app = typer.Typer(help="The local stack: Kafka (KRaft), Redis, PostgreSQL, services.",
                  no_args_is_help=True)


def _progress(name: str, what: str) -> None:
    err_console.print(f"[dim]{name}: {what}[/dim]")


@app.command()
def up(
    services: str = typer.Option(
        "", "--services", "-s", help='Services to start too: "all" or a comma list.'),
    postgres: bool = typer.Option(
        False, "--postgres", help="Also start a PostgreSQL cluster (default SQL is SQLite)."),
    kafka_libs: Path | None = typer.Option(
        None, "--kafka-libs", help="Kafka jar cache (default <data_dir>/kafka/libs)."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for each component."),
) -> None:
    """Start the stack, or reuse what already runs; prints where everything is."""
    from flywheel.stack.lifecycle import status, status_rows, up as stack_up

    settings = cli_settings()
    result = stack_up(settings, services=services, postgres=postgres, kafka_libs=kafka_libs,
                      timeout_s=timeout, progress=_progress)
    emit(status_rows(status(settings)), ["component", "address", "pid", "health", "log"],
         as_json=False, title=f"flywheel stack ({settings.data_dir})")
    console.print(f"up in {result.seconds:.1f}s: "
                  + ", ".join(f"{k} {v}" for k, v in result.actions.items()))
    pg = result.state.get("postgres") or {}
    if pg.get("managed") and not settings.database_url:
        # Settings falls back to SQLite, so other shells need the URL spelled out.
        console.print(f"PostgreSQL: export FLYWHEEL_DATABASE_URL={pg['url']}")


@app.command("status")
def status_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Each component's address, pid, data dir, log and health."""
    from flywheel.stack.lifecycle import status, status_rows

    settings = cli_settings()
    report = status(settings)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return
    if not report:
        console.print("nothing running (start it with `flywheel dev up`)")
        return
    emit(status_rows(report), ["component", "address", "pid", "data_dir", "health"],
         as_json=False, title=f"flywheel stack ({settings.data_dir})")


@app.command()
def down() -> None:
    """Stop exactly the processes `dev up` started; data stays on disk."""
    from flywheel.stack.lifecycle import down as stack_down

    results = stack_down(cli_settings(), progress=_progress)
    if not results:
        console.print("nothing to stop")
        return
    console.print(", ".join(f"{name} {what}" for name, what in results.items()))
