"""``flywheel config``: every setting with its environment variable, default and value."""

from __future__ import annotations

import typer
from pydantic_settings import BaseSettings

from flywheel.cli.common import emit
from flywheel.settings import Settings

app = typer.Typer(help="Show settings and their environment variables.", no_args_is_help=True)


def settings_rows(cls: type[BaseSettings], instance: BaseSettings | None = None) -> list[dict]:
    """One row per field: env var, type, default, current value (secrets hidden), help."""
    prefix = cls.model_config.get("env_prefix", "")
    rows = []
    for name, field in cls.model_fields.items():
        value = getattr(instance, name) if instance is not None else ""
        if "secret" in name or "password" in name:
            value = "***" if value else ""
        rows.append({
            "env": f"{prefix}{name.upper()}",
            "type": getattr(field.annotation, "__name__", str(field.annotation)).replace("typing.", ""),
            "default": field.default if field.default is not None else "",
            "value": value,
            "help": field.description or "",
        })
    return rows


@app.command("show")
def show(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the shared settings as this process resolves them."""
    settings = Settings()
    emit(settings_rows(Settings, settings), ["env", "default", "value", "help"], json_out,
         title="Flywheel settings")
