"""``flywheel datasets``: list, inspect, export and forget curated training batches.

Run::

    flywheel datasets list [--line LINE] [--json]
    flywheel datasets show BATCH [--json] [--examples]
    flywheel datasets export BATCH --out DIR [--format jsonl|hf]
    flywheel datasets forget --user USER_ID [--json]

BATCH is a batch id (or a unique prefix of at least 6 characters), ``LINE:VERSION`` or
``latest`` (the newest live batch; with several model lines, ``latest`` needs ``--line``).
``export --format jsonl`` copies the batch's SFT, DPO and eval JSONL files and its manifest
to DIR; ``--format hf`` writes a Hugging Face ``DatasetDict`` (splits ``sft``, ``dpo``,
``eval``) with ``save_to_disk``. ``forget`` removes every example that holds the user's data
and writes new versions of the batches that held it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer

from flywheel.cli.common import cli_settings, emit
from flywheel.errors import FlywheelError

app = typer.Typer(help="Curated training batches: list, show, export, forget.",
                  no_args_is_help=True)


class BatchNotFound(FlywheelError):
    """No batch, or more than one, matches the reference."""


def _store() -> Any:
    from flywheel.db.engine import make_engine
    from flywheel.services.curator.logic.writer import BatchStore

    settings = cli_settings()
    return BatchStore(make_engine(settings.database()), settings.data_dir / "artifacts"), settings


def resolve_batch(store: Any, ref: str, line: str | None = None) -> Any:
    """The batch a reference names.

    Raises:
        BatchNotFound: nothing or several batches match.
    """
    rows = store.batches(line)
    if ref == "latest":
        live = [r for r in rows if r.status != "superseded"]
        lines = {r.model_line for r in live}
        if len(lines) > 1:
            raise BatchNotFound(f"several model lines ({', '.join(sorted(lines))}): use --line")
        if not live:
            raise BatchNotFound("no batches yet")
        return max(live, key=lambda r: r.version)
    if ":" in ref:
        name, _, version = ref.rpartition(":")
        matches = [r for r in rows if r.model_line == name and str(r.version) == version]
    else:
        matches = [r for r in rows if r.batch_id == ref] or (
            [r for r in rows if r.batch_id.startswith(ref)] if len(ref) >= 6 else [])
    if len(matches) != 1:
        raise BatchNotFound(f"{'no' if not matches else 'several'} batches match {ref!r}")
    return matches[0]


def _summary(row: Any) -> dict[str, Any]:
    counts = row.counts or {}
    return {"batch_id": row.batch_id, "model_line": row.model_line, "version": row.version,
            "status": str(getattr(row.status, "value", row.status)),
            "sft": counts.get("sft", 0), "dpo": counts.get("dpo", 0),
            "replay": counts.get("replay", 0), "eval": counts.get("eval", 0),
            "created_at": row.created_at.isoformat() if row.created_at else "",
            "announced_at": row.announced_at.isoformat() if row.announced_at else ""}


@app.command("list")
def list_batches(
    line: str = typer.Option(None, "--line", help="Only this model line."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List batches, oldest first."""
    store, _ = _store()
    rows = [_summary(r) for r in store.batches(line)]
    if as_json:
        emit(rows, [], True)
        return
    for row in rows:
        row["batch_id"] = row["batch_id"][:12]
        row["created_at"] = row["created_at"][:16].replace("T", " ")
    emit(rows, ["batch_id", "model_line", "version", "status", "sft", "dpo", "replay", "eval",
                "created_at"], False, title="Dataset batches")


@app.command()
def show(
    batch: str = typer.Argument(..., help="Batch id, prefix, LINE:VERSION or 'latest'."),
    line: str = typer.Option(None, "--line", help="Model line (for 'latest')."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
    examples: bool = typer.Option(False, "--examples", help="Include per-example lineage."),
) -> None:
    """Show a batch: files, counts, sources, transforms, drops and lineage."""
    store, _ = _store()
    row = resolve_batch(store, batch, line)
    manifest = dict(row.manifest or {})
    if not examples:
        manifest["examples"] = len(manifest.get("examples", []))
    info = {**_summary(row), "manifest_path": str(store.manifest_path(row.model_line,
                                                                       row.batch_id)),
            "sft_path": row.sft_path, "dpo_path": row.dpo_path, "manifest": manifest}
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    typer.echo(f"batch {row.batch_id}\n  line {row.model_line} v{row.version} "
               f"({info['status']})")
    for key in ("sft_path", "dpo_path", "manifest_path"):
        typer.echo(f"  {key}: {info[key] or '-'}")
    for key in ("counts", "sources", "intents", "transforms", "designs_enabled", "dropped",
                "deferred", "replay_share", "cut_reason", "content_hash"):
        typer.echo(f"  {key}: {json.dumps(manifest.get(key), default=str)}")
    if examples:
        for entry in manifest.get("examples", []):
            typer.echo(f"    {json.dumps(entry, default=str)}")


def export_batch(store: Any, row: Any, out: Path, fmt: str) -> dict[str, str]:
    """Write the batch to ``out`` as JSONL files or a Hugging Face dataset directory."""
    files = {k: store.root / v["path"] for k, v in ((row.manifest or {}).get("files") or {})
             .items() if v}
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        written = {}
        for kind, src in files.items():
            shutil.copyfile(src, out / f"{kind}.jsonl")
            written[kind] = str(out / f"{kind}.jsonl")
        (out / "manifest.json").write_text(json.dumps(row.manifest, indent=2, sort_keys=True))
        written["manifest"] = str(out / "manifest.json")
        return written
    from datasets import Dataset, DatasetDict

    splits = {kind: Dataset.from_json(str(src)) for kind, src in files.items()}
    DatasetDict(splits).save_to_disk(str(out))
    return {kind: f"{out}::{kind}" for kind in splits}


@app.command()
def export(
    batch: str = typer.Argument(..., help="Batch id, prefix, LINE:VERSION or 'latest'."),
    out: Path = typer.Option(..., "--out", help="Directory to write to."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or hf (Hugging Face datasets)."),
    line: str = typer.Option(None, "--line", help="Model line (for 'latest')."),
) -> None:
    """Export a batch as JSONL files or a Hugging Face datasets directory."""
    if fmt not in ("jsonl", "hf"):
        raise typer.BadParameter("--format must be jsonl or hf")
    store, _ = _store()
    row = resolve_batch(store, batch, line)
    for kind, path in export_batch(store, row, out, fmt).items():
        typer.echo(f"{kind}: {path}")


@app.command()
def forget(
    user: str = typer.Option(..., "--user", help="Pseudonymous user id to forget."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Remove a user's examples and write new versions of every batch that held them."""
    from flywheel.services.curator.logic.forget import forget_user

    store, settings = _store()
    report = forget_user(store, user, settings.data_dir)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    removed = ", ".join(f"{n} {k}" for k, n in sorted(report.examples.items())) or "no examples"
    typer.echo(f"forgot user {user}: removed {removed}")
    for old, new in report.superseded:
        typer.echo(f"  batch {old[:12]} superseded by {new[:12] if new else '(nothing left)'}")
    typer.echo(f"  deleted {len(report.files_deleted)} files")
