"""The evaluation gate's rules, on plain numbers."""

from __future__ import annotations

import math

import pytest

from flywheel.services.trainer.logic.gate import Margins, Scores, should_propose


def _scores(primary: float, **slices: float) -> Scores:
    return Scores(primary, slices={f"forgetting.{k}": v for k, v in slices.items()})


def test_better_candidate_passes_with_a_reason_per_check() -> None:
    decision = should_propose(_scores(0.8, batch_1=0.9), _scores(0.5, batch_1=0.9), Margins())
    assert decision.passed
    assert decision.failed == []
    assert any(r.startswith("eval.exact_match: 0.800 vs release 0.500") for r in decision.reasons)
    assert any(r.startswith("forgetting.batch_1") and r.endswith("ok") for r in decision.reasons)


def test_primary_may_drop_by_the_margin_but_not_more() -> None:
    margins = Margins(primary=0.05)
    assert should_propose(_scores(0.46), _scores(0.5), margins).passed
    assert should_propose(_scores(0.45), _scores(0.5), margins).passed  # exactly the margin
    rejected = should_propose(_scores(0.44), _scores(0.5), margins)
    assert not rejected.passed
    assert "worse by 0.060 > margin 0.050" in rejected.failed[0].reason


def test_a_regressing_slice_rejects_even_when_the_primary_improves() -> None:
    decision = should_propose(_scores(0.9, batch_1=0.5, batch_2=0.95),
                              _scores(0.6, batch_1=0.8, batch_2=0.9), Margins(slice_default=0.1))
    assert not decision.passed
    assert [c.name for c in decision.failed] == ["forgetting.batch_1"]


def test_per_slice_margin_overrides_the_default() -> None:
    margins = Margins(slice_default=0.05, slices={"forgetting.batch_1": 0.4})
    assert should_propose(_scores(0.9, batch_1=0.5), _scores(0.6, batch_1=0.8), margins).passed


def test_slices_only_the_candidate_has_are_reported_not_gated() -> None:
    decision = should_propose(_scores(0.7, batch_9=0.1), _scores(0.6), Margins())
    assert decision.passed
    check = next(c for c in decision.checks if c.name == "forgetting.batch_9")
    assert not check.gated and "not gated" in check.reason


def test_a_slice_missing_on_the_candidate_fails() -> None:
    assert not should_propose(_scores(0.7), _scores(0.6, batch_1=0.5), Margins()).passed


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_numbers_that_are_not_finite_fail(bad: float) -> None:
    assert not should_propose(_scores(bad), _scores(0.5), Margins()).passed
    assert not should_propose(_scores(0.5), _scores(bad), Margins()).passed


def test_floors_are_gated_only_when_set() -> None:
    cand = Scores(0.6, win_rate=0.3, win_rate_name="win_rate.exact_match",
                  preference_accuracy=0.4)
    assert should_propose(cand, Scores(0.6), Margins()).passed
    decision = should_propose(cand, Scores(0.6), Margins(min_win_rate=0.5))
    assert [c.name for c in decision.failed] == ["win_rate.exact_match"]
    decision = should_propose(cand, Scores(0.6), Margins(min_preference_accuracy=0.5))
    assert [c.name for c in decision.failed] == ["preference.accuracy"]
    unmeasured = Scores(0.6, preference_accuracy=None)
    assert not should_propose(unmeasured, Scores(0.6), Margins(min_preference_accuracy=0.5)).passed


def test_min_primary_floor() -> None:
    assert not should_propose(_scores(0.1), _scores(0.0), Margins(min_primary=0.2)).passed
    assert should_propose(_scores(0.3), _scores(0.0), Margins(min_primary=0.2)).passed


@pytest.mark.parametrize("kwargs", [{"primary": -0.1}, {"slice_default": math.nan},
                                    {"slices": {"x": -1.0}}, {"min_win_rate": 1.5}])
def test_invalid_margins_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Margins(**kwargs)
