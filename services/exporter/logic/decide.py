"""Release decisions: promote a canary, roll it back, or wait for more traffic.

The canary and the release it challenges are compared on the traffic they served during the
same window, signal by signal:

- ``thumbs_down_rate``: thumbs-down / (thumbs-up + thumbs-down). Lower is better.
- ``error_rate``: failed answers / served answers. Lower is better.
- ``rating``: mean explicit rating (1-7, the mean of the criteria a user rated). Higher is better.
- ``preference_win_rate``: head-to-head preference answers between the two versions, ties left
  out. Above 0.5 favours the canary.

Each signal is judged only when both sides have ``min_samples`` observations; then it is
``worse`` (the canary is worse with confidence), ``not_worse`` (non-inferior within the
signal's margin, with confidence) or ``inconclusive``. Rates use Newcombe's interval for the
difference of two proportions, ratings a normal interval for the difference of means, the win
rate exact binomial tests. The confidence is Bonferroni-corrected over the four signals.

- Roll back as soon as any judged signal is ``worse``.
- Promote when the canary has served ``min_requests`` answers, no signal is ``worse``, every
  judged signal is ``not_worse``, and (unless ``require_feedback`` is off) at least one
  feedback signal (thumbs, rating or preference) was judged.
- Otherwise wait.

Looking again at every interval raises the chance of a false alarm over a long canary; a
higher ``confidence`` is the knob for that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

from .stats import (
    binom_cdf,
    binom_sf,
    mean_and_variance,
    mean_diff_interval,
    newcombe_interval,
    wilson_interval,
    z_for,
)

SIGNALS = ("thumbs_down_rate", "error_rate", "rating", "preference_win_rate")
FEEDBACK_SIGNALS = frozenset({"thumbs_down_rate", "rating", "preference_win_rate"})
Status = Literal["insufficient", "worse", "not_worse", "inconclusive"]
Action = Literal["promote", "rollback", "wait"]


@dataclass(frozen=True)
class VersionSignals:
    """Live counts for one model version over a decision window."""

    version: str
    requests: int = 0
    errors: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    ratings: int = 0
    rating_sum: float = 0.0
    rating_sq_sum: float = 0.0

    @property
    def thumbs(self) -> int:
        return self.thumbs_up + self.thumbs_down


@dataclass(frozen=True)
class HeadToHead:
    """Preference answers between the canary and the release: canary wins, losses and ties."""

    wins: int = 0
    losses: int = 0
    ties: int = 0

    @property
    def decided(self) -> int:
        return self.wins + self.losses


@dataclass(frozen=True)
class DecisionPolicy:
    """Thresholds of the decision rules (see the module docstring)."""

    confidence: float = 0.95
    min_requests: int = 200
    min_samples: int = 30
    rate_margin: float = 0.02
    rating_margin: float = 0.25
    win_margin: float = 0.05
    require_feedback: bool = True

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError("confidence must be within [0.5, 1)")
        if self.min_requests < 1 or self.min_samples < 1:
            raise ValueError("min_requests and min_samples must be at least 1")
        if self.rate_margin < 0 or self.rating_margin < 0 or not 0 <= self.win_margin < 0.5:
            raise ValueError("margins must be non-negative (win_margin below 0.5)")


@dataclass(frozen=True)
class SignalCheck:
    """How one signal compares. ``low``/``high`` bound the canary-minus-release difference
    (for the win rate: the canary's win rate)."""

    name: str
    status: Status
    canary: float | None = None
    release: float | None = None
    low: float | None = None
    high: float | None = None
    samples: tuple[int, int] = (0, 0)

    def describe(self) -> str:
        if self.status == "insufficient":
            return f"{self.name}: not enough data ({self.samples[0]}/{self.samples[1]} samples)"
        bounds = "" if self.low is None else f" [{self.low:+.3f}, {self.high:+.3f}]"
        return (f"{self.name}: {self.status} (canary {self.canary:.3f} vs release "
                f"{self.release:.3f}{bounds}, n={self.samples[0]}/{self.samples[1]})")


@dataclass(frozen=True)
class Decision:
    """What to do with a canary and why."""

    action: Action
    reasons: tuple[str, ...]
    checks: tuple[SignalCheck, ...] = field(default=())

    def summary(self) -> str:
        return "; ".join(self.reasons)


def _rate_check(name: str, x1: int, n1: int, x2: int, n2: int, z: float, margin: float,
                min_samples: int) -> SignalCheck:
    """A lower-is-better rate: worse when the whole interval of the difference is above 0."""
    if n1 < min_samples or n2 < min_samples:
        return SignalCheck(name, "insufficient", samples=(n1, n2))
    low, high = newcombe_interval(x1, n1, x2, n2, z)
    status: Status = "worse" if low > 0 else "not_worse" if high <= margin else "inconclusive"
    return SignalCheck(name, status, x1 / n1, x2 / n2, low, high, (n1, n2))


def _rating_check(c: VersionSignals, r: VersionSignals, z: float, policy: DecisionPolicy) -> SignalCheck:
    if c.ratings < policy.min_samples or r.ratings < policy.min_samples:
        return SignalCheck("rating", "insufficient", samples=(c.ratings, r.ratings))
    m1, v1 = mean_and_variance(c.rating_sum, c.rating_sq_sum, c.ratings)
    m2, v2 = mean_and_variance(r.rating_sum, r.rating_sq_sum, r.ratings)
    low, high = mean_diff_interval(m1, v1, c.ratings, m2, v2, r.ratings, z)
    status: Status = "worse" if high < 0 else "not_worse" if low >= -policy.rating_margin else "inconclusive"
    return SignalCheck("rating", status, m1, m2, low, high, (c.ratings, r.ratings))


def _preference_check(h2h: HeadToHead, z: float, policy: DecisionPolicy) -> SignalCheck:
    n = h2h.decided
    if n < policy.min_samples:
        return SignalCheck("preference_win_rate", "insufficient", samples=(n, n))
    alpha = 1.0 - _confidence_of(z)
    worse = binom_cdf(h2h.wins, n, 0.5) < alpha
    not_worse = binom_sf(h2h.wins, n, 0.5 - policy.win_margin) < alpha
    status: Status = "worse" if worse else "not_worse" if not_worse else "inconclusive"
    low, high = wilson_interval(h2h.wins, n, z)
    return SignalCheck("preference_win_rate", status, h2h.wins / n, 0.5, low, high, (n, n))


def _confidence_of(z: float) -> float:
    return NormalDist().cdf(z)


def check_signals(canary: VersionSignals, release: VersionSignals, h2h: HeadToHead,
                  policy: DecisionPolicy) -> tuple[SignalCheck, ...]:
    """Compare every signal of the canary with the release's (see the module docstring)."""
    z = z_for(policy.confidence, tests=len(SIGNALS))
    return (
        _rate_check("thumbs_down_rate", canary.thumbs_down, canary.thumbs, release.thumbs_down,
                    release.thumbs, z, policy.rate_margin, policy.min_samples),
        _rate_check("error_rate", canary.errors, canary.requests, release.errors, release.requests,
                    z, policy.rate_margin, policy.min_samples),
        _rating_check(canary, release, z, policy),
        _preference_check(h2h, z, policy),
    )


def should_rollback(canary: VersionSignals, release: VersionSignals, h2h: HeadToHead,
                    policy: DecisionPolicy) -> Decision:
    """``rollback`` as soon as any judged signal shows the canary clearly worse, else ``wait``."""
    checks = check_signals(canary, release, h2h, policy)
    worse = [c for c in checks if c.status == "worse"]
    if worse:
        return Decision("rollback", tuple(f"canary {canary.version} worse: {c.describe()}" for c in worse),
                        checks)
    return Decision("wait", ("no signal is clearly worse",), checks)


def should_promote(canary: VersionSignals, release: VersionSignals, h2h: HeadToHead,
                   policy: DecisionPolicy) -> Decision:
    """``promote`` when enough traffic shows every judged signal non-inferior, else ``wait``."""
    checks = check_signals(canary, release, h2h, policy)
    judged = [c for c in checks if c.status != "insufficient"]
    blockers = []
    if canary.requests < policy.min_requests:
        blockers.append(f"canary served {canary.requests} of {policy.min_requests} answers needed")
    blockers += [c.describe() for c in judged if c.status != "not_worse"]
    if policy.require_feedback and not any(c.name in FEEDBACK_SIGNALS for c in judged):
        blockers.append("no feedback signal has enough data yet")
    if blockers:
        return Decision("wait", tuple(blockers), checks)
    return Decision("promote", tuple(f"canary {canary.version} not worse: {c.describe()}" for c in judged),
                    checks)


def decide(canary: VersionSignals, release: VersionSignals, h2h: HeadToHead,
           policy: DecisionPolicy, *, auto_promote: bool = True) -> Decision:
    """Rollback first (safety), then promotion (when allowed), else wait."""
    rollback = should_rollback(canary, release, h2h, policy)
    if rollback.action == "rollback":
        return rollback
    promote = should_promote(canary, release, h2h, policy)
    if promote.action == "promote" and not auto_promote:
        return Decision("wait", ("automatic promotion is off; promote by hand",), promote.checks)
    return promote
