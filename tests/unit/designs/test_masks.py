"""Character-span loss masks become per-token weights through a real chat template."""

from __future__ import annotations

import pytest

from flywheel.designs.base import DesignError
from flywheel.designs.masks import char_weights, token_loss_weights

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

CORPUS = ["Order 4521 is cancelled.", "Let me check that answer.", "Cancel order 4512.",
          "Order 4512 is cancelled and you will not be charged.", "lookup_order"] * 20


@pytest.fixture(scope="module")
def tokenizer():  # noqa: ANN201
    from flywheel.ml.tiny import train_tokenizer

    return train_tokenizer(CORPUS, vocab_size=300)


MESSAGES = [
    {"role": "system", "content": "You are the shop assistant."},
    {"role": "user", "content": "Cancel order 4512."},
    {"role": "assistant", "content": "Order 4521 is cancelled.\n\nLet me check that answer."},
]
MASK = {"message_index": 2, "char_start": 0, "char_end": len("Order 4521 is cancelled."),
        "weight": 0.0}


def _weighted_text(tokenizer, ids: list[int], weights: list[float], value: float) -> str:  # noqa: ANN001
    return "".join(tokenizer.decode([i]) for i, w in zip(ids, weights) if w == value)


def test_prompt_and_masked_span_weigh_zero(tokenizer) -> None:  # noqa: ANN001
    ids, weights = token_loss_weights(tokenizer, MESSAGES, [MASK])
    assert len(ids) == len(weights)
    trained = _weighted_text(tokenizer, ids, weights, 1.0)
    assert "Let me check that answer." in trained
    assert "4521" not in trained and "Cancel" not in trained and "shop" not in trained
    assert trained.endswith("<|end|>")  # the end token is assistant output


def test_without_masks_the_whole_answer_is_trained(tokenizer) -> None:  # noqa: ANN001
    ids, weights = token_loss_weights(tokenizer, MESSAGES)
    trained = _weighted_text(tokenizer, ids, weights, 1.0)
    assert trained.startswith("Order 4521 is cancelled.")


def test_tool_calls_count_as_assistant_output(tokenizer) -> None:  # noqa: ANN001
    messages = [
        {"role": "user", "content": "Cancel order 4512."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function",
             "function": {"name": "cancel_order", "arguments": "{\"order_number\": \"4512\"}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "{\"cancelled\": true}"},
        {"role": "assistant", "content": "Order 4512 is cancelled."},
    ]
    ids, weights = token_loss_weights(tokenizer, messages)
    trained = _weighted_text(tokenizer, ids, weights, 1.0)
    assert "cancel_order" in trained and "Order 4512 is cancelled." in trained
    assert "cancelled\": true" not in trained  # the tool result is input


def test_char_weights_and_errors() -> None:
    text = "U: hi\nA: yes no\n"
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes no"}]
    weights = char_weights(text, messages, [{"message_index": 1, "char_start": 4,
                                             "char_end": 6, "weight": 0.5}])
    assert weights == [0.0] * 9 + [1.0] * 4 + [0.5] * 2 + [0.0]
    with pytest.raises(DesignError):
        char_weights("nothing", messages, [])
    with pytest.raises(DesignError):
        char_weights(text, [{"role": "user", "content": ""}], [{"message_index": 0}])
