"""Read a batch's files into what the training loops and the evaluation take.

The curator writes TRL's conversational formats (see ``services/curator/logic/formats.py``):

* SFT rows ``{"messages", "tools", "loss_masks"}``: ``tools`` is a JSON string of OpenAI tool
  schemas (or null), ``loss_masks`` are character spans of a message's content with a weight;
* DPO rows ``{"prompt", "chosen", "rejected", "tools"}`` (message lists);
* eval rows ``{"example_id", "prompt", "reference", "tools", "kind", "intent", "metric"}``.

Files are named by the SHA-256 of their bytes; a file whose bytes no longer match its name
is refused, so a truncated or overwritten batch fails the job instead of training on it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import FlywheelError

_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
# A loss-mask weight below this switches the span's loss off; the training loop's masks are
# binary, and the designs only emit 0 (context) or 1.
MASK_OFF_BELOW = 0.5


class BatchDataError(FlywheelError):
    """A batch file is missing, unreadable, altered or holds rows of the wrong shape."""


@dataclass(frozen=True)
class EvalItem:
    """One held-out prompt with the exact reference answer (text of the final reply)."""

    item_id: str
    prompt: list[dict[str, Any]]
    reference: str
    tools: list[dict[str, Any]] | None = None
    intent: str = ""


@dataclass
class BatchData:
    """The rows of one batch, converted for ``train_sft`` / ``train_dpo``."""

    sft: list[dict[str, Any]] = field(default_factory=list)
    dpo: list[dict[str, Any]] = field(default_factory=list)
    eval_items: list[EvalItem] = field(default_factory=list)
    sft_keys: list[str] = field(default_factory=list)
    dpo_keys: list[str] = field(default_factory=list)


def read_jsonl(path: str | Path, *, verify: bool = True) -> list[dict[str, Any]]:
    """Rows of a JSONL file; with ``verify``, a SHA-256-named file must match its bytes.

    Raises:
        BatchDataError: the file is missing, unreadable, altered or not JSONL of objects.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BatchDataError(f"cannot read batch file {p}: {exc.strerror or exc}") from None
    if verify and _SHA256_NAME.match(p.stem) and hashlib.sha256(data).hexdigest() != p.stem:
        raise BatchDataError(f"batch file {p} does not match its content hash (altered or "
                             "truncated)")
    rows = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BatchDataError(f"{p}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise BatchDataError(f"{p}:{number}: expected a JSON object")
        rows.append(row)
    return rows


def _tools(value: Any, where: str) -> list[dict[str, Any]] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise BatchDataError(f"{where}: tools is not a JSON list") from None
    if not isinstance(value, list):
        raise BatchDataError(f"{where}: tools must be a list")
    return value


def _messages(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(m, Mapping) and "role" in m
                                              for m in value):
        raise BatchDataError(f"{where}: expected a list of chat messages")
    return [dict(m) for m in value]


def masked_spans(messages: Sequence[Mapping[str, Any]],
                 loss_masks: Sequence[Mapping[str, Any]] | None) -> list[dict[str, int]]:
    """The spans whose loss is switched off: masks with a weight below 0.5 on assistant turns.

    Masks on other roles are dropped (those tokens carry no loss anyway).
    """
    spans = []
    for mask in loss_masks or ():
        index = int(mask.get("message_index", -1))
        if float(mask.get("weight", 0.0)) >= MASK_OFF_BELOW:
            continue
        if not 0 <= index < len(messages) or messages[index].get("role") != "assistant":
            continue
        spans.append({"message_index": index, "char_start": int(mask.get("char_start", 0)),
                      "char_end": int(mask.get("char_end", 0))})
    return spans


def sft_example(row: Mapping[str, Any], where: str = "sft row") -> dict[str, Any]:
    """A curator SFT row as ``train_sft`` takes it (``messages``, ``tools``, ``masked_spans``)."""
    messages = _messages(row.get("messages"), where)
    masks = row.get("loss_masks") if "loss_masks" in row else row.get("masks")
    return {"messages": messages, "tools": _tools(row.get("tools"), where),
            "masked_spans": masked_spans(messages, masks)}


def dpo_pair(row: Mapping[str, Any], where: str = "dpo row") -> dict[str, Any]:
    """A curator DPO row as ``train_dpo`` takes it."""
    return {"prompt": _messages(row.get("prompt"), where),
            "chosen": _messages(row.get("chosen"), f"{where} chosen"),
            "rejected": _messages(row.get("rejected"), f"{where} rejected"),
            "tools": _tools(row.get("tools"), where)}


def _final_reply(messages: Sequence[Mapping[str, Any]]) -> str | None:
    last = messages[-1] if messages else None
    if last is None or last.get("role") != "assistant" or last.get("tool_calls"):
        return None
    return str(last.get("content") or "") or None


def eval_item(row: Mapping[str, Any], where: str = "eval row") -> EvalItem | None:
    """An eval row with an exact reference as an EvalItem; None for rows without one.

    System-failure rows and rows whose reference does not end in a plain assistant reply
    cannot be scored by exact match and are skipped.
    """
    if row.get("kind", "model") != "model":
        return None
    reference = _final_reply(row.get("reference") or [])
    prompt = row.get("prompt") or []
    if reference is None or not prompt:
        return None
    messages = _messages(prompt, where) + _messages(row["reference"], where)[:-1]
    return EvalItem(str(row.get("example_id") or row_key(row)), messages, reference,
                    _tools(row.get("tools"), where), str(row.get("intent") or ""))


def slice_item(row: Mapping[str, Any], where: str = "sft row") -> EvalItem | None:
    """An SFT row as an EvalItem: everything before the final reply, and that reply."""
    messages = _messages(row.get("messages"), where)
    reference = _final_reply(messages)
    if reference is None or len(messages) < 2:
        return None
    return EvalItem(row_key(row), messages[:-1], reference, _tools(row.get("tools"), where))


def row_key(row: Mapping[str, Any]) -> str:
    """The content hash of a file row (SHA-256 of its canonical JSON), as the curator's
    manifest lists it."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_batch(sft_path: str | None, dpo_path: str | None,
               eval_path: str | None = None) -> BatchData:
    """Read and convert a batch's SFT, DPO and eval files (empty paths are skipped).

    Raises:
        BatchDataError: a file cannot be read or a row has the wrong shape.
    """
    data = BatchData()
    if sft_path:
        for number, row in enumerate(read_jsonl(sft_path), 1):
            data.sft.append(sft_example(row, f"{sft_path}:{number}"))
            data.sft_keys.append(row_key(row))
    if dpo_path:
        for number, row in enumerate(read_jsonl(dpo_path), 1):
            data.dpo.append(dpo_pair(row, f"{dpo_path}:{number}"))
            data.dpo_keys.append(row_key(row))
    if eval_path:
        for number, row in enumerate(read_jsonl(eval_path), 1):
            item = eval_item(row, f"{eval_path}:{number}")
            if item is not None:
                data.eval_items.append(item)
    if not data.sft and not data.dpo:
        raise BatchDataError("the batch has neither SFT rows nor preference pairs")
    return data


UNKNOWN_INTENT = "unknown"  # what triage tags when no policy intent matches


def manifest_intents(manifest_path: str | Path) -> dict[str, str]:
    """``content_hash -> intent`` of the SFT examples a batch manifest lists, ``""`` for rows
    of no known intent (empty when the file is missing or unreadable: balancing then treats
    those rows as of unknown intent)."""
    try:
        manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for e in manifest.get("examples") or []:
        if isinstance(e, dict) and e.get("kind") == "sft" and e.get("content_hash"):
            intent = str(e.get("intent") or "")
            out[str(e["content_hash"])] = "" if intent == UNKNOWN_INTENT else intent
    return out


def balance_intents(data: BatchData, manifest_paths: Sequence[str | Path], factor: float,
                    seed: int = 0) -> dict[str, int]:
    """Repeat the SFT rows of rare intents in ``data`` (in place) up to ``factor``.

    Each row's intent comes from the manifests (by content hash); rows none of them lists, or
    of no known intent, are kept once. Returns the row count per intent before balancing
    (``""``: unknown); ``data.sft_keys`` stays aligned with ``data.sft``.
    """
    from flywheel.ml.train import balance_groups

    intents: dict[str, str] = {}
    for path in manifest_paths:
        intents.update(manifest_intents(path))
    keys = data.sft_keys if len(data.sft_keys) == len(data.sft) else [""] * len(data.sft)
    groups = [intents.get(k, "") for k in keys]
    pairs = balance_groups(list(zip(data.sft, keys)), groups, factor, seed=seed)
    data.sft = [row for row, _ in pairs]
    data.sft_keys = [key for _, key in pairs]
    return {g: groups.count(g) for g in sorted(set(groups))}


def sample_slice(sft_path: str, size: int, seed: str) -> list[EvalItem]:
    """Up to ``size`` scoreable SFT rows of an earlier batch, sampled deterministically."""
    items = [i for i in (slice_item(r) for r in read_jsonl(sft_path, verify=False)) if i]
    random.Random(seed).shuffle(items)
    return items[:size]


def sample_rows(rows: Sequence[dict[str, Any]], n: int, seed: str) -> list[dict[str, Any]]:
    """``n`` rows sampled without replacement, deterministically for ``seed``."""
    if n <= 0 or not rows:
        return []
    return random.Random(seed).sample(list(rows), min(n, len(rows)))
