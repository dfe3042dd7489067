"""Agreement statistics against textbook values (Cohen 1960; Krippendorff 2011)."""

from __future__ import annotations

import pytest

from flywheel.agreement import AgreementError, agreement, cohen_kappa, krippendorff_alpha

N = None

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C/D: four
# observers, twelve units, values 1-5 with missing data.
K2011_A = [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N]
K2011_B = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3]
K2011_C = [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N]
K2011_D = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]
K2011_UNITS = list(zip(K2011_A, K2011_B, K2011_C, K2011_D))


@pytest.mark.parametrize(("metric", "expected"), [
    ("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797),
])
def test_krippendorff_alpha_matches_the_worked_example(metric: str, expected: float) -> None:
    assert krippendorff_alpha(K2011_UNITS, metric) == pytest.approx(expected, abs=5e-4)


def test_krippendorff_alpha_two_observers_binary() -> None:
    # Krippendorff (2011), section A: two observers, ten units, binary data: alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha(list(zip(a, b))) == pytest.approx(0.095, abs=5e-4)


def test_krippendorff_alpha_accepts_mappings_and_skips_unpairable_units() -> None:
    units = [{"ann": "A", "bob": "A"}, {"ann": "B", "bob": "B", "cy": "B"}, {"ann": "C"}]
    assert krippendorff_alpha(units) == pytest.approx(1.0)  # the lone "C" is not pairable
    units.append({"ann": "A", "bob": "B"})
    assert krippendorff_alpha(units) < 1.0
    assert krippendorff_alpha([{"a": "A", "b": "A"}]) is None  # no variation at all


def test_cohen_kappa_textbook_two_by_two() -> None:
    # 50 proposals: both yes 20, yes/no 5, no/yes 10, both no 15: po 0.7, pe 0.5, kappa 0.4.
    r1 = ["yes"] * 25 + ["no"] * 25
    r2 = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(r1, r2) == pytest.approx(0.4)


def test_cohen_kappa_perfect_and_chance() -> None:
    assert cohen_kappa([0, 1, 2, 3], [0, 1, 2, 3]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None


def test_weighted_kappa_by_hand() -> None:
    # Categories 0,1,2; pairs (0,0) (1,1) (2,2) (0,1) (1,2) (2,0).
    r1 = [0, 1, 2, 0, 1, 2]
    r2 = [0, 1, 2, 1, 2, 0]
    # Linear weights |i-j|/2: observed = (0.5+0.5+1)/6 = 1/3; every marginal is 1/3, so
    # expected = (1/9) * sum |i-j|/2 over the 3x3 grid = (1/9) * 4 = 4/9.
    assert cohen_kappa(r1, r2, weights="linear") == pytest.approx(1 - (1 / 3) / (4 / 9))
    # Quadratic: observed (0.25+0.25+1)/6 = 0.25; expected (1/9)*(4*0.25+2*1) = 1/3.
    assert cohen_kappa(r1, r2, weights="quadratic") == pytest.approx(1 - 0.25 / (1 / 3))


def test_kappa_rejects_unequal_lengths_and_unknown_weights() -> None:
    with pytest.raises(AgreementError):
        cohen_kappa([1], [1, 2])
    with pytest.raises(AgreementError):
        cohen_kappa([1, 2], [1, 2], weights="cubic")  # type: ignore[arg-type]
    with pytest.raises(AgreementError):
        krippendorff_alpha([[1, 2]], "cosine")  # type: ignore[arg-type]


def test_agreement_picks_kappa_for_two_complete_raters_else_alpha() -> None:
    two = [{"a": "x", "b": "x"}, {"a": "y", "b": "y"}, {"a": "x", "b": "y"}]
    result = agreement(two)
    assert result.statistic == "cohen_kappa" and result.raters == 2 and result.units == 3
    assert result.percent == pytest.approx(2 / 3)
    three = [*two, {"a": "x", "c": "x"}]
    assert agreement(three).statistic == "krippendorff_alpha"
    assert agreement(three).raters == 3
