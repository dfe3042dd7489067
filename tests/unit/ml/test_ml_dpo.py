"""DPO with an SFT term: preference accuracy rises while the base (reference) stays fixed."""

from __future__ import annotations

import random

import pytest

from flywheel.demo import shop

pytestmark = pytest.mark.ml

torch = pytest.importorskip("torch")

from flywheel.ml.chat import collate, render_pair  # noqa: E402
from flywheel.ml.evaluate import preference_accuracy  # noqa: E402
from flywheel.ml.loading import load_model  # noqa: E402
from flywheel.ml.train import TrainConfig, dpo_loss, prepare_model, sequence_logps, train_dpo  # noqa: E402

CFG = dict(sft_steps=0, dpo_steps=12, dpo_batch_size=8, dpo_learning_rate=1e-2,
           sft_learning_rate=1e-2, dpo_beta=0.5, sft_weight=0.2, lora_r=4, lora_alpha=8)


def _pairs(n: int = 16) -> list[dict]:
    rng = random.Random(0)
    return [{"prompt": shop.question_messages(q), "chosen": shop.reference_answer(q),
             "rejected": shop.wrong_answer(q, rng)} for q in shop.sample_questions(n, seed=21)]


def test_dpo_raises_preference_accuracy_and_keeps_base_weights(tiny_dir, tiny_tokenizer):
    cfg = TrainConfig(**CFG)
    model = prepare_model(tiny_dir, None, cfg)
    pairs = _pairs()
    base_before = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" not in k}
    before = preference_accuracy(model, tiny_tokenizer, pairs)
    seen = []
    result = train_dpo(model, tiny_tokenizer, pairs, cfg, progress=seen.append)
    after = preference_accuracy(model, tiny_tokenizer, pairs)
    assert before == 0.0  # policy == reference at the start: every implicit reward is 0
    assert after >= 0.9, (before, after)
    assert result.losses[-1] < result.losses[0]
    assert {"dpo_loss", "nll", "reward_accuracy", "margin"} <= set(seen[-1].metrics)
    for k, v in model.named_parameters():
        if "lora_" not in k:
            assert torch.equal(v, base_before[k]), k


def test_reference_is_the_model_without_adapter(tiny_dir, tiny_tokenizer):
    cfg = TrainConfig(**CFG)
    model = prepare_model(tiny_dir, None, cfg)
    train_dpo(model, tiny_tokenizer, _pairs(8), cfg.replace(dpo_steps=3))
    chosen, rejected = render_pair(tiny_tokenizer, *_pairs(1)[0].values())
    batch = collate([chosen, rejected], tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        with model.disable_adapter():
            reference, counts = sequence_logps(model, batch)
        base, _ = sequence_logps(load_model(tiny_dir), batch)
        policy, _ = sequence_logps(model, batch)
    assert torch.allclose(reference, base, atol=1e-4)
    assert not torch.allclose(policy, base, atol=1e-4)
    assert counts.tolist() == [chosen.n_labels, rejected.n_labels]


def test_dpo_loss_matches_the_formula():
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    rc, rr = torch.tensor([-2.0, -2.0]), torch.tensor([-2.0, -2.0])
    loss, margins = dpo_loss(pc, pr, rc, rr, beta=0.5)
    expected_margins = 0.5 * torch.tensor([(-1 + 2) - (-3 + 2), (-2 + 2) - (-1 + 2)])
    assert torch.allclose(margins, expected_margins)
    assert torch.isclose(loss, -torch.nn.functional.logsigmoid(expected_margins).mean())
