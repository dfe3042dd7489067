"""LoRA SFT on a tiny random model: adapters learn, base weights stay, masks hold, configs check."""

from __future__ import annotations

import json
import math

import pytest

from flywheel.demo import shop

pytestmark = pytest.mark.ml

torch = pytest.importorskip("torch")

from flywheel.ml import TrainConfigError, TrainingError  # noqa: E402
from flywheel.ml.chat import IGNORE_INDEX, collate, render_chat  # noqa: E402
from flywheel.ml.loading import load_model, load_tokenizer  # noqa: E402
from flywheel.ml.train import (  # noqa: E402
    TrainConfig, balance_groups, load_config, masked_lm_loss, merge_and_save, mix_replay,
    prepare_model, save_adapter, train_sft,
)

FAST = dict(sft_steps=4, sft_batch_size=4, sft_learning_rate=1e-2, dpo_steps=0, lora_r=4, lora_alpha=8)


def _examples(n: int = 8) -> list[dict]:
    return [shop.sft_example(q) for q in shop.sample_questions(n, seed=11)]


def _split_params(model) -> tuple[dict, dict]:
    lora = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" in k}
    base = {k: v.detach().clone() for k, v in model.named_parameters() if "lora_" not in k}
    return lora, base


def test_sft_steps_change_the_adapter_only(tiny_dir, tiny_tokenizer):
    cfg = TrainConfig(**FAST)
    model = prepare_model(tiny_dir, None, cfg)
    lora_before, base_before = _split_params(model)
    assert lora_before and all(not v.requires_grad for v in base_before.values())
    seen = []
    result = train_sft(model, tiny_tokenizer, _examples(), cfg, progress=seen.append)
    lora_after, base_after = _split_params(model)
    assert all(math.isfinite(x) for x in result.losses) and len(result.losses) == cfg.sft_steps
    assert any(not torch.equal(lora_before[k], lora_after[k]) for k in lora_before)
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before)
    assert [p.step for p in seen] == [1, 2, 3, 4] and seen[-1].eta_s == pytest.approx(0, abs=1e-6)
    assert seen[0].total == 4 and seen[0].examples_per_s > 0


def test_masked_tokens_get_no_gradient(tiny_dir, tiny_tokenizer):
    model = prepare_model(tiny_dir, None, TrainConfig(**FAST))
    content = "Order 4812 has shipped. Order 4821 has shipped."
    messages = [{"role": "user", "content": "Where is order 4821?"},
                {"role": "assistant", "content": content}]
    r = render_chat(tiny_tokenizer, messages,
                    masked_spans=[{"message_index": 1, "char_start": 0, "char_end": 23}])
    batch = collate([r], tiny_tokenizer.pad_token_id)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits.retain_grad()
    masked_lm_loss(logits, batch["labels"]).backward()
    grad_norms = logits.grad[0].norm(dim=-1)  # position t predicts token t + 1
    for t in range(len(r.labels) - 1):
        learned = r.labels[t + 1] != IGNORE_INDEX
        assert (grad_norms[t] > 0) == learned, t
    assert grad_norms[-1] == 0


def test_nan_loss_raises_training_error(tiny_dir, tiny_tokenizer):
    cfg = TrainConfig(**FAST)
    model = prepare_model(tiny_dir, None, cfg)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_A" in n).fill_(float("nan"))
    with pytest.raises(TrainingError, match="loss is nan"):
        train_sft(model, tiny_tokenizer, _examples(), cfg)


def test_no_learnable_tokens_raises(tiny_dir, tiny_tokenizer):
    model = prepare_model(tiny_dir, None, TrainConfig(**FAST))
    with pytest.raises(TrainingError):
        train_sft(model, tiny_tokenizer, [{"messages": [{"role": "user", "content": "hi"}]}], TrainConfig(**FAST))


