"""Release decision rules and the statistics under them (pure, no broker)."""

from __future__ import annotations

import math
import random

import pytest

from flywheel.services.exporter.logic import stats
from flywheel.services.exporter.logic.decide import (
    DecisionPolicy,
    HeadToHead,
    VersionSignals,
    check_signals,
    decide,
    should_promote,
    should_rollback,
)

POLICY = DecisionPolicy(confidence=0.95, min_requests=200, min_samples=30)


def _signals(version: str, requests: int, down_rate: float, error_rate: float = 0.0,
             thumbs: int | None = None, ratings: list[float] | None = None) -> VersionSignals:
    thumbs = requests if thumbs is None else thumbs
    down = round(thumbs * down_rate)
    ratings = ratings or []
    return VersionSignals(version, requests=requests, errors=round(requests * error_rate),
                          thumbs_up=thumbs - down, thumbs_down=down, ratings=len(ratings),
                          rating_sum=sum(ratings), rating_sq_sum=sum(r * r for r in ratings))


# -- statistics -------------------------------------------------------------------------------

def test_wilson_interval_matches_textbook_values() -> None:
    low, high = stats.wilson_interval(10, 100, 1.959964)
    assert low == pytest.approx(0.0552, abs=1e-4)
    assert high == pytest.approx(0.1744, abs=1e-4)
    assert stats.wilson_interval(0, 0, 1.96) == (0.0, 1.0)


def test_newcombe_interval_is_defined_at_zero_and_covers_the_difference() -> None:
    low, high = stats.newcombe_interval(0, 50, 0, 50, 1.96)
    assert low < 0 < high
    low, high = stats.newcombe_interval(56, 70, 48, 80, 1.959964)  # Newcombe (1998), example (a)
    assert low == pytest.approx(0.0524, abs=1e-3)
    assert high == pytest.approx(0.3339, abs=1e-3)


def test_binomial_tails_are_exact() -> None:
    assert stats.binom_cdf(5, 10, 0.5) == pytest.approx(638 / 1024)
    assert stats.binom_sf(8, 10, 0.5) == pytest.approx(56 / 1024)
    assert stats.binom_cdf(-1, 10, 0.5) == 0.0 and stats.binom_sf(0, 10, 0.5) == 1.0
    assert stats.binom_sf(3000, 5000, 0.5) < 1e-40  # log-space: no underflow to nonsense


def test_z_for_applies_bonferroni() -> None:
    assert stats.z_for(0.95) == pytest.approx(1.6449, abs=1e-4)
    assert stats.z_for(0.95, tests=4) == pytest.approx(2.2414, abs=1e-4)
    with pytest.raises(ValueError):
        stats.z_for(1.0)


def test_mean_and_variance_from_sums() -> None:
    values = [1.0, 4.0, 6.0, 7.0]
    mean, var = stats.mean_and_variance(sum(values), sum(v * v for v in values), len(values))
    assert mean == pytest.approx(4.5)
    assert var == pytest.approx(7.0)


# -- rules ------------------------------------------------------------------------------------

def test_equal_canary_with_enough_traffic_is_promoted() -> None:
    canary = _signals("2", 2000, 0.10, ratings=[5.0, 6.0] * 100)
    release = _signals("1", 8000, 0.10, ratings=[5.0, 6.0] * 400)
    decision = decide(canary, release, HeadToHead(), POLICY)
    assert decision.action == "promote", decision.reasons
    assert any("thumbs_down_rate" in r for r in decision.reasons)


def test_clearly_worse_thumbs_down_rolls_back_even_before_min_requests() -> None:
    canary = _signals("2", 120, 0.45)
    release = _signals("1", 600, 0.10)
    decision = decide(canary, release, HeadToHead(), POLICY)
    assert decision.action == "rollback"
    assert "thumbs_down_rate" in decision.summary()


def test_small_samples_wait() -> None:
    canary = _signals("2", 20, 0.5)
    release = _signals("1", 20, 0.0)
    decision = decide(canary, release, HeadToHead(), POLICY)
    assert decision.action == "wait"
    assert all(c.status == "insufficient" for c in decision.checks)


def test_not_enough_traffic_blocks_promotion() -> None:
    canary = _signals("2", 150, 0.0)
    release = _signals("1", 5000, 0.10)
    decision = should_promote(canary, release, HeadToHead(), POLICY)
    assert decision.action == "wait"
    assert "150 of 200" in decision.summary()


