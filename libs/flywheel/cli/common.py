"""Helpers shared by CLI commands: settings loading and output in rich tables or JSON."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

from flywheel.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def cli_settings(**overrides: Any) -> Settings:
    """Settings for a CLI command (errors surface as one line via flywheel.cli.main)."""
    return load_settings(**overrides)


def emit(rows: list[dict[str, Any]], columns: Iterable[str], as_json: bool, title: str = "") -> None:
    """Print rows as a rich table, or as JSON when ``as_json``."""
    if as_json:
        sys.stdout.write(json.dumps(rows, default=str, indent=2) + "\n")
        return
    table = Table(title=title or None)
    cols = list(columns)
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(row.get(c, "")) for c in cols])
    console.print(table)
