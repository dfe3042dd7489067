"""Caps, the cut policy, screening, selection and replay."""

from __future__ import annotations

import pytest

from flywheel.services.curator.logic.balance import CapPolicy, apply_caps
from flywheel.services.curator.logic.batching import (
    BatchPolicy,
    PoolStats,
    batch_seed,
    replay_count,
    sample_replay,
    screen_pool,
    select_batch,
    should_cut_batch,
    shuffle_rows,
)
from flywheel.services.curator.logic.decontam import NearDuplicateIndex, normalize_text
from flywheel.services.curator.logic.records import ExampleRecord


def rec(i: int, kind: str = "sft", source: str = "thumbs_up", intent: str = "refund",
        quality: float = 0.8, at: float = 100.0, prompt: str | None = None,
        users: tuple[str, ...] = ("u",)) -> ExampleRecord:
    return ExampleRecord(kind=kind, example_id=f"{kind}_{i}", content_hash=f"h{i:04d}",
                         row={"i": i}, event={}, source=source, intent=intent, quality=quality,
                         prompt_text=prompt or f"question number {i} about something",
                         received_at=at + i, user_ids=users)


def test_caps_defer_over_share_items() -> None:
    items = [("judge", "a")] * 6 + [("human", "a")] * 2 + [("human", "b")] * 4
    out = apply_caps(items, 10, CapPolicy(max_source_share=0.5, max_intent_share=0.6),
                     lambda x: x[0], lambda x: x[1])
    assert out.selected == [("judge", "a")] * 5 + [("human", "a")] + [("human", "b")] * 4
    assert out.deferred == {"source_cap": 1, "intent_cap": 1}
    per_source = CapPolicy(source_shares={"judge": 0.2})
    out = apply_caps(items, 10, per_source, lambda x: x[0], lambda x: x[1])
    assert out.selected.count(("judge", "a")) == 2
    small = apply_caps(items, 3, CapPolicy(1.0, 1.0), lambda x: x[0], lambda x: x[1])
    assert len(small.selected) == 3 and small.deferred == {"capacity": 9}
    no_intent = apply_caps([("s", "")] * 4, 4, CapPolicy(1.0, 0.25), lambda x: x[0],
                           lambda x: x[1])
    assert len(no_intent.selected) == 4
    with pytest.raises(ValueError):
        CapPolicy(max_source_share=0.0)


@pytest.mark.parametrize(("stats", "cut", "reason"), [
    (PoolStats(), False, "empty"),
    (PoolStats(sft=48, mean_quality=0.9), True, "sft_count"),
    (PoolStats(sft=47, dpo=3, mean_quality=0.9), False, "waiting"),
    (PoolStats(sft=1, dpo=16, mean_quality=0.9), True, "dpo_count"),
    (PoolStats(sft=2, oldest_age_s=60.0, mean_quality=0.9), True, "max_age"),
    (PoolStats(sft=1, oldest_age_s=60.0, mean_quality=0.9), False, "waiting"),
    (PoolStats(sft=100, mean_quality=0.4), False, "low_mean_quality"),
])
def test_should_cut_batch(stats: PoolStats, cut: bool, reason: str) -> None:
    policy = BatchPolicy(min_sft=48, min_dpo=16, max_age_s=60.0, min_on_age=2,
                         min_mean_quality=0.5)
    decision = should_cut_batch(stats, policy)
    assert (decision.cut, decision.reason) == (cut, reason)


def test_disabled_triggers() -> None:
    policy = BatchPolicy(min_sft=0, min_dpo=0, max_age_s=0.0)
    assert not should_cut_batch(PoolStats(sft=10_000, dpo=10_000), policy).cut


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(replay_share=1.0)
    with pytest.raises(ValueError):
        BatchPolicy(min_sft=100, max_sft=50)


def test_screen_pool_drops_and_counts() -> None:
    index = NearDuplicateIndex(0.8)
    index.add("e1", normalize_text("Where is my order 1234?"))
    records = [
        rec(1), rec(2), rec(3, quality=0.1), rec(4, users=("gone",)),
        rec(5, prompt=normalize_text("where is my order 1234")),
        rec(6, prompt=normalize_text("Hi, where is my order 1234?")),
        rec(7, at=-1000.0),
    ]
    policy = BatchPolicy(min_quality=0.5, max_pool_age_s=500.0)
    out = screen_pool(records, policy=policy, now=200.0, batched={"h0002"},
                      forgotten_users={"gone"}, eval_keys=index.keys(), eval_index=index)
    assert [r.example_id for r in out.eligible] == ["sft_1"]
    assert out.removed == {"sft:h0002": "already_batched", "sft:h0003": "low_quality",
                           "sft:h0004": "forgotten_user", "sft:h0005": "eval_prompt",
                           "sft:h0006": "near_duplicate", "sft:h0007": "expired"}
    assert out.dropped()["eval_prompt"] == 1


def test_select_batch_balances_per_kind_and_reports_stats() -> None:
    records = [rec(i, source="judge" if i < 8 else "correction") for i in range(12)]
    records += [rec(100 + i, kind="dpo") for i in range(3)]
    policy = BatchPolicy(min_sft=4, min_dpo=2, max_sft=10, max_dpo=10)
    sel = select_batch(records, policy, CapPolicy(max_source_share=0.5, max_intent_share=1.0))
    assert [r.example_id for r in sel.sft] == [f"sft_{i}" for i in (0, 1, 2, 3, 4, 8, 9, 10, 11)]
    assert len(sel.dpo) == 3 and sel.deferred == {"source_cap": 3}
    stats = sel.stats(now=200.0)
    assert (stats.sft, stats.dpo, stats.oldest_age_s) == (9, 3, 100.0)
    assert stats.mean_quality == pytest.approx(0.8)


def test_replay_count_and_sample() -> None:
    assert replay_count(48, 0.2) == 12 and replay_count(10, 0.0) == 0 and replay_count(0, 0.5) == 0
    assert replay_count(30, 0.5) == 30
    old = [rec(i) for i in range(50)]
    first = sample_replay(old, 5, "seed")
    assert len(first) == 5 and first == sample_replay(list(reversed(old)), 5, "seed")
    assert first != sample_replay(old, 5, "other")
    assert sorted(r.example_id for r in sample_replay(old[:3], 5, "seed")) == [
        "sft_0", "sft_1", "sft_2"]


def test_seed_and_shuffle_are_order_independent() -> None:
    records = [rec(i) for i in range(10)]
    assert batch_seed(records) == batch_seed(list(reversed(records)))
    seed = batch_seed(records)
    assert shuffle_rows(records, seed) == shuffle_rows(list(reversed(records)), seed)
    assert sorted(r.example_id for r in shuffle_rows(records, seed)) == sorted(
        r.example_id for r in records)
