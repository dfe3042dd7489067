"""``flywheel run SERVICE``: run one service in the foreground (``services/<name>/main.py``).

    flywheel run gateway
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``run`` command to the root CLI."""

    @app.command("run")
    def run(service: str = typer.Argument(..., help="Service name, e.g. gateway.")) -> None:
        """Run one service in the foreground until interrupted."""
        from flywheel.stack.services import run_service

        run_service(service)
