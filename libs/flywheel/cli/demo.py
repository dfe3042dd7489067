"""``flywheel demo``: the closed loop with a simulated shop world (``make run``).

``flywheel demo [options]`` runs the loop; ``flywheel demo reconcile`` checks afterwards that
nothing was lost or counted twice (see :mod:`flywheel.demo.reconcile`). The group runs the demo
itself when no subcommand is given, so ``flywheel demo --minutes 5`` works as before.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flywheel.cli.common import cli_settings, console

demo_app = typer.Typer(help="Run the closed loop (stack, services, simulated users, annotator "
                            "and judge); `flywheel demo reconcile` checks the result.")


@demo_app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    minutes: float = typer.Option(15.0, help="How long the world runs (start-up included)."),
    seed: int = typer.Option(0, help="Seed of the world, the model and training."),
    policy: str = typer.Option("uncertainty", help="Annotation selection: uncertainty|random."),
    label_budget: int = typer.Option(400, help="Labels the simulated annotator may give."),
    users: int = typer.Option(4, help="Concurrent simulated customers."),
    stop_at_target: bool = typer.Option(True, help="Stop once 3 releases reach 0.8."),
    keep: bool = typer.Option(False, help="Leave the stack and services running."),
    out: Path | None = typer.Option(None, help="Report folder (default <data_dir>/demo)."),
) -> None:
    """Run the closed loop: stack, services, simulated users, annotator and judge."""
    if ctx.invoked_subcommand is not None:
        return
    from flywheel.demo.runner import DemoConfig, run_demo
    from flywheel.logging import configure_logging

    settings = cli_settings()
    configure_logging("demo", "WARNING", settings.log_format)
    _terminate_like_interrupt()
    cfg = DemoConfig(minutes=minutes, seed=seed, policy=policy, label_budget=label_budget,
                     users=users, stop_at_target=stop_at_target, keep_running=keep,
                     out_dir=out)
    report = run_demo(settings, cfg)
    raise typer.Exit(0 if report["released"] else 1)


def _terminate_like_interrupt() -> None:
    """SIGTERM stops the demo as Ctrl-C does: the world stops and the stack is taken down."""
    import signal

    def _raise(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


@demo_app.command("reconcile")
def reconcile_command(
    line: str = typer.Option("shop-assistant", "--line", help="Model line whose batches to check."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Check the running stack: every trace triaged or dead-lettered, every label in at most
    one batch, no training example twice. Exit code 1 when a check fails."""
    import json

    from flywheel.demo.reconcile import reconcile, report_tables
    from flywheel.logging import configure_logging
    from flywheel.settings import check_tcp

    settings = cli_settings()
    configure_logging("reconcile", "WARNING", settings.log_format)
    check_tcp("FLYWHEEL_KAFKA_BOOTSTRAP", settings.kafka(), timeout_s=3.0)
    report = reconcile(settings, line)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    else:
        for table in report_tables(report):
            console.print(table)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
