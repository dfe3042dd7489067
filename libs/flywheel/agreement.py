"""Inter-annotator agreement: Cohen's kappa (two raters) and Krippendorff's alpha (any number).

Pure functions over plain Python values; no numpy, no I/O. Values are any hashable labels
(``"A"``, ``3``, ``True``). Missing ratings are ``None``.

* :func:`cohen_kappa` takes two equal-length sequences (rater 1, rater 2), optionally weighted
  (``"linear"`` or ``"quadratic"``) for ordinal scales such as the 0-4 rating.
* :func:`krippendorff_alpha` takes a list of units, each the values the raters gave it
  (``None`` or absent for raters who did not rate it), with a distance metric: ``"nominal"``,
  ``"ordinal"``, ``"interval"`` or ``"ratio"``.
* :func:`agreement` picks kappa for exactly two raters with complete pairs, alpha otherwise.

Both return ``None`` when agreement is undefined (no pairable data, or no variation at all,
where expected disagreement is zero).

References: J. Cohen (1960), "A coefficient of agreement for nominal scales"; K. Krippendorff
(2011), "Computing Krippendorff's Alpha-Reliability" (the worked examples are unit tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Literal

from flywheel.errors import FlywheelError

Metric = Literal["nominal", "ordinal", "interval", "ratio"]
Weights = Literal["linear", "quadratic"] | None


class AgreementError(FlywheelError):
    """Inputs to an agreement statistic are malformed (lengths differ, unknown metric)."""


# -- Cohen's kappa ----------------------------------------------------------------------------


def cohen_kappa(rater1: Sequence[Hashable], rater2: Sequence[Hashable], *,
                weights: Weights = None, categories: Sequence[Hashable] | None = None
                ) -> float | None:
    """Cohen's kappa between two raters over the same items.

    Args:
        rater1, rater2: labels per item, same length; pairs with a ``None`` are skipped.
        weights: ``None`` (unweighted), ``"linear"`` or ``"quadratic"``; weighted kappa needs
            ordered numeric categories.
        categories: the category order for weighted kappa (default: sorted observed values).

    Returns:
        Kappa in [-1, 1], or None when it is undefined (no pairs, or chance agreement is 1).

    Raises:
        AgreementError: the sequences differ in length or ``weights`` is unknown.
    """
    if len(rater1) != len(rater2):
        raise AgreementError(f"raters labelled different numbers of items: "
                             f"{len(rater1)} != {len(rater2)}")
    pairs = [(a, b) for a, b in zip(rater1, rater2) if a is not None and b is not None]
    if not pairs:
        return None
    cats = list(categories) if categories is not None else sorted(
        {v for pair in pairs for v in pair}, key=_sort_key)
    index = {c: i for i, c in enumerate(cats)}
    k, n = len(cats), len(pairs)
    weight = _kappa_weights(weights, cats)
    observed = Counter((index[a], index[b]) for a, b in pairs)
    row = Counter(index[a] for a, _ in pairs)
    col = Counter(index[b] for _, b in pairs)
    obs = sum(weight(i, j) * c for (i, j), c in observed.items()) / n
    exp = sum(weight(i, j) * row[i] * col[j] for i in range(k) for j in range(k)) / (n * n)
    if exp == 0:
        return None
    return 1.0 - obs / exp


def _kappa_weights(weights: Weights, cats: list[Hashable]):  # noqa: ANN202
    """Disagreement weight w(i, j): 0 on the diagonal, 1 (or scaled distance) elsewhere."""
    if weights is None:
        return lambda i, j: 0.0 if i == j else 1.0
    if weights not in ("linear", "quadratic"):
        raise AgreementError(f"unknown kappa weights {weights!r}; use 'linear' or 'quadratic'")
    span = max(len(cats) - 1, 1)
    power = 1 if weights == "linear" else 2
    return lambda i, j: (abs(i - j) / span) ** power


# -- Krippendorff's alpha ---------------------------------------------------------------------


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None] | Mapping[str, Hashable | None]],
                       metric: Metric = "nominal") -> float | None:
    """Krippendorff's alpha over units rated by any number of raters, with missing values.

    Args:
        units: one entry per unit: the values its raters gave (a sequence, ``None`` for a
            missing rating, or a mapping rater -> value). Units with fewer than two values
            are not pairable and are ignored.
        metric: the difference function: ``nominal`` (categories), ``ordinal`` (ranks),
            ``interval`` (differences) or ``ratio`` (relative differences).

    Returns:
        Alpha (1 perfect, 0 chance, negative systematic disagreement), or None when no unit
        is pairable or every pairable value is the same (expected disagreement zero).

    Raises:
        AgreementError: the metric is unknown.
    """
    if metric not in ("nominal", "ordinal", "interval", "ratio"):
        raise AgreementError(f"unknown metric {metric!r}")
    coincidence = _coincidences(units)
    if not coincidence:
        return None
    totals: Counter = Counter()
    for (c, _), count in coincidence.items():
        totals[c] += count
    n = sum(totals.values())
    delta = _delta(metric, totals)
    values = list(totals)
    observed = sum(count * delta(c, k) for (c, k), count in coincidence.items())
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in values for k in values)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * observed / expected


def _coincidences(units: Sequence) -> Counter:
    """The coincidence matrix o_ck: each pair of values within a unit counts 1/(m_u - 1)."""
    matrix: Counter = Counter()
    for unit in units:
        raw = unit.values() if isinstance(unit, Mapping) else unit
        values = [v for v in raw if v is not None]
        m = len(values)
        if m < 2:
            continue
        for a, b in permutations(values, 2):
            matrix[(a, b)] += 1.0 / (m - 1)
    return matrix


def _delta(metric: Metric, totals: Counter):  # noqa: ANN202
    """The squared difference function for ``metric``."""
    if metric == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if metric == "interval":
        return lambda c, k: float(c - k) ** 2
    if metric == "ratio":
        return lambda c, k: 0.0 if c == k else ((c - k) / (c + k)) ** 2
    ordered = sorted(totals, key=_sort_key)
    rank = {v: i for i, v in enumerate(ordered)}
    cumulative = [0.0]
    for v in ordered:
        cumulative.append(cumulative[-1] + totals[v])

    def ordinal(c: Hashable, k: Hashable) -> float:
        lo, hi = sorted((rank[c], rank[k]))
        between = cumulative[hi + 1] - cumulative[lo]
        return (between - (totals[c] + totals[k]) / 2.0) ** 2

    return ordinal


def _sort_key(value: Hashable) -> tuple[int, object]:
    """Numbers first in numeric order, then everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


