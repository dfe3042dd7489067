"""Reading curator batch files: formats, masks, hash checks, eval and slice items."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flywheel.services.trainer.data import (
    BatchDataError,
    eval_item,
    balance_intents,
    load_batch,
    manifest_intents,
    masked_spans,
    read_jsonl,
    row_key,
    sample_slice,
    sft_example,
    slice_item,
)

SYSTEM = {"role": "system", "content": "You are the support assistant."}
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {}}}]


def _write(directory: Path, rows: list[dict]) -> Path:
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    path = directory / f"{hashlib.sha256(data).hexdigest()}.jsonl"
    path.write_bytes(data)
    return path


def _sft_row(answer: str = "Order 123 is cancelled.") -> dict:
    return {"messages": [SYSTEM, {"role": "user", "content": "cancel 123"},
                         {"role": "assistant", "content": answer}],
            "tools": json.dumps(TOOLS), "loss_masks": []}


def test_sft_row_becomes_a_training_example_with_parsed_tools() -> None:
    example = sft_example(_sft_row())
    assert example["tools"] == TOOLS
    assert example["messages"][-1]["role"] == "assistant"
    assert example["masked_spans"] == []


def test_masks_with_weight_zero_on_assistant_turns_become_masked_spans() -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "draft"},
                {"role": "user", "content": "fix it"}, {"role": "assistant", "content": "final"}]
    masks = [{"message_index": 1, "char_start": 0, "char_end": 5, "weight": 0.0},
             {"message_index": 3, "char_start": 0, "char_end": 5, "weight": 1.0},
             {"message_index": 0, "char_start": 0, "char_end": 1, "weight": 0.0}]
    assert masked_spans(messages, masks) == [{"message_index": 1, "char_start": 0, "char_end": 5}]
    row = {"messages": messages, "masks": masks}
    assert sft_example(row)["masked_spans"] == [{"message_index": 1, "char_start": 0,
                                                 "char_end": 5}]


def test_load_batch_reads_all_three_files(tmp_path: Path) -> None:
    sft = _write(tmp_path, [_sft_row(), _sft_row("Order 123 is on its way.")])
    dpo = _write(tmp_path, [{"prompt": [{"role": "user", "content": "q"}],
                             "chosen": [{"role": "assistant", "content": "good"}],
                             "rejected": [{"role": "assistant", "content": "bad"}],
                             "tools": None}])
    ev = _write(tmp_path, [
        {"example_id": "e1", "prompt": [{"role": "user", "content": "q"}],
         "reference": [{"role": "assistant", "content": "a"}], "tools": None, "kind": "model",
         "intent": "refund", "metric": "exact_match"},
        {"example_id": "e2", "prompt": [{"role": "user", "content": "q"}], "reference": [],
         "tools": None, "kind": "model", "intent": "", "metric": ""},
        {"example_id": "e3", "prompt": [{"role": "user", "content": "q"}],
         "reference": [{"role": "assistant", "content": "a"}], "tools": None, "kind": "system",
         "intent": "", "metric": ""}])
    data = load_batch(str(sft), str(dpo), str(ev))
    assert len(data.sft) == 2 and len(data.sft_keys) == 2
    assert data.dpo[0]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert [i.item_id for i in data.eval_items] == ["e1"]
    assert data.eval_items[0].reference == "a" and data.eval_items[0].intent == "refund"


def test_an_altered_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, [_sft_row()])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BatchDataError, match="content hash"):
        read_jsonl(path)


def test_missing_and_malformed_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BatchDataError, match="cannot read"):
        load_batch(str(tmp_path / "nope.jsonl"), None)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "not a list"}\n')
    with pytest.raises(BatchDataError, match="chat messages"):
        load_batch(str(bad), None)
    bad.write_text("not json\n")
    with pytest.raises(BatchDataError, match="not JSON"):
        load_batch(str(bad), None)
    with pytest.raises(BatchDataError, match="neither"):
        load_batch(None, None)


def test_eval_and_slice_items_end_with_the_reference_reply() -> None:
    item = slice_item(_sft_row())
    assert item is not None and item.reference == "Order 123 is cancelled."
    assert item.prompt[-1] == {"role": "user", "content": "cancel 123"}
    assert item.tools == TOOLS
    tool_call = {"messages": [{"role": "user", "content": "q"},
                              {"role": "assistant", "content": "", "tool_calls": [{}]}]}
    assert slice_item(tool_call) is None
    multi = {"example_id": "x", "prompt": [{"role": "user", "content": "q"}],
             "reference": [{"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]},
                           {"role": "tool", "content": "{}"},
                           {"role": "assistant", "content": "done"}], "kind": "model"}
    item = eval_item(multi)
    assert item is not None and item.reference == "done" and len(item.prompt) == 3


def test_sample_slice_is_deterministic(tmp_path: Path) -> None:
    path = _write(tmp_path, [_sft_row(f"Order {n} is cancelled.") for n in range(100, 150)])
    first = sample_slice(str(path), 10, "batch-a")
    assert len(first) == 10
    assert first == sample_slice(str(path), 10, "batch-a")
    assert first != sample_slice(str(path), 10, "batch-b")


def test_manifest_intents_map_the_rows_content_hashes(tmp_path: Path) -> None:
    """The curator's manifest names each row by the hash of its canonical JSON: the trainer's
    row key must be the same hash, or balancing would see every row as of unknown intent."""
    from flywheel.services.curator.logic.formats import canonical_json, sha256_hex

    a, b = _sft_row("Order 1 is cancelled."), _sft_row("Order 2 is cancelled.")
    assert row_key(a) == sha256_hex(canonical_json(a))
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"examples": [
        {"kind": "sft", "content_hash": row_key(a), "intent": "cancel_order"},
        {"kind": "sft", "content_hash": row_key(b), "intent": "unknown"},
        {"kind": "sft", "content_hash": "c"},
        {"kind": "dpo", "content_hash": "x", "intent": "refund"}]}))
    assert manifest_intents(manifest) == {row_key(a): "cancel_order", row_key(b): "", "c": ""}
    assert manifest_intents(tmp_path / "missing.json") == {}


def test_balance_intents_repeats_rows_by_their_manifest_intent(tmp_path: Path) -> None:
    cancels = [_sft_row(f"Order {n} is cancelled.") for n in range(12)]
    shipping = [_sft_row("Shipping is free.")]
    other = _sft_row("Something else.")
    data = load_batch(str(_write(tmp_path, cancels + shipping + [other])), None)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"examples": [
        *({"kind": "sft", "content_hash": row_key(r), "intent": "cancel_order"} for r in cancels),
        {"kind": "sft", "content_hash": row_key(shipping[0]), "intent": "shipping_cost"}]}))
    counts = balance_intents(data, [manifest, tmp_path / "missing.json"], 4, seed=3)
    assert counts == {"": 1, "cancel_order": 12, "shipping_cost": 1}
    assert len(data.sft) == len(data.sft_keys) == 12 + 4 + 1  # shipping repeated 4x, other once
    assert data.sft_keys.count(row_key(shipping[0])) == 4
    assert data.sft_keys.count(row_key(other)) == 1
    for row, key in zip(data.sft, data.sft_keys):  # rows and keys stay aligned
        assert (row["messages"][-1]["content"] == "Shipping is free.") == (key == row_key(shipping[0]))
