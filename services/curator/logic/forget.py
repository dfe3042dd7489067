"""Forget a user: remove their examples and rewrite every batch that held them.

1. Find every example (SFT, DPO, eval) whose lineage names the user.
2. Find every live batch that holds one of them, or whose eval-set file holds one.
3. Write a new version of each such batch without them (new files, new manifest naming the
   batch it supersedes), mark the old one ``superseded`` and scrub the user's examples from
   its manifest in SQL.
4. Delete the examples and their batch links, and every old file no live batch still uses.
5. Add the user to the forgotten-users list, which the curator reads to purge its pool and
   tables of the user's pending data.

Replacement versions are recorded as ``written`` with ``supersedes`` in the manifest; the
curator does not announce them (training on them is a decision for whoever retrains).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, delete, select

from flywheel.db.engine import session_scope
from flywheel.db.models import BatchExample, BatchStatus, DatasetBatch, Example, ExampleKind
from flywheel.services.curator.logic.writer import BatchContent, BatchStore

FORGOTTEN_FILE = "forgotten_users.json"


@dataclass
class ForgetReport:
    """What forgetting a user changed."""

    user_id: str
    examples: dict[str, int] = field(default_factory=dict)
    superseded: list[tuple[str, str]] = field(default_factory=list)  # (old batch, new batch)
    files_deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "examples": self.examples,
                "superseded": [{"old": o, "new": n} for o, n in self.superseded],
                "files_deleted": self.files_deleted}


def forgotten_users_path(data_dir: Path) -> Path:
    return Path(data_dir) / "curator" / FORGOTTEN_FILE


def load_forgotten_users(data_dir: Path) -> set[str]:
    """The users forgotten so far (empty when none)."""
    path = forgotten_users_path(data_dir)
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return set()


def _remember(data_dir: Path, user_id: str) -> None:
    path = forgotten_users_path(data_dir)
    users = load_forgotten_users(data_dir) | {user_id}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(users)))
    tmp.replace(path)


def user_examples(store: BatchStore, user_id: str) -> list[Example]:
    """Every example whose lineage names ``user_id``."""
    needle = json.dumps(user_id)
    with session_scope(store.engine) as s:
        rows = s.execute(select(Example).where(
            cast(Example.user_ids, String).contains(needle.strip('"')))).scalars()
        return [r for r in rows if user_id in (r.user_ids or [])]


def _eval_file_ids(store: BatchStore, batch: DatasetBatch) -> set[str]:
    entry = ((batch.manifest or {}).get("files") or {}).get("eval")
    if not entry:
        return set()
    path = store.root / entry["path"]
    if not path.exists():
        return set()
    return {json.loads(line).get("example_id", "") for line in path.read_text().splitlines()
            if line.strip()}


def affected_batches(store: BatchStore, example_ids: set[str], eval_ids: set[str]
                     ) -> list[DatasetBatch]:
    """Live batches holding any of the examples, directly or in their eval-set file."""
    with session_scope(store.engine) as s:
        live = list(s.execute(select(DatasetBatch).where(
            DatasetBatch.status != BatchStatus.SUPERSEDED)
            .order_by(DatasetBatch.model_line, DatasetBatch.version)).scalars())
        linked = {r[0] for r in s.execute(select(BatchExample.batch_id).where(
            BatchExample.example_id.in_(sorted(example_ids))))} if example_ids else set()
    return [b for b in live if b.batch_id in linked or (eval_ids & _eval_file_ids(store, b))]


def _rewrite(store: BatchStore, batch: DatasetBatch, forgotten: set[str]) -> str:
    new, replayed = store.batch_records(batch.batch_id)
    new = [r for r in new if r.example_id not in forgotten]
    replayed = [r for r in replayed if r.example_id not in forgotten]
    manifest = batch.manifest or {}
    content = BatchContent(
        model_line=batch.model_line,
        sft=[r for r in new if r.kind == "sft"], dpo=[r for r in new if r.kind == "dpo"],
        replay_sft=[r for r in replayed if r.kind == "sft"],
        replay_dpo=[r for r in replayed if r.kind == "dpo"],
        eval_rows=store.eval_rows(exclude=forgotten),
        designs=manifest.get("designs_enabled", []), cut_reason="forget",
        policy=manifest.get("policy", {}), supersedes=batch.batch_id)
    if not content.new_records():
        return ""
    return store.write(content).batch_id


def _supersede(store: BatchStore, batch_id: str, new_id: str, forgotten: set[str]) -> None:
    with session_scope(store.engine) as s:
        row = s.get(DatasetBatch, batch_id)
        manifest = dict(row.manifest or {})
        manifest["examples"] = [e for e in manifest.get("examples", [])
                                if e.get("example_id") not in forgotten]
        manifest["superseded_by"] = new_id
        manifest["superseded_reason"] = "forget"
        row.manifest = manifest
        row.status = BatchStatus.SUPERSEDED
        s.add(row)


def _referenced_paths(store: BatchStore) -> set[str]:
    refs: set[str] = set()
    for row in store.batches():
        if row.status == BatchStatus.SUPERSEDED:
            continue
        for entry in ((row.manifest or {}).get("files") or {}).values():
            if entry:
                refs.add(entry["path"])
        refs.add(str(store.manifest_path(row.model_line, row.batch_id)
                     .relative_to(store.root)))
    return refs


def _delete_unreferenced(store: BatchStore, old: list[DatasetBatch]) -> list[str]:
    keep = _referenced_paths(store)
    deleted = []
    for batch in old:
        paths = [e["path"] for e in ((batch.manifest or {}).get("files") or {}).values() if e]
        paths.append(str(store.manifest_path(batch.model_line, batch.batch_id)
                         .relative_to(store.root)))
        for rel in paths:
            path = store.root / rel
            if rel not in keep and path.exists():
                path.unlink()
                deleted.append(rel)
    return deleted


def forget_user(store: BatchStore, user_id: str, data_dir: Path) -> ForgetReport:
    """Remove ``user_id``'s examples everywhere and rewrite the batches that held them."""
    report = ForgetReport(user_id)
    examples = user_examples(store, user_id)
    forgotten = {e.example_id for e in examples}
    for e in examples:
        kind = e.kind.value if hasattr(e.kind, "value") else str(e.kind)
        report.examples[kind] = report.examples.get(kind, 0) + 1
    eval_ids = {e.example_id for e in examples if e.kind == ExampleKind.EVAL}
    old = affected_batches(store, forgotten - eval_ids, eval_ids)
    for batch in old:
        new_id = _rewrite(store, batch, forgotten)
        _supersede(store, batch.batch_id, new_id, forgotten)
        report.superseded.append((batch.batch_id, new_id))
    with session_scope(store.engine) as s:
        if forgotten:
            s.execute(delete(BatchExample).where(BatchExample.example_id.in_(sorted(forgotten))))
            s.execute(delete(Example).where(Example.example_id.in_(sorted(forgotten))))
    report.files_deleted = _delete_unreferenced(store, old)
    _remember(data_dir, user_id)
    return report