# -- convenience ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """One agreement figure: which statistic, its value, how many units and raters."""

    statistic: Literal["cohen_kappa", "krippendorff_alpha"]
    value: float | None
    units: int
    raters: int
    percent: float | None  # share of pairable units where every rater agreed


def agreement(units: Sequence[Mapping[str, Hashable | None]], metric: Metric = "nominal"
              ) -> Agreement:
    """Cohen's kappa when exactly two raters labelled every unit, Krippendorff's alpha otherwise.

    Args:
        units: per unit, a mapping rater id -> value.
        metric: for alpha, and (``ordinal``/``interval`` → quadratic weights) for kappa.
    """
    raters = sorted({r for u in units for r, v in u.items() if v is not None})
    pairable = [u for u in units if sum(v is not None for v in u.values()) >= 2]
    percent = None
    if pairable:
        agreeing = sum(len({v for v in u.values() if v is not None}) == 1 for u in pairable)
        percent = agreeing / len(pairable)
    complete_pairs = len(raters) == 2 and all(
        all(u.get(r) is not None for r in raters) for u in pairable)
    if complete_pairs and pairable:
        weights: Weights = "quadratic" if metric in ("ordinal", "interval") else None
        value = cohen_kappa([u[raters[0]] for u in pairable], [u[raters[1]] for u in pairable],
                            weights=weights)
        return Agreement("cohen_kappa", value, len(pairable), 2, percent)
    value = krippendorff_alpha(pairable, metric)
    return Agreement("krippendorff_alpha", value, len(pairable), len(raters), percent)
