"""Greedy generation: our batched KV-cache loop equals transformers' generate, padded or not."""

from __future__ import annotations

import pytest

from flywheel.demo import shop

pytestmark = pytest.mark.ml

torch = pytest.importorskip("torch")

from flywheel.ml.chat import pad_ids, prompt_ids  # noqa: E402
from flywheel.ml.evaluate import exact_match_report, generate, generate_ids  # noqa: E402
from flywheel.ml.loading import eos_token_ids, load_model  # noqa: E402


def test_batched_greedy_equals_hf_generate(tiny_dir, tiny_tokenizer):
    model = load_model(tiny_dir)
    conversations = [shop.question_messages(q) for q in shop.sample_questions(6, seed=5)]
    conversations.append([{"role": "user", "content": "Hi!"}])  # a much shorter prompt: padding
    prompts = [prompt_ids(tiny_tokenizer, c) for c in conversations]
    eos = eos_token_ids(model, tiny_tokenizer)
    ours = generate_ids(model, prompts, pad_token_id=tiny_tokenizer.pad_token_id,
                        eos_token_ids=eos, max_new_tokens=12, batch_size=4)
    for prompt, row in zip(prompts, ours):
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=12, do_sample=False)
        expected = out[0, len(prompt):].tolist()
        expected = expected[: next((i for i, t in enumerate(expected) if t in eos), len(expected))]
        assert row == expected
    assert len({tuple(r) for r in ours}) > 1


def test_left_padding_does_not_change_answers(tiny_dir, tiny_tokenizer):
    model = load_model(tiny_dir)
    conversations = [shop.question_messages(q) for q in shop.sample_questions(5, seed=8)]
    one_by_one = [generate(model, tiny_tokenizer, [c], max_new_tokens=10)[0] for c in conversations]
    assert generate(model, tiny_tokenizer, conversations, max_new_tokens=10, batch_size=5) == one_by_one
    ids, mask = pad_ids([[1, 2], [3]], 0, side="left")
    assert mask.tolist() == [[1, 1], [0, 1]]


def test_exact_match_report_shape(tiny_dir, tiny_tokenizer):
    questions = shop.heldout_set(16)
    report = exact_match_report(load_model(tiny_dir), tiny_tokenizer, questions, max_new_tokens=8)
    assert report.accuracy == 0.0 and len(report.answers) == 16
    assert set(report.per_intent) == set(shop.INTENTS)
