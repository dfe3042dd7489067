"""The onnxruntime generator: batching, sampling, stop sequences, logprobs and streaming."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from flywheel.ml.ort_runtime import (
    GenerationError,
    OrtGenerator,
    SamplingParams,
    find_stop,
    left_pad,
    positions_from_mask,
    safe_text_end,
    sample_token,
)

pytestmark = pytest.mark.ml

CHAT = [{"role": "user", "content": "Where is my order 4821?"}]


@pytest.fixture(scope="module")
def gen(float_artifact: Path) -> OrtGenerator:
    return OrtGenerator(float_artifact, threads=1)


def test_padding_helpers() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions_from_mask(mask).tolist() == [[0, 1, 2], [0, 0, 0]]


def test_stop_helpers() -> None:
    assert find_stop("abc END def", ["END", "def"]) == 4
    assert find_stop("abc", ["x"]) == -1
    assert safe_text_end("hello EN", ["END"]) == len("hello ")
    assert safe_text_end("hello \ufffd", []) == len("hello ")
    assert safe_text_end("hello", ["END"]) == 5


def test_sampling_is_greedy_at_zero_temperature_and_nucleus_respects_top_p() -> None:
    logits = np.array([0.0, 3.0, 2.9, -1.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample_token(logits, SamplingParams(temperature=0.0), rng) == 1
    tiny_p = SamplingParams(temperature=1.0, top_p=0.01)
    assert {sample_token(logits, tiny_p, rng) for _ in range(50)} == {1}
    wide = {sample_token(logits, SamplingParams(temperature=1.0), rng) for _ in range(400)}
    assert {1, 2} <= wide


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(GenerationError):
        SamplingParams(max_new_tokens=0)
    with pytest.raises(GenerationError):
        SamplingParams(top_p=0.0)


def test_batched_greedy_equals_batch_one(gen: OrtGenerator) -> None:
    prompts = ["Hello!", CHAT, "Your order 4821 has shipped and arrives", "I"]
    batched = gen.generate(prompts, max_new_tokens=10)
    for prompt, out in zip(prompts, batched, strict=True):
        [single] = gen.generate([prompt], max_new_tokens=10)
        assert out.token_ids == single.token_ids
        assert out.finish_reason in ("stop", "length")


def test_chat_prompt_uses_the_chat_template(gen: OrtGenerator) -> None:
    ids = gen.render_chat(CHAT)
    text = gen.tokenizer.decode(ids)
    assert "Where is my order 4821?" in text
    assert gen.encode_prompt(CHAT) == ids


def test_length_finish_and_stop_sequence(gen: OrtGenerator) -> None:
    [free] = gen.generate([CHAT], max_new_tokens=12)
    if free.finish_reason == "length":
        assert len(free.token_ids) == 12
    else:  # the model said its end token first
        assert free.finish_reason == "stop" and len(free.token_ids) < 12
    assert len(free.text) >= 5, "the tiny model should say a few characters"
    stop = free.text[3:5]
    [cut] = gen.generate([CHAT], max_new_tokens=12, stop=[stop])
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.token_ids == free.token_ids[: len(cut.token_ids)]


def test_seeded_sampling_is_reproducible_and_choices_differ(gen: OrtGenerator) -> None:
    kwargs = dict(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=7, n=3)
    first = gen.generate([CHAT], **kwargs)
    second = gen.generate([CHAT], **kwargs)
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    assert len({tuple(g.token_ids) for g in first}) > 1
    # A row's output does not depend on what it is batched with.
    mixed = gen.generate(["Hello!", CHAT], **kwargs)
    assert [g.token_ids for g in mixed if g.prompt_index == 1] == [g.token_ids for g in first]
    negative = dict(kwargs, seed=-3)
    assert [g.token_ids for g in gen.generate([CHAT], **negative)] == [
        g.token_ids for g in gen.generate([CHAT], **negative)
    ]


def test_logprobs_match_the_greedy_choice(gen: OrtGenerator) -> None:
    [out] = gen.generate([CHAT], max_new_tokens=6, logprobs=True, top_logprobs=3)
    assert out.logprobs is not None and len(out.logprobs) == len(out.token_ids)
    for lp, token in zip(out.logprobs, out.token_ids, strict=True):
        assert lp.token_id == token and lp.logprob <= 0.0
        assert len(lp.top) == 3 and lp.top[0].token_id == token
        assert math.isclose(lp.top[0].logprob, lp.logprob)
        assert lp.top[0].logprob >= lp.top[1].logprob >= lp.top[2].logprob


def test_stream_deltas_add_up_to_the_final_text(gen: OrtGenerator) -> None:
    events = list(gen.stream([CHAT, "Hello!"], max_new_tokens=10, n=2))
    finals = [e.generation for e in events if e.generation is not None]
    assert len(finals) == 4
    for final in finals:
        deltas = "".join(
            e.text for e in events if (e.prompt_index, e.choice_index) == (final.prompt_index, final.choice_index)
        )
        assert deltas == final.text


def test_prompt_longer_than_the_context_is_rejected(gen: OrtGenerator) -> None:
    assert gen.max_positions is not None
    with pytest.raises(GenerationError):
        gen.generate([[5] * gen.max_positions], max_new_tokens=1)


def test_cancelled_rows_leave_the_batch(gen: OrtGenerator) -> None:
    from flywheel.ml.ort_runtime import RowSpec

    ids = gen.encode_prompt(CHAT)
    params = SamplingParams(max_new_tokens=20)
    rows = [RowSpec(ids, params, 0, 0, cancelled=lambda: True), RowSpec(ids, params, 1, 0)]
    finals = {e.prompt_index: e.generation for e in gen.iter_rows(rows) if e.generation}
    assert finals[0].finish_reason == "cancelled" and finals[0].token_ids == []
    assert len(finals[1].token_ids) == 20 or finals[1].finish_reason == "stop"