def test_adapter_save_reload_and_continual_merge(tiny_dir, tiny_tokenizer, tmp_path):
    cfg = TrainConfig(**FAST)
    model = prepare_model(tiny_dir, None, cfg)
    train_sft(model, tiny_tokenizer, _examples(), cfg)
    adapter = save_adapter(model, tmp_path / "a1", cfg)
    assert load_config(adapter) == cfg
    assert json.loads((adapter / "lineage.json").read_text())["merged_adapters"] == []
    ids = torch.tensor([tiny_tokenizer("Where is order 4821?")["input_ids"]])
    with torch.no_grad():
        trained = model(input_ids=ids).logits
        reloaded = load_model(adapter)(input_ids=ids).logits
        # Round 2 starts from the merged round-1 weights with a fresh (zero-effect) adapter.
        round2 = prepare_model(tiny_dir, adapter, cfg)
        continued = round2(input_ids=ids).logits
    assert torch.allclose(trained, reloaded, atol=1e-4)
    assert torch.allclose(trained, continued, atol=1e-4)
    train_sft(round2, tiny_tokenizer, _examples(), cfg.replace(seed=1))
    adapter2 = save_adapter(round2, tmp_path / "a2", cfg)
    assert json.loads((adapter2 / "lineage.json").read_text())["merged_adapters"] == [str(adapter.resolve())]
    merged_dir = merge_and_save(round2, tmp_path / "merged")
    with torch.no_grad():
        expected = round2(input_ids=ids).logits
        assert torch.allclose(load_model(merged_dir)(input_ids=ids).logits, expected, atol=1e-4)
        assert torch.allclose(load_model(adapter2)(input_ids=ids).logits, expected, atol=1e-4)
    assert load_tokenizer(merged_dir).chat_template == tiny_tokenizer.chat_template
    assert any("lora_" in n for n, _ in round2.named_parameters())  # caller's model untouched


@pytest.mark.parametrize("changes", [
    dict(lora_alpha=0), dict(lora_r=0), dict(sft_learning_rate=0.5), dict(sft_learning_rate=0),
    dict(replay_share=1.0), dict(replay_share=-0.1), dict(sft_batch_size=0), dict(dpo_beta=0),
    dict(sft_weight=-1), dict(lora_dropout=1.0), dict(warmup_ratio=0.9), dict(lr_schedule="step"),
    dict(sft_steps=0, dpo_steps=0), dict(lora_r=1, lora_alpha=64),
    dict(dpo_learning_rate=1e-2, sft_learning_rate=1e-3),
    dict(sft_weight=0, dpo_learning_rate=5e-3, sft_learning_rate=1e-2),
])
def test_config_checks_raise(changes):
    with pytest.raises(TrainConfigError):
        TrainConfig(**changes)


def test_config_round_trips_and_documents_every_field():
    cfg = TrainConfig(lora_r=8, lora_alpha=16, replay_share=0.3)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert all(TrainConfig.help().values())
    with pytest.raises(TrainConfigError):
        TrainConfig.from_dict({"lora_rank": 8})
    with pytest.raises(TrainConfigError):
        cfg.replace(dpo_beta=-1)


def test_mix_replay_share():
    mixed = mix_replay(list(range(80)), list(range(100, 400)), 0.2, seed=1)
    replayed = [x for x in mixed if x >= 100]
    assert len(mixed) == 100 and len(replayed) == 20
    assert mix_replay(list(range(10)), [], 0.5) != [] and len(mix_replay([1], [2, 3], 0.0)) == 1


def test_balance_groups_repeats_rare_groups_up_to_the_factor() -> None:
    items = [f"c{i}" for i in range(40)] + ["s0", "s1"] + [f"w{i}" for i in range(10)] + ["u0"]
    groups = ["cancel"] * 40 + ["shipping"] * 2 + ["warranty"] * 10 + [""]
    out = balance_groups(items, groups, 4, seed=1)
    counts = {p: sum(x.startswith(p) for x in out) for p in "cswu"}
    assert counts == {"c": 40, "s": 8, "w": 40, "u": 1}  # 2 * 4 = 8; 10 * 4 = 40 (= largest)
    assert set(out) == set(items)  # every item at least once, nothing invented
    assert out == balance_groups(items, groups, 4, seed=1)  # deterministic per seed
    assert balance_groups(items, groups, 1) == items
    with pytest.raises(TrainConfigError):
        balance_groups(items, groups[:-1], 4)
