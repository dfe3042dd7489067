"""Evaluation against the release on a tiny random model: metric names, cache, held-out choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.services.trainer.data import EvalItem
from flywheel.services.trainer.evaluation import (
    PRIMARY,
    AnswerCache,
    EvalSets,
    Evaluator,
    choose_heldout,
    model_key,
    score,
    shop_heldout,
)

pytestmark = pytest.mark.ml


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from flywheel.ml.corpus import load_texts
    from flywheel.ml.tiny import TinySpec, build_model, train_tokenizer

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-random")
    tokenizer = train_tokenizer(load_texts()[:500], vocab_size=384)
    model = build_model(tokenizer, TinySpec(hidden_size=32, num_layers=1, num_heads=2,
                                            intermediate_size=64, max_positions=256))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


class _CountingCache(AnswerCache):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.hits = 0

    def get(self, key: str) -> list[str] | None:
        found = super().get(key)
        self.hits += found is not None
        return found


def test_candidate_and_release_are_scored_on_the_same_items(tiny_dir: Path, tmp_path: Path) -> None:
    from flywheel.ml.loading import load_tokenizer
    from flywheel.ml.train import TrainConfig, prepare_model

    model = prepare_model(tiny_dir, None, TrainConfig(sft_steps=1, dpo_steps=0))
    tokenizer = load_tokenizer(tiny_dir)
    heldout = shop_heldout(8)
    slice_items = [EvalItem("s1", [{"role": "user", "content": "hi"}], "hello")]
    pairs = [{"prompt": [{"role": "user", "content": "q"}], "chosen": "good answer",
              "rejected": "bad"}]
    cache = _CountingCache(tmp_path / "cache")
    evaluator = Evaluator(tokenizer, batch_size=8, max_new_tokens=4, cache=cache)
    sets = EvalSets(heldout, "shop", {"forgetting.batch_1": slice_items}, pairs)
    result = evaluator.run(model, sets, model_key(tiny_dir))
    m = result.metrics
    for key in (PRIMARY, f"release.{PRIMARY}", "forgetting.batch_1", "release.forgetting.batch_1",
                "win_rate.exact_match", "preference.accuracy", "eval.seconds"):
        assert key in m, key
    assert m["eval.items"] == 8 and m["preference.pairs"] == 1
    assert result.candidate.slices == {"forgetting.batch_1": m["forgetting.batch_1"]}
    assert result.release.primary == m[f"release.{PRIMARY}"]
    # A fresh adapter is initialised to zero: candidate and release answer alike.
    assert m["win_rate.exact_match.ties"] == 8
    assert any(k.startswith(f"{PRIMARY}.order_status") for k in m)
    evaluator.run(model, sets, model_key(tiny_dir))
    assert cache.hits == 2  # held-out and slice answers of the release came from the cache


def test_choose_heldout() -> None:
    batch_items = [EvalItem(str(i), [{"role": "user", "content": "q"}], "a") for i in range(60)]
    assert choose_heldout(batch_items, "auto", 40, 50)[1] == "batch"
    assert len(choose_heldout(batch_items, "auto", 40, 50)[0]) == 40
    assert choose_heldout(batch_items[:10], "auto", 40, 50)[1] == "shop"
    assert choose_heldout(batch_items[:10], "batch", 40, 50) == (batch_items[:10], "batch")
    items, source = choose_heldout(batch_items, "shop", 16, 50)
    assert source == "shop" and len(items) == 16 and items[0].intent


def test_score_normalises_whitespace() -> None:
    items = [EvalItem("1", [], "Order 12 is cancelled."), EvalItem("2", [], "x")]
    assert score(items, ["  Order 12   is cancelled.\n", "y"]) == [True, False]
