"""Chat rendering: template output, assistant-only labels, partial answer masks, padding."""

from __future__ import annotations

import json

import pytest

from flywheel.demo import shop

pytestmark = pytest.mark.ml

torch = pytest.importorskip("torch")

from flywheel.ml import ChatFormatError  # noqa: E402
from flywheel.ml.chat import (  # noqa: E402
    IGNORE_INDEX, collate, pad_ids, parse_tool_calls, prompt_ids, render_chat, render_pair,
)


def _labelled_text(tok, rendered) -> str:
    return tok.decode([t for t, l in zip(rendered.input_ids, rendered.labels) if l != IGNORE_INDEX])


def test_template_renders_roles_tools_and_tool_calls(tiny_tokenizer):
    task = shop.agent_task(shop.Question(shop.ORDER_STATUS, "Where is my order 4821?", "4821"))
    text = tiny_tokenizer.apply_chat_template(shop.agent_messages(task), tools=shop.TOOLS, tokenize=False)
    assert text.startswith("<|bos|><|system|>\n" + shop.SYSTEM_PROMPT + "\n\nTools:\n")
    assert json.dumps(shop.TOOLS[0]["function"]) in text
    assert "<|user|>\nWhere is my order 4821?<|end|>\n" in text
    assert ('<|assistant|>\n<tool_call>{"name": "lookup_order", "arguments": '
            '{"order_number": "4821"}}</tool_call><|end|>\n') in text
    assert '<|tool|>\n{"order_number": "4821"' in text
    assert text.endswith("<|assistant|>\n" + task.final_answer + "<|end|>\n")


def test_generation_prompt(tiny_tokenizer):
    messages = [{"role": "user", "content": "Hi!"}]
    text = tiny_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<|bos|><|user|>\nHi!<|end|>\n<|assistant|>\n"
    assert tiny_tokenizer.decode(prompt_ids(tiny_tokenizer, messages)) == text


def test_only_assistant_turns_carry_labels(tiny_tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 123?"},
        {"role": "assistant", "content": "Order 123 has shipped."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You are welcome."},
    ]
    r = render_chat(tiny_tokenizer, messages)
    assert len(r.labels) == len(r.input_ids)
    assert _labelled_text(tiny_tokenizer, r) == "Order 123 has shipped.<|end|>You are welcome.<|end|>"
    labelled = [i for i, l in enumerate(r.labels) if l != IGNORE_INDEX]
    assert all(r.labels[i] == r.input_ids[i] for i in labelled)
    assistant = tiny_tokenizer.convert_tokens_to_ids("<|assistant|>")
    for i, token in enumerate(r.input_ids):
        if token == assistant:
            assert r.labels[i] == IGNORE_INDEX and r.labels[i + 1] == IGNORE_INDEX  # role and "\n"


def test_tool_calls_are_learned_and_tool_results_are_not(tiny_tokenizer):
    task = shop.agent_task(shop.Question(shop.CANCEL_ORDER, "Please cancel order 812.", "812"))
    r = render_chat(tiny_tokenizer, shop.agent_messages(task), tools=shop.TOOLS)
    learned = _labelled_text(tiny_tokenizer, r)
    assert learned == ('<tool_call>{"name": "cancel_order", "arguments": {"order_number": "812"}}'
                       "</tool_call><|end|>" + task.final_answer + "<|end|>")


def test_masked_spans_remove_exactly_their_tokens(tiny_tokenizer):
    draft = "Order 4812 has shipped."
    content = f"{draft} Sorry, I mean: Order 4821 has shipped."
    messages = [{"role": "user", "content": "Where is order 4821?"},
                {"role": "assistant", "content": content}]
    full = render_chat(tiny_tokenizer, messages)
    masked = render_chat(tiny_tokenizer, messages,
                         masked_spans=[{"message_index": 1, "char_start": 0, "char_end": len(draft)}])
    assert full.input_ids == masked.input_ids
    assert _labelled_text(tiny_tokenizer, masked) == " Sorry, I mean: Order 4821 has shipped.<|end|>"
    dropped = [i for i, (a, b) in enumerate(zip(full.labels, masked.labels)) if a != b]
    assert tiny_tokenizer.decode([full.input_ids[i] for i in dropped]) == draft
    assert all(masked.labels[i] == IGNORE_INDEX for i in dropped)


def test_bad_mask_spans_raise(tiny_tokenizer):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    with pytest.raises(ChatFormatError):
        render_chat(tiny_tokenizer, messages, masked_spans=[{"message_index": 0, "char_start": 0, "char_end": 1}])
    with pytest.raises(ChatFormatError):
        render_chat(tiny_tokenizer, messages, masked_spans=[{"message_index": 1, "char_start": 2, "char_end": 9}])


def test_truncation_and_pairs(tiny_tokenizer):
    prompt = shop.question_messages(shop.Question(shop.WARRANTY, "How long is the warranty?"))
    chosen, rejected = render_pair(tiny_tokenizer, prompt, "Two years.", {"role": "assistant", "content": "No idea."})
    assert _labelled_text(tiny_tokenizer, chosen) == "Two years.<|end|>"
    assert _labelled_text(tiny_tokenizer, rejected) == "No idea.<|end|>"
    short = render_chat(tiny_tokenizer, prompt + [{"role": "assistant", "content": "Two years."}], max_length=8)
    assert short.truncated and len(short.input_ids) == 8 and short.n_labels == 0


def test_padding_left_and_right(tiny_tokenizer):
    ids, mask = pad_ids([[5, 6, 7], [8]], pad_value=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad_ids([[5, 6, 7], [8]], pad_value=0, side="right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    a = render_chat(tiny_tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}])
    b = render_chat(tiny_tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    batch = collate([a, b], tiny_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["labels"][1, len(b):].eq(IGNORE_INDEX).all()
    assert batch["input_ids"][1, len(b):].eq(tiny_tokenizer.pad_token_id).all()


def test_parse_tool_calls_round_trip():
    text = 'Checking.<tool_call>{"name": "lookup_order", "arguments": {"order_number": "77"}}</tool_call>'
    content, calls = parse_tool_calls(text)
    assert content == "Checking."
    assert calls[0]["function"]["name"] == "lookup_order"
    assert json.loads(calls[0]["function"]["arguments"]) == {"order_number": "77"}
    assert parse_tool_calls("<tool_call>not json</tool_call>") == ("<tool_call>not json</tool_call>", [])
