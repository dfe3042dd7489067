"""Duplicate fingerprints and the first-occurrence verdict."""

from __future__ import annotations

import random

import numpy as np
import pytest

from flywheel.demo import shop
from flywheel.services.triage import samples
from flywheel.services.triage.logic.dedupe import (
    DuplicateVerdict,
    MinHashConfig,
    dedupe_text,
    estimate_jaccard,
    exact_key,
    fingerprint,
    judge_duplicate,
    minhash,
    normalise,
    numbers_key,
    shingle_hashes,
)

CFG = MinHashConfig()


def _conv(q: str, a: str) -> str:
    return f"user: {q}\nassistant: {a}"


def test_normalise_ignores_case_punctuation_and_space() -> None:
    assert normalise("  Where IS my order 12?!  ") == normalise("where is my order 12")
    assert exact_key(normalise("Hi, there")) == exact_key(normalise("hi there"))
    assert normalise("Ｏｒｄｅｒ １２") == "order 12"  # NFKC


def test_exact_duplicates_share_the_exact_key() -> None:
    a = fingerprint(_conv("Where is my order 1234?", "It shipped."), CFG)
    b = fingerprint(_conv("where is my order 1234", "It shipped"), CFG)
    assert a.exact == b.exact and a.bands == b.bands


def test_near_duplicates_share_bands_and_score_high() -> None:
    answer = "Order 1234 has shipped and arrives within 3 business days."
    a = fingerprint(_conv("Hi, where is my order 1234? I have been waiting all week for it.",
                          answer), CFG)
    b = fingerprint(_conv("Hello. Where is my order 1234? I have been waiting all week for it.",
                          answer), CFG)
    assert a.exact != b.exact
    assert set(a.bands) & set(b.bands)
    assert estimate_jaccard(a.signature, b.signature) >= 0.6


def test_different_numbers_never_share_bands() -> None:
    a = fingerprint(_conv("Where is my order 1234?", shop.REPLIES["order_status"].format(n=1234)), CFG)
    b = fingerprint(_conv("Where is my order 5678?", shop.REPLIES["order_status"].format(n=5678)), CFG)
    assert not set(a.bands) & set(b.bands)
    assert numbers_key(normalise("order 12 and 7")) == numbers_key(normalise("7 then 12"))


def test_unrelated_texts_are_dissimilar() -> None:
    a = fingerprint(_conv("What is your return policy?", shop.REPLIES["return_policy"]), CFG)
    b = fingerprint(_conv("How much is shipping?", shop.REPLIES["shipping_cost"]), CFG)
    assert estimate_jaccard(a.signature, b.signature) < 0.3


def test_minhash_estimates_jaccard() -> None:
    words = [f"w{i}" for i in range(200)]
    a = " ".join(words[:150])
    b = " ".join(words[50:])
    cfg = MinHashConfig(num_perm=256, bands=32)
    sa = minhash(shingle_hashes(a, 1), cfg)
    sb = minhash(shingle_hashes(b, 1), cfg)
    true = 100 / 200
    assert abs(estimate_jaccard(sa.tobytes(), sb.tobytes()) - true) < 0.1


def test_minhash_is_stable_across_calls() -> None:
    h = shingle_hashes("a b c d e f g", 3)
    assert np.array_equal(minhash(h, CFG), minhash(h.copy(), CFG))
    assert fingerprint("same text here", CFG) == fingerprint("same text here", CFG)


def test_empty_text() -> None:
    fp = fingerprint("", CFG)
    assert fp.empty


def test_config_checks_bands() -> None:
    with pytest.raises(ValueError):
        MinHashConfig(num_perm=64, bands=10)


def test_dedupe_text_skips_system_prompt_and_keeps_tool_calls() -> None:
    trace = samples.agent_trace(random.Random(2))
    text = dedupe_text(trace)
    assert shop.SYSTEM_PROMPT not in text
    assert "call " in text and trace.messages[1].content in text


def test_judge_exact_and_self() -> None:
    sig = fingerprint("x y z", CFG).signature
    assert judge_duplicate("t2", "t1", [], {}, sig, 0.8) == DuplicateVerdict("exact", "t1", 1.0)
    assert not judge_duplicate("t1", "t1", ["t1"] * 16, {}, sig, 0.8).is_duplicate
    assert not judge_duplicate("t1", None, [None] * 16, {}, sig, 0.8).is_duplicate


def test_judge_near_uses_threshold_and_roots() -> None:
    a = fingerprint(_conv("Hi, where is my order 1234? I waited all week long for it.",
                          "Order 1234 has shipped."), CFG)
    b = fingerprint(_conv("Hello, where is my order 1234? I waited all week long for it.",
                          "Order 1234 has shipped."), CFG)
    sim = estimate_jaccard(a.signature, b.signature)
    near = judge_duplicate("t2", None, ["t1"], {"t1": a.signature}, b.signature, sim - 0.01)
    assert near.kind == "near" and near.of == "t1" and near.similarity == pytest.approx(sim, abs=1e-3)
    assert not judge_duplicate("t2", None, ["t1"], {"t1": a.signature}, b.signature, sim + 0.01).is_duplicate
    rooted = judge_duplicate("t3", None, ["t2"], {"t2": a.signature}, b.signature, 0.1, {"t2": "t1"})
    assert rooted.of == "t1"
    assert judge_duplicate("t3", "t2", [], {}, b.signature, 0.8, {"t2": "t1"}).of == "t1"
    # An owner whose signature expired cannot be compared: not a duplicate.
    assert not judge_duplicate("t2", None, ["t1"], {}, b.signature, 0.1).is_duplicate
