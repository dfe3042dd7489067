"""``flywheel models``: the model registry: list versions, show one, compare two.

Run::

    flywheel models list [--line LINE] [--status STATUS] [--json]
    flywheel models show REF [--line LINE] [--json]
    flywheel models diff A B [--line LINE] [--json]
    flywheel models promote | rollback ...      # release decisions (flywheel.cli.releases)

REF is ``LINE:VERSION``, ``VERSION`` (with ``--line``, or when there is one model line),
``latest`` or ``release``. ``diff`` compares lineage (parent, batches), hyperparameters and
every metric of two versions, with the change from A to B.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import typer

from flywheel.cli.common import cli_settings, console, emit

app = typer.Typer(help="The model registry: list, show and diff trained versions.",
                  no_args_is_help=True)

_LINE = typer.Option(None, "--line", help="Model line (needed with several lines).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


def open_registry() -> Any:
    """The database engine of the configured settings."""
    from flywheel.db.engine import make_engine

    return make_engine(cli_settings().database())


def _status(row: Any) -> str:
    return str(getattr(row.status, "value", row.status))


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary(row: Any) -> dict[str, Any]:
    """One line of ``models list``."""
    metrics = row.metrics or {}
    gate = metrics.get("gate") or {}
    return {
        "line": row.line, "version": row.version, "status": _status(row),
        "parent": row.parent_version if row.parent_version is not None else "base",
        "batches": len(row.batch_ids or []),
        "exact_match": metrics.get("eval.exact_match"),
        "release_em": metrics.get("release.eval.exact_match"),
        "gate": "" if not gate else ("passed" if gate.get("passed") else "failed"),
        "updated_at": row.updated_at.strftime("%Y-%m-%d %H:%M") if row.updated_at else "",
    }


def details(row: Any) -> dict[str, Any]:
    """Every field of a version, JSON-ready."""
    return {
        "line": row.line, "version": row.version, "status": _status(row),
        "parent_version": row.parent_version, "base_model": row.base_model,
        "adapter_path": row.adapter_path, "merged_path": row.merged_path,
        "onnx_path": row.onnx_path, "artifact_hash": row.artifact_hash,
        "batch_ids": list(row.batch_ids or []), "hyperparameters": row.hyperparameters or {},
        "metrics": row.metrics or {}, "failure_reason": row.failure_reason,
        "status_history": list(row.status_history or []),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


@app.command("list")
def list_cmd(line: str | None = _LINE,
             status: str | None = typer.Option(None, "--status", help="Only this status."),
             as_json: bool = _JSON) -> None:
    """List versions, oldest first, with their status and headline metrics."""
    from flywheel.services.trainer.registry import list_versions

    rows = [summary(r) for r in list_versions(open_registry(), line)
            if status is None or _status(r) == status]
    if not as_json:
        rows = [{k: _num(v) for k, v in r.items()} for r in rows]
    emit(rows, ["line", "version", "status", "parent", "batches", "exact_match", "release_em",
                "gate", "updated_at"], as_json, title="Model versions")


@app.command("show")
def show_cmd(ref: str = typer.Argument(..., help="LINE:VERSION, VERSION, latest or release."),
             line: str | None = _LINE, as_json: bool = _JSON) -> None:
    """Everything about one version: lineage, paths, hyperparameters, metrics, history."""
    from rich.table import Table

    from flywheel.services.trainer.registry import resolve_version

    info = details(resolve_version(open_registry(), ref, line))
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return
    head = Table(title=f"{info['line']} v{info['version']}", show_header=False)
    for key in ("status", "parent_version", "base_model", "adapter_path", "merged_path",
                "onnx_path", "artifact_hash", "failure_reason", "created_at", "updated_at"):
        head.add_row(key, _num(info[key]))
    head.add_row("batch_ids", "\n".join(info["batch_ids"]))
    console.print(head)
    gate = info["metrics"].get("gate") or {}
    if gate:
        console.print(f"[bold]gate {'passed' if gate.get('passed') else 'failed'}[/bold]")
        for reason in gate.get("reasons") or []:
            console.print(f"  {reason}")
    _print_mapping("metrics", {k: v for k, v in info["metrics"].items() if k != "gate"})
    _print_mapping("hyperparameters", (info["hyperparameters"] or {}).get("train") or {})
    history = Table(title="status history")
    for col in ("at", "status", "reason"):
        history.add_column(col)
    for entry in info["status_history"]:
        history.add_row(str(entry.get("at", "")), str(entry.get("status", "")),
                        str(entry.get("reason") or ""))
    console.print(history)


def _print_mapping(title: str, values: dict[str, Any]) -> None:
    from rich.table import Table

    if not values:
        return
    table = Table(title=title)
    table.add_column("name")
    table.add_column("value", justify="right")
    for key in sorted(values):
        table.add_row(key, _num(values[key], 4))
    console.print(table)


def diff_versions(a: Any, b: Any) -> dict[str, Any]:
    """What differs between two versions: lineage, hyperparameters and metrics (B - A)."""
    batches_a, batches_b = list(a.batch_ids or []), list(b.batch_ids or [])
    hyper_a = (a.hyperparameters or {}).get("train") or {}
    hyper_b = (b.hyperparameters or {}).get("train") or {}
    metrics_a = {k: v for k, v in (a.metrics or {}).items() if _is_number(v)}
    metrics_b = {k: v for k, v in (b.metrics or {}).items() if _is_number(v)}
    return {
        "a": f"{a.line}:{a.version}", "b": f"{b.line}:{b.version}",
        "fields": {k: [getattr(a, k), getattr(b, k)] for k in (
            "status", "parent_version", "base_model", "artifact_hash")
            if _plain(getattr(a, k)) != _plain(getattr(b, k))},
        "batches": {"only_a": [x for x in batches_a if x not in batches_b],
                    "only_b": [x for x in batches_b if x not in batches_a]},
        "hyperparameters": {k: [hyper_a.get(k), hyper_b.get(k)]
                            for k in sorted(set(hyper_a) | set(hyper_b))
                            if hyper_a.get(k) != hyper_b.get(k)},
        "metrics": {k: [metrics_a.get(k), metrics_b.get(k), _delta(metrics_a.get(k),
                                                                    metrics_b.get(k))]
                    for k in sorted(set(metrics_a) | set(metrics_b))},
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _delta(a: Any, b: Any) -> float | None:
    if _is_number(a) and _is_number(b):
        return b - a
    return None


@app.command("diff")
def diff_cmd(a: str = typer.Argument(..., help="First version (LINE:VERSION or VERSION)."),
             b: str = typer.Argument(..., help="Second version."),
             line: str | None = _LINE, as_json: bool = _JSON,
             all_metrics: bool = typer.Option(False, "--all", help="Also unchanged metrics.")) -> None:
    """Compare two versions: lineage, hyperparameters and metrics (B minus A)."""
    from rich.table import Table

    from flywheel.services.trainer.registry import resolve_version

    engine = open_registry()
    result = diff_versions(resolve_version(engine, a, line), resolve_version(engine, b, line))
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
        return
    console.print(f"[bold]{result['a']} -> {result['b']}[/bold]")
    for key, (va, vb) in result["fields"].items():
        console.print(f"  {key}: {_plain(va)} -> {_plain(vb)}")
    for side in ("only_a", "only_b"):
        if result["batches"][side]:
            console.print(f"  batches {side.replace('_', ' ')}: {', '.join(result['batches'][side])}")
    for key, (va, vb) in result["hyperparameters"].items():
        console.print(f"  {key}: {va} -> {vb}")
    table = Table(title="metrics")
    for col in ("metric", "A", "B", "B - A"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for key, (va, vb, delta) in result["metrics"].items():
        if all_metrics or delta is None or abs(delta) > 1e-12:
            table.add_row(key, _num(va, 4), _num(vb, 4), "" if delta is None else f"{delta:+.4f}")
    console.print(table)


def _add_release_commands() -> None:
    """``promote`` and ``rollback`` live in ``flywheel.cli.releases`` (when installed)."""
    try:
        from flywheel.cli.releases import add_release_commands
    except ModuleNotFoundError as exc:
        if exc.name != "flywheel.cli.releases":
            raise
        return
    add_release_commands(app)


_add_release_commands()
