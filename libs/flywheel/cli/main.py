"""The ``flywheel`` command line: ops, the dev stack, models, datasets and the demo.

Each command group lives in its own module under ``flywheel.cli`` and is registered here.
Heavy imports (torch, faust) happen inside commands, so ``flywheel --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from flywheel.errors import ConfigError, FlywheelError

app = typer.Typer(
    name="flywheel",
    help="Flywheel: continuously improve LLMs from their own production traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module under flywheel.cli, attribute holding a typer.Typer, group name). A module that is
# missing is skipped so that partially installed images still run the groups they have.
_GROUPS: list[tuple[str, str, str]] = [
    ("config", "app", "config"),
    ("db", "app", "db"),
    ("topics", "app", "topics"),
    ("dev", "app", "dev"),
    ("run", "register", ""),
    ("keys", "app", "keys"),
    ("annotators", "app", "annotators"),
    ("model", "app", "model"),
    ("models", "app", "models"),
    ("datasets", "app", "datasets"),
    ("deadletter", "app", "deadletter"),
    ("ops", "register", ""),
    ("train", "register", ""),
    ("demo", "register", ""),
]


@app.command()
def version() -> None:
    """Print the Flywheel version."""
    from flywheel import __version__

    typer.echo(__version__)


def _register_groups() -> None:
    for module_name, attr, group in _GROUPS:
        try:
            module = importlib.import_module(f"flywheel.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"flywheel.cli.{module_name}":
                continue
            raise
        target = getattr(module, attr)
        if group:
            app.add_typer(target, name=group)
        else:
            target(app)


_register_groups()


def main() -> None:
    """Entry point: run the CLI, printing FlywheelErrors as one line on stderr."""
    try:
        app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FlywheelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
