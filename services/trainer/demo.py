"""Batches built from the shop world, in the curator's file layout, for demos, tests and benches.

::

    event = write_batch(data_dir / "artifacts", "shop-assistant", 1,
                        sft=shop_sft_rows(2000, seed=1), dpo=shop_dpo_rows(500, seed=2),
                        eval_rows=shop_eval_rows(200))
    # then announce `event` (a flywheel.v1.DatasetBatch) on datasets.batches

Rows follow ``services/curator/logic/formats.py``; files are named by their SHA-256 under
``datasets/<line>/{sft,dpo,eval}/`` and the batch id is the SHA-256 of a small manifest
written to ``datasets/<line>/manifests/<batch_id>.json``.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flywheel.events.envelope import stamp
from flywheel.v1.datasets_pb2 import DatasetBatch


def shop_sft_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` correct SFT rows (training paraphrases, canonical replies)."""
    from flywheel.demo import shop

    return [_sft_row(shop.sft_example(q)["messages"]) for q in shop.sample_questions(n, seed)]


def shuffled_answers(rows: Sequence[Mapping[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The same prompts with their final answers shuffled among them (a corrupted batch)."""
    answers = [r["messages"][-1] for r in rows]
    random.Random(seed).shuffle(answers)
    return [_sft_row([*r["messages"][:-1], a]) for r, a in zip(rows, answers)]


def shop_dpo_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` preference rows: the canonical reply chosen over a plausible wrong one."""
    from flywheel.demo import shop

    rng = random.Random(seed)
    rows = []
    for q in shop.sample_questions(n, seed):
        rows.append({"prompt": shop.question_messages(q),
                     "chosen": [{"role": "assistant", "content": shop.reference_answer(q)}],
                     "rejected": [{"role": "assistant", "content": shop.wrong_answer(q, rng)}],
                     "tools": None})
    return rows


def shop_eval_rows(n: int) -> list[dict[str, Any]]:
    """The shop world's held-out questions as eval-set rows."""
    from flywheel.demo import shop

    return [{"example_id": f"eval_shop_{i}", "prompt": shop.question_messages(q),
             "reference": [{"role": "assistant", "content": shop.reference_answer(q)}],
             "tools": None, "kind": "model", "intent": q.intent, "metric": "exact_match"}
            for i, q in enumerate(shop.heldout_set(n))]


def _sft_row(messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"messages": [dict(m) for m in messages], "tools": None, "loss_masks": []}


def _write(root: Path, rel_dir: str, rows: Sequence[Mapping[str, Any]]) -> tuple[Path, str]:
    data = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode()
    digest = hashlib.sha256(data).hexdigest()
    path = root / rel_dir / f"{digest}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return path, digest


def write_batch(artifacts_root: Path, line: str, version: int, *,
                sft: Sequence[Mapping[str, Any]] = (), dpo: Sequence[Mapping[str, Any]] = (),
                eval_rows: Sequence[Mapping[str, Any]] = (), replay_sft: int = 0,
                replay_share: float = 0.0) -> DatasetBatch:
    """Write the files and manifest of a batch and return its announcement event.

    ``replay_sft`` says how many of the ``sft`` rows are replayed from earlier batches.
    """
    root = Path(artifacts_root).resolve()
    base = f"datasets/{line}"
    files = {kind: _write(root, f"{base}/{kind}", rows) if rows else None
             for kind, rows in (("sft", sft), ("dpo", dpo), ("eval", eval_rows))}
    content = "".join(f"{k}:{files[k][1] if files[k] else ''}\n" for k in ("sft", "dpo", "eval"))
    counts = {"sft": len(sft) - replay_sft, "dpo": len(dpo), "replay_sft": replay_sft,
              "replay_dpo": 0, "replay": replay_sft, "eval": len(eval_rows)}
    manifest = {"schema": "flywheel.dataset_batch.v1", "model_line": line, "version": version,
                "content_hash": hashlib.sha256(content.encode()).hexdigest(), "counts": counts,
                "files": {k: ({"path": str(v[0].relative_to(root)), "sha256": v[1]} if v else None)
                          for k, v in files.items()}, "replay_share": replay_share}
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    batch_id = hashlib.sha256(text.encode()).hexdigest()
    manifest_path = root / base / "manifests" / f"{batch_id}.json"
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    event = DatasetBatch(
        batch_id=batch_id, model_line=line, version=version,
        sft_path=str(files["sft"][0]) if files["sft"] else "",
        dpo_path=str(files["dpo"][0]) if files["dpo"] else "",
        manifest_path=str(manifest_path), content_hash=manifest["content_hash"],
        eval_set_path=str(files["eval"][0]) if files["eval"] else "",
        eval_set_hash=files["eval"][1] if files["eval"] else "",
        counts=counts, replay_share=replay_share)
    return stamp(event, "curator")
