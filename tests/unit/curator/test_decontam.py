"""Eval split and contamination guard."""

from __future__ import annotations

import pytest
from curator_builders import msg

from flywheel.demo import shop
from flywheel.services.curator.logic.decontam import (
    NearDuplicateIndex,
    check_training_prompt,
    is_eval_prompt,
    jaccard,
    normalize_text,
    prompt_key,
    prompt_text,
    shingles,
    split_contaminated,
)


def test_normalised_prompt_keeps_user_turns_only() -> None:
    messages = [msg("system", "You are X."), msg("user", "  Hi,  WHERE is order #4512?! "),
                msg("assistant", "It shipped."), msg("user", "Thanks__a lot")]
    assert prompt_text(messages) == "hi where is order 4512\nthanks a lot"
    assert normalize_text("Café—OK") == "café ok"


def test_eval_split_is_deterministic_and_close_to_the_share() -> None:
    keys = [prompt_key(f"question {i}") for i in range(5000)]
    share = sum(is_eval_prompt(k, 0.1) for k in keys) / len(keys)
    assert 0.085 < share < 0.115
    assert [is_eval_prompt(k, 0.1) for k in keys] == [is_eval_prompt(k, 0.1) for k in keys]
    assert not any(is_eval_prompt(k, 0.0) for k in keys)
    # the split nests: everything held out at 5% is also held out at 10%
    assert all(is_eval_prompt(k, 0.1) for k in keys if is_eval_prompt(k, 0.05))


def test_similarities() -> None:
    greeting = normalize_text("Hi, where is my order 1234?")
    bare = normalize_text("Where is my order 1234")
    other = normalize_text("Where is my order 5678")
    assert jaccard(shingles(greeting), shingles(bare)) == pytest.approx(18 / 21)
    assert jaccard(shingles(bare), shingles(other)) < 0.7
    assert shingles("abc") == frozenset({"abc"}) and shingles("") == frozenset()


def test_index_finds_exact_and_near_duplicates_only() -> None:
    index = NearDuplicateIndex(threshold=0.8)
    index.add("e1", normalize_text("Where is my order 1234?"))
    index.add("e2", normalize_text("What are your opening hours?"))
    index.add("e1", normalize_text("ignored: same id"))
    assert len(index) == 2 and "e1" in index
    exact = index.nearest(normalize_text("where is my order 1234"))
    assert exact is not None and (exact.item_id, exact.similarity) == ("e1", 1.0)
    near = index.nearest(normalize_text("Hi, where is my order 1234?"))
    assert near is not None and near.item_id == "e1" and near.similarity >= 0.8
    assert index.nearest(normalize_text("Where is my order 5678?")) is None
    assert index.nearest(normalize_text("Do you sell tents?")) is None


def test_check_and_split_training_prompts() -> None:
    index = NearDuplicateIndex(0.8)
    held = normalize_text("Is shipping free on orders over fifty dollars?")
    index.add("e", held)
    keys = index.keys()
    assert check_training_prompt(held, keys, index).reason == "eval_prompt"
    assert check_training_prompt(normalize_text("Hi, is shipping free on orders over fifty "
                                                "dollars?"), keys,
                                 index).reason == "near_duplicate"
    assert check_training_prompt(normalize_text("What does shipping cost?"), keys,
                                 index).reason is None
    clean, dropped = split_contaminated(
        [held, normalize_text("When are you open?"),
         normalize_text("Is shipping free on orders over fifty dollars??")],
        keys, index)
    assert clean == [1] and sorted(dropped) == [0, 2]


def test_lsh_recall_on_shop_paraphrases() -> None:
    """Every pair at or above the threshold is found (checked against brute force)."""
    questions = [normalize_text(q.text) for q in shop.sample_questions(300, seed=3)]
    index = NearDuplicateIndex(0.8)
    for i, text in enumerate(questions[:150]):
        index.add(str(i), text)
    for text in questions[150:]:
        best = max(jaccard(shingles(text), shingles(t)) for t in questions[:150])
        found = index.nearest(text)
        if best >= 0.8:
            assert found is not None and found.similarity == pytest.approx(best)
        else:
            assert found is None
