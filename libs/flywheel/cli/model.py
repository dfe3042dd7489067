"""``flywheel model``: build the tiny demo base model, evaluate and query local models.

Run::

    flywheel model init-tiny [--out DIR] [--pretrain-steps N] [--seed S]
    flywheel model eval MODEL_DIR [--n 200]
    flywheel model ask MODEL_DIR "Where is my order 4821?"

MODEL_DIR is any local Hugging Face causal-LM directory or a Flywheel adapter directory.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from flywheel.cli.common import cli_settings, console, err_console

app = typer.Typer(help="Build, evaluate and query local models.", no_args_is_help=True)

DEFAULT_PRETRAIN_STEPS = 600  # flywheel.ml.tiny.PretrainConfig.steps


def default_tiny_dir() -> Path:
    """``<data_dir>/models/tiny-base`` (``FLYWHEEL_DATA_DIR``, default ``var``)."""
    return cli_settings().data_dir / "models" / "tiny-base"


@app.command("init-tiny")
def init_tiny(
    out: Optional[Path] = typer.Option(None, "--out", help="Output directory (default <data_dir>/models/tiny-base)."),
    pretrain_steps: int = typer.Option(DEFAULT_PRETRAIN_STEPS, "--pretrain-steps", min=0, help="Pre-training steps."),
    seed: int = typer.Option(0, "--seed", help="Seed for the tokenizer order, init and batches."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads (0: the idle CPUs, at least 1)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model directory."),
) -> None:
    """Train the tokenizer, build the ~4M-parameter Llama, pre-train it and save it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from flywheel.ml.loading import set_torch_threads
    from flywheel.ml.tiny import PretrainProgress
    from flywheel.ml.tiny import init_tiny as build

    target = out or default_tiny_dir()
    if (target / "config.json").exists() and not force:
        err_console.print(f"{target} already holds a model (use --force to rebuild)")
        raise typer.Exit(1)
    set_torch_threads(threads or None)
    columns = (TextColumn("pre-training"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[rate]:,.0f} tok/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("pretrain", total=pretrain_steps, loss=float("nan"), rate=0.0)

        def _update(p: PretrainProgress) -> None:
            bar.update(task, completed=p.step, loss=p.loss, rate=p.tokens_per_s)

        path = build(target, pretrain_steps=pretrain_steps, seed=seed, progress=_update)
    info = json.loads((path / "flywheel_tiny.json").read_text())
    console.print(f"saved {path} ({info['params']:,} parameters, loss {info['final_loss']:.3f}, "
                  f"{info['seconds']:.1f} s)")


@app.command("eval")
def evaluate_model(
    model_dir: Path = typer.Argument(..., help="Model or adapter directory."),
    n: int = typer.Option(200, "--n", min=1, help="Held-out shop questions to answer."),
    show: int = typer.Option(5, "--show", min=0, help="Wrong answers to print."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Exact match of greedy answers on the shop's held-out questions."""
    from flywheel.demo.shop import heldout_set, reference_answer
    from flywheel.ml.evaluate import exact_match_report
    from flywheel.ml.loading import load_model, load_tokenizer

    questions = heldout_set(n)
    report = exact_match_report(load_model(model_dir), load_tokenizer(model_dir), questions)
    if as_json:
        sys.stdout.write(json.dumps({"accuracy": report.accuracy, "per_intent": report.per_intent}) + "\n")
        return
    console.print(f"exact match {report.accuracy:.3f} on {n} held-out questions")
    for intent, acc in report.per_intent.items():
        console.print(f"  {intent:<16} {acc:.3f}")
    wrong = [(q, a) for q, a, ok in zip(questions, report.answers, report.correct) if not ok]
    for q, answer in wrong[:show]:
        console.print(f"[dim]{q.text}[/dim]\n  got:      {answer}\n  expected: {reference_answer(q)}")


@app.command("ask")
def ask(
    model_dir: Path = typer.Argument(..., help="Model or adapter directory."),
    question: str = typer.Argument(..., help="The user's message."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
) -> None:
    """Answer one user message greedily, with the shop's system prompt."""
    from flywheel.demo.shop import SYSTEM_PROMPT
    from flywheel.ml.evaluate import generate
    from flywheel.ml.loading import load_model, load_tokenizer

    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
    answer = generate(load_model(model_dir), load_tokenizer(model_dir), [messages],
                      max_new_tokens=max_new_tokens)[0]
    console.print(answer, markup=False)
