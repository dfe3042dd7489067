"""``flywheel demo``: the closed loop with a simulated shop world (``make run``)."""

from __future__ import annotations

from pathlib import Path

import typer

from flywheel.cli.common import cli_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
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
        from flywheel.demo.runner import DemoConfig, run_demo
        from flywheel.logging import configure_logging

        settings = cli_settings()
        configure_logging("demo", "WARNING", settings.log_format)
        cfg = DemoConfig(minutes=minutes, seed=seed, policy=policy, label_budget=label_budget,
                         users=users, stop_at_target=stop_at_target, keep_running=keep,
                         out_dir=out)
        report = run_demo(settings, cfg)
        raise typer.Exit(0 if report["released"] else 1)
