"""Pure planning decisions: batch idempotency, step counts, replay top-up, held-out pairs."""

from __future__ import annotations

import pytest

from flywheel.services.trainer.logic.planning import (
    Attempt,
    decide_batch_action,
    exact_match_win_rate,
    plan_steps,
    replay_top_up,
    split_heldout,
)


def test_a_new_batch_is_trained() -> None:
    assert decide_batch_action([]).kind == "train"


@pytest.mark.parametrize("status", ["candidate", "rejected", "released", "canary", "rolled_back"])
def test_a_finished_batch_is_announced_again_not_retrained(status: str) -> None:
    action = decide_batch_action([Attempt(1, "failed", "error"), Attempt(2, status)])
    assert (action.kind, action.version) == ("republish", 2)
    assert decide_batch_action([Attempt(2, status)], force=True).kind == "train"
    assert decide_batch_action([Attempt(2, status)], retry_failed=True).kind == "republish"


def test_a_failed_batch_is_skipped_on_redelivery_and_retried_on_request() -> None:
    attempts = [Attempt(3, "failed", "error")]
    action = decide_batch_action(attempts)
    assert (action.kind, action.version) == ("skip", 3)
    assert "flywheel train --batch" in action.reason
    assert decide_batch_action(attempts, retry_failed=True).kind == "train"


@pytest.mark.parametrize("kind", ["interrupted", "abandoned"])
def test_interrupted_or_abandoned_attempts_are_retried_by_redelivery(kind: str) -> None:
    assert decide_batch_action([Attempt(1, "failed", kind)]).kind == "train"


def test_versions_left_training_by_a_dead_trainer_are_abandoned() -> None:
    action = decide_batch_action([Attempt(1, "failed", "error"), Attempt(2, "training")])
    assert action.kind == "train" and action.abandon == (2,)
    action = decide_batch_action([Attempt(1, "candidate"), Attempt(2, "training")])
    assert action.kind == "republish" and action.abandon == (2,)


def test_plan_steps() -> None:
    assert plan_steps(0, 32, 1.0, 100) == 0
    assert plan_steps(2000, 32, 1.0, 100) == 63
    assert plan_steps(2000, 32, 3.0, 100) == 100
    assert plan_steps(5, 32, 1.0, 100) == 1
    assert plan_steps(500, 16, 1.0, 0) == 0


def test_replay_top_up() -> None:
    assert replay_top_up(100, 20, 0.2) == 0
    assert replay_top_up(100, 0, 0.2) == 25  # 25 / 125 = 0.2
    assert replay_top_up(100, 10, 0.2) == 13  # (10 + 13) / 113 >= 0.2
    assert replay_top_up(0, 0, 0.5) == 0
    assert replay_top_up(100, 0, 0.0) == 0
    with pytest.raises(ValueError):
        replay_top_up(10, 0, 1.0)


def test_split_heldout_is_deterministic_capped_and_keeps_training_data() -> None:
    keys = [f"pair-{i}" for i in range(1000)]
    train, held = split_heldout(keys, 0.1, 64)
    assert len(held) == 64 and len(train) == 936
    assert split_heldout(keys, 0.1, 64) == (train, held)
    assert set(train).isdisjoint(held)
    small_train, small_held = split_heldout(["a", "b"], 0.99, 10)
    assert len(small_train) >= 1
    assert split_heldout(keys, 0.0, 64) == (list(range(1000)), [])


def test_exact_match_win_rate() -> None:
    outcome = exact_match_win_rate([True, True, False, False], [False, True, True, False])
    assert (outcome.wins, outcome.losses, outcome.ties) == (1, 1, 2)
    assert outcome.rate == 0.5
    assert exact_match_win_rate([True, True], [False, False]).rate == 1.0
    assert exact_match_win_rate([], []).rate == 0.5
    with pytest.raises(ValueError):
        exact_match_win_rate([True], [])
