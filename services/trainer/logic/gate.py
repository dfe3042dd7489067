"""The evaluation gate: may a trained version be proposed as a candidate?

Pure decision over numbers that were already measured (no model, no I/O)::

    decision = should_propose(candidate_scores, release_scores, Margins(primary=0.02))
    decision.passed, decision.reasons

Rules, each one line in ``reasons``:

1. primary metric (held-out task metric, e.g. exact match): the candidate may be worse than
   the current release by at most ``margins.primary``; with ``margins.min_primary`` set it
   must also reach that floor;
2. every slice the release also has (slices of earlier batches: forgetting) may regress by at
   most its own margin (``margins.slices[name]``, else ``margins.slice_default``); slices
   only the candidate has are reported, not gated;
3. optional floors: pairwise win rate against the release (``min_win_rate``) and preference
   accuracy on held-out pairs (``min_preference_accuracy``); unset floors are reported only.

A number that is missing or not finite where a rule needs it fails that rule: the gate never
proposes what it could not measure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Margins:
    """How much worse than the release a candidate may be, and optional absolute floors."""

    primary: float = 0.02
    slice_default: float = 0.05
    slices: Mapping[str, float] = field(default_factory=dict)
    min_primary: float | None = None
    min_win_rate: float | None = None
    min_preference_accuracy: float | None = None

    def __post_init__(self) -> None:
        for name, value in [("primary", self.primary), ("slice_default", self.slice_default),
                            *((f"slices[{k}]", v) for k, v in self.slices.items())]:
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"margin {name} = {value!r} must be a finite number >= 0")
        for name in ("min_primary", "min_win_rate", "min_preference_accuracy"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} = {value!r} must be in [0, 1]")

    def for_slice(self, name: str) -> float:
        return self.slices.get(name, self.slice_default)


@dataclass(frozen=True)
class Scores:
    """What the gate compares for one model: primary metric, slices and optional extras."""

    primary: float
    primary_name: str = "eval.exact_match"
    slices: Mapping[str, float] = field(default_factory=dict)
    win_rate: float | None = None
    win_rate_name: str = "win_rate"
    preference_accuracy: float | None = None


@dataclass(frozen=True)
class Check:
    """One rule applied to one number."""

    name: str
    passed: bool
    reason: str
    gated: bool = True


@dataclass(frozen=True)
class GateDecision:
    """The verdict: passed only when every gated check passed."""

    passed: bool
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.gated and not c.passed]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _not_worse(name: str, candidate: float | None, release: float | None, margin: float) -> Check:
    if not _finite(candidate):
        return Check(name, False, f"{name}: candidate value {candidate} is not a number")
    if not _finite(release):
        return Check(name, False, f"{name}: release value {release} is not a number")
    drop = release - candidate
    ok = drop <= margin + 1e-12
    verdict = "ok" if ok else f"worse by {drop:.3f} > margin {margin:.3f}"
    return Check(name, ok, f"{name}: {candidate:.3f} vs release {release:.3f} "
                           f"(margin {margin:.3f}): {verdict}")


def _floor(name: str, value: float | None, floor: float | None) -> Check:
    if floor is None:
        shown = f"{value:.3f}" if _finite(value) else "n/a"
        return Check(name, True, f"{name}: {shown} (reported, not gated)", gated=False)
    if not _finite(value):
        return Check(name, False, f"{name}: not measured but a floor of {floor:.3f} is set")
    ok = value >= floor - 1e-12
    return Check(name, ok, f"{name}: {value:.3f} {'>=' if ok else '<'} floor {floor:.3f}"
                           f"{'' if ok else ': too low'}")


def _slice_checks(candidate: Mapping[str, float], release: Mapping[str, float],
                  margins: Margins) -> list[Check]:
    checks = []
    for name in sorted(candidate):
        if name not in release:
            value = candidate[name]
            shown = f"{value:.3f}" if _finite(value) else str(value)
            checks.append(Check(name, True, f"{name}: {shown} (no release value, not gated)",
                                gated=False))
            continue
        checks.append(_not_worse(name, candidate[name], release[name], margins.for_slice(name)))
    for name in sorted(set(release) - set(candidate)):
        checks.append(Check(name, False, f"{name}: measured on the release but not on the "
                                         "candidate"))
    return checks


def should_propose(candidate: Scores, release: Scores, margins: Margins) -> GateDecision:
    """Apply the gate rules; the candidate is proposed only if every gated check passes."""
    checks = [_not_worse(candidate.primary_name, candidate.primary, release.primary,
                         margins.primary)]
    if margins.min_primary is not None:
        checks.append(_floor(f"{candidate.primary_name} floor", candidate.primary,
                             margins.min_primary))
    checks += _slice_checks(candidate.slices, release.slices, margins)
    checks.append(_floor(candidate.win_rate_name, candidate.win_rate, margins.min_win_rate))
    checks.append(_floor("preference.accuracy", candidate.preference_accuracy,
                         margins.min_preference_accuracy))
    passed = all(c.passed for c in checks if c.gated)
    return GateDecision(passed, tuple(checks))
