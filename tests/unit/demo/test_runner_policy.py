"""The demo's triage policy: what each annotation-selection policy changes, and that it loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.demo.runner import DemoConfig, DemoError, write_policy
from flywheel.services.triage.logic.policy import load_policy


def _rules(path: Path) -> dict:
    return {r.name: r for r in load_policy(path).rules}


def test_uncertainty_policy_asks_for_corrections_of_the_most_uncertain(tmp_path: Path) -> None:
    rules = _rules(write_policy("uncertainty", 1600, tmp_path / "u.yaml"))
    rule = rules["high_uncertainty"]
    assert rule.route == "annotate" and rule.annotation_kind == "correct"
    assert rule.priority == "uncertainty"
    assert "confident_success" not in rules  # no self-training on the model's own answers


def test_both_policies_ask_users_about_the_same_slice_before_annotating(tmp_path: Path) -> None:
    from flywheel.services.triage.logic.policy import matches

    def route(policy, signals: dict) -> str:  # noqa: ANN001
        return next(r for r in policy.rules if matches(r.when, signals)).route

    for name in ("uncertainty", "random"):
        policy = load_policy(write_policy(name, 1600, tmp_path / f"{name}.yaml"))
        names = [r.name for r in policy.rules]
        assert names.index("ask_user_slice") < names.index("high_uncertainty")
        base = {"uncertainty": 0.58, "uncertainty_measured": True, "has_alternative_answer": True,
                "has_user": True, "quality": 0.9, "duplicate": False}
        assert route(policy, {**base, "eval_bucket": 0.95}) == "preference"
        assert route(policy, {**base, "eval_bucket": 0.5}) == "annotate"
        no_alt = {**base, "eval_bucket": 0.95, "has_alternative_answer": False}
        assert route(policy, no_alt) == "annotate"


def test_random_policy_spends_the_same_budget_in_an_unrelated_order(tmp_path: Path) -> None:
    u = load_policy(write_policy("uncertainty", 1600, tmp_path / "u.yaml"))
    r = load_policy(write_policy("random", 1600, tmp_path / "r.yaml"))
    rule = {x.name: x for x in r.rules}["high_uncertainty"]
    assert rule.priority == "eval_bucket" and rule.annotation_kind == "correct"
    assert "uncertainty" not in rule.when
    assert r.budgets["annotate"].per_hour == u.budgets["annotate"].per_hour == 1600
    assert r.version.endswith("+demo-random") and u.version.endswith("+demo-uncertainty")


@pytest.mark.parametrize("kwargs", [{"policy": "greedy"}, {"minutes": 0}, {"label_budget": -1}])
def test_bad_demo_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(DemoError):
        DemoConfig(**kwargs)


def test_accuracies_are_read_from_the_gate_metrics() -> None:
    from flywheel.demo.runner import VersionRow, _accuracy, base_accuracy

    metrics = {"eval.exact_match": 0.25, "release.eval.exact_match": 0.0}
    rows = [VersionRow(1, "released", _accuracy(metrics), None, metrics=metrics)]
    assert rows[0].accuracy == 0.25 and base_accuracy(rows) == 0.0
    assert _accuracy({}) is None and base_accuracy([]) is None
