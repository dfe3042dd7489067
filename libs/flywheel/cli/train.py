"""``flywheel train --batch ID``: train one batch now, in this process (retry after a failure).

Run::

    flywheel train --batch BATCH [--line LINE] [--again] [--no-publish] [--json]

BATCH is a batch id or a unique prefix (>= 6 characters) of a batch that a version was trained
on, or that the curator recorded. The job is the trainer service's own: it takes the model
line's lock (waiting while the service trains), trains, evaluates, gates, records the outcome
and announces it on ``models.candidates``. A batch whose last attempt failed is trained again;
one that already has a finished version is only announced again, unless ``--again``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from flywheel.cli.common import cli_settings, console


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the root CLI."""

    @app.command("train")
    def train(batch: str = typer.Option(..., "--batch", help="Batch id or unique prefix."),
              line: str | None = typer.Option(None, "--line", help="Model line of the batch."),
              again: bool = typer.Option(False, "--again", help="Train even when the batch "
                                         "already has a finished version."),
              no_publish: bool = typer.Option(False, "--no-publish", help="Do not announce on "
                                              "models.candidates (no broker needed)."),
              as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON.")
              ) -> None:
        """Train, evaluate and gate one batch now (retries a failed batch)."""
        outcome = run_train(batch, line=line, again=again, publish=not no_publish,
                            progress=not as_json)
        _print(outcome, as_json)
        if outcome.kind == "failed":
            raise typer.Exit(1)


def run_train(batch_ref: str, *, line: str | None = None, again: bool = False,
              publish: bool = True, progress: bool = True) -> Any:
    """Find the batch and run its job; returns the ``JobOutcome``."""
    from flywheel.services.trainer.job import run_batch
    from flywheel.services.trainer.main import build_context, make_publisher
    from flywheel.services.trainer.registry import find_batch
    from flywheel.services.trainer.settings import SERVICE, load_trainer_settings

    settings = cli_settings(service_name=SERVICE)
    trainer = load_trainer_settings(**({"model_line": line} if line else {}))
    close = None
    publisher = None
    if publish:
        publisher, close = make_publisher(settings)
    ctx = build_context(settings, trainer, publisher, console=progress and sys.stderr.isatty())
    try:
        event = find_batch(ctx.engine, batch_ref, ctx.artifacts, line)
        return run_batch(ctx, event, retry_failed=True, force=again)
    finally:
        if close is not None:
            close()
        ctx.engine.dispose()


def _print(outcome: Any, as_json: bool) -> None:
    numbers = {k: v for k, v in outcome.metrics.items() if isinstance(v, (int, float))}
    if as_json:
        sys.stdout.write(json.dumps({"outcome": outcome.kind, "line": outcome.line,
                                     "version": outcome.version, "batch_id": outcome.batch_id,
                                     "reason": outcome.reason, "metrics": numbers},
                                    indent=2, default=str) + "\n")
        return
    console.print(f"[bold]{outcome.line} v{outcome.version}: {outcome.kind}[/bold] "
                  f"(batch {outcome.batch_id[:12]})")
    if outcome.reason:
        console.print(f"  {outcome.reason}")
    for key in ("eval.exact_match", "release.eval.exact_match", "win_rate.exact_match",
                "win_rate.judge", "preference.accuracy", "time.job_s"):
        if key in numbers:
            console.print(f"  {key}: {numbers[key]:.3f}")