def test_inconclusive_difference_waits() -> None:
    canary = _signals("2", 300, 0.14)
    release = _signals("1", 300, 0.10)
    decision = decide(canary, release, HeadToHead(), POLICY)
    assert decision.action == "wait"
    assert {c.name: c.status for c in decision.checks}["thumbs_down_rate"] == "inconclusive"


def test_error_rate_rolls_back() -> None:
    canary = _signals("2", 400, 0.1, error_rate=0.08)
    release = _signals("1", 400, 0.1, error_rate=0.0)
    assert should_rollback(canary, release, HeadToHead(), POLICY).action == "rollback"


def test_ratings_worse_rolls_back_and_equal_ratings_count_as_feedback() -> None:
    low = _signals("2", 300, 0.0, thumbs=0, ratings=[3.0, 4.0] * 40)
    high = _signals("1", 300, 0.0, thumbs=0, ratings=[6.0, 7.0] * 40)
    assert should_rollback(low, high, HeadToHead(), POLICY).action == "rollback"
    same = _signals("2", 300, 0.0, thumbs=0, ratings=[6.0, 7.0] * 40)
    assert should_promote(same, high, HeadToHead(), POLICY).action == "promote"


def test_preference_losses_roll_back_and_wins_promote() -> None:
    canary = _signals("2", 300, 0.0, thumbs=0)
    release = _signals("1", 300, 0.0, thumbs=0)
    assert decide(canary, release, HeadToHead(wins=10, losses=40), POLICY).action == "rollback"
    assert decide(canary, release, HeadToHead(wins=35, losses=15, ties=9), POLICY).action == "promote"
    assert decide(canary, release, HeadToHead(wins=26, losses=24), POLICY).action == "wait"


def test_without_feedback_there_is_no_promotion_unless_allowed() -> None:
    canary = _signals("2", 1000, 0.0, thumbs=0)
    release = _signals("1", 1000, 0.0, thumbs=0)
    assert decide(canary, release, HeadToHead(), POLICY).action == "wait"
    relaxed = DecisionPolicy(min_requests=200, min_samples=30, require_feedback=False)
    assert decide(canary, release, HeadToHead(), relaxed).action == "promote"


def test_auto_promote_off_still_rolls_back() -> None:
    good = _signals("2", 1000, 0.10)
    bad = _signals("2", 1000, 0.40)
    release = _signals("1", 1000, 0.10)
    assert decide(good, release, HeadToHead(), POLICY, auto_promote=False).action == "wait"
    assert decide(bad, release, HeadToHead(), POLICY, auto_promote=False).action == "rollback"


def test_policy_validates() -> None:
    with pytest.raises(ValueError):
        DecisionPolicy(confidence=0.3)
    with pytest.raises(ValueError):
        DecisionPolicy(win_margin=0.5)


def test_check_describes_every_signal() -> None:
    checks = check_signals(_signals("2", 500, 0.1, ratings=[5.0] * 40),
                           _signals("1", 500, 0.1, ratings=[5.0] * 40), HeadToHead(20, 20), POLICY)
    assert [c.name for c in checks] == ["thumbs_down_rate", "error_rate", "rating", "preference_win_rate"]
    for check in checks:
        assert check.name in check.describe()


@pytest.mark.parametrize("true_rate", [0.05, 0.2])
def test_false_rollback_rate_is_below_alpha_on_identical_versions(true_rate: float) -> None:
    """Simulated A/A canaries: same thumbs-down rate on both sides."""
    rng = random.Random(7)
    rollbacks = 0
    runs = 300
    for _ in range(runs):
        n_c, n_r = 300, 1200
        down_c = sum(rng.random() < true_rate for _ in range(n_c))
        down_r = sum(rng.random() < true_rate for _ in range(n_r))
        canary = VersionSignals("2", n_c, 0, n_c - down_c, down_c)
        release = VersionSignals("1", n_r, 0, n_r - down_r, down_r)
        rollbacks += should_rollback(canary, release, HeadToHead(), POLICY).action == "rollback"
    assert rollbacks / runs <= 0.05


def test_clearly_worse_canary_is_caught_by_simulation() -> None:
    rng = random.Random(11)
    caught = 0
    for _ in range(100):
        down_c = sum(rng.random() < 0.30 for _ in range(300))
        down_r = sum(rng.random() < 0.10 for _ in range(1200))
        caught += should_rollback(VersionSignals("2", 300, 0, 300 - down_c, down_c),
                                  VersionSignals("1", 1200, 0, 1200 - down_r, down_r),
                                  HeadToHead(), POLICY).action == "rollback"
    assert caught >= 99
    assert not math.isnan(caught)
