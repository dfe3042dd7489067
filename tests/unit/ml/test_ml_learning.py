"""End to end learning on the real tiny base: corrected shop answers teach the task, noise does not.

Pre-trains the tiny base briefly, then trains one LoRA adapter on corrected shop examples and
one on the same questions with shuffled answers, and measures held-out exact match before and
after. Budget: about 3 minutes on 2 idle cores.
"""

from __future__ import annotations

import random

import pytest

from flywheel.demo import shop

pytestmark = [pytest.mark.ml, pytest.mark.slow]

torch = pytest.importorskip("torch")

from flywheel.ml.evaluate import exact_match  # noqa: E402
from flywheel.ml.loading import load_tokenizer, suggested_threads  # noqa: E402
from flywheel.ml.tiny import init_tiny  # noqa: E402
from flywheel.ml.train import TrainConfig, prepare_model, train_sft  # noqa: E402

PRETRAIN_STEPS = 160
SFT = dict(sft_steps=150, sft_batch_size=32, sft_learning_rate=5e-3, dpo_steps=0, seed=0)
N_EXAMPLES = 512
N_HELDOUT = 96


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.set_num_threads(suggested_threads())
    return init_tiny(tmp_path_factory.mktemp("learning") / "tiny-base", pretrain_steps=PRETRAIN_STEPS)


def _trained_accuracy(base_dir, examples) -> tuple[float, float]:
    torch.set_num_threads(suggested_threads())
    tok, held = load_tokenizer(base_dir), shop.heldout_set(N_HELDOUT)
    cfg = TrainConfig(**SFT)
    model = prepare_model(base_dir, None, cfg)
    before = exact_match(model, tok, held)
    train_sft(model, tok, examples, cfg)
    return before, exact_match(model, tok, held)


def test_corrected_examples_teach_the_task(base_dir):
    questions = shop.sample_questions(N_EXAMPLES, seed=1)
    before, after = _trained_accuracy(base_dir, [shop.sft_example(q) for q in questions])
    print(f"held-out exact match before {before:.3f}, after {after:.3f}")
    assert before < 0.1
    assert after > 0.5, (before, after)


def test_shuffled_answers_do_not(base_dir):
    questions = shop.sample_questions(N_EXAMPLES, seed=1)
    answers = [shop.reference_answer(q) for q in questions]
    random.Random(0).shuffle(answers)
    before, after = _trained_accuracy(base_dir, [shop.sft_example(q, a) for q, a in zip(questions, answers)])
    assert before < 0.1
    # Picking one fixed reply for every question would score 1/8 on the balanced held-out set.
    assert after < 0.2, (before, after)
