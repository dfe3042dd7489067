"""When to cut a batch, what goes into it, and the replay sample against forgetting.

The pool is screened first (:func:`screen_pool`): examples already in a batch, examples of
forgotten users, examples below the minimum quality, examples too long in the pool and
examples contaminated by the eval set leave the pool and are counted. The rest is balanced by
per-source and per-intent caps (:mod:`.balance`). :func:`should_cut_batch` then decides on
the selection's counts, age and mean quality. Everything here is deterministic for a given
pool, so a batch cut again after a crash has the same content.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from flywheel.services.curator.logic.balance import CapPolicy, apply_caps
from flywheel.services.curator.logic.decontam import NearDuplicateIndex, check_training_prompt
from flywheel.services.curator.logic.records import ExampleRecord

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPolicy:
    """Args:
        min_sft: cut when this many SFT examples are ready (0 disables the trigger).
        min_dpo: cut when this many DPO examples are ready (0 disables the trigger).
        max_sft: most new SFT examples in one batch (the rest waits).
        max_dpo: most new DPO examples in one batch.
        max_age_s: cut when the oldest ready example waited this long (0 disables).
        min_on_age: fewest examples an age-triggered cut needs.
        min_quality: examples below this quality (0-1) are dropped.
        min_mean_quality: no cut while the selection's mean quality is below this.
        replay_share: share of each batch replayed from earlier batches, in [0, 1).
        max_pool_age_s: examples waiting longer than this are dropped (0 disables).
    """

    min_sft: int = 64
    min_dpo: int = 32
    max_sft: int = 512
    max_dpo: int = 256
    max_age_s: float = 3600.0
    min_on_age: int = 1
    min_quality: float = 0.0
    min_mean_quality: float = 0.0
    replay_share: float = 0.2
    max_pool_age_s: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.min_sft < 0 or self.min_dpo < 0 or self.min_on_age < 1:
            raise ValueError("min_sft and min_dpo must be >= 0 and min_on_age >= 1")
        if self.max_sft < max(1, self.min_sft) or self.max_dpo < max(1, self.min_dpo):
            raise ValueError("max_sft/max_dpo must be at least 1 and at least min_sft/min_dpo")
        if not 0.0 <= self.replay_share < 1.0:
            raise ValueError("replay_share must be in [0, 1)")
        if not 0.0 <= self.min_quality <= 1.0 or not 0.0 <= self.min_mean_quality <= 1.0:
            raise ValueError("quality thresholds must be in [0, 1]")


@dataclass(frozen=True)
class PoolStats:
    """What a cut decision looks at: counts, oldest age and mean quality of the selection."""

    sft: int = 0
    dpo: int = 0
    oldest_age_s: float = 0.0
    mean_quality: float = 0.0


@dataclass(frozen=True)
class CutDecision:
    cut: bool
    reason: str


def should_cut_batch(stats: PoolStats, policy: BatchPolicy) -> CutDecision:
    """Cut when a count threshold is met, or the oldest example is old enough; never while the
    mean quality is below the minimum or the selection is empty."""
    total = stats.sft + stats.dpo
    if total == 0:
        return CutDecision(False, "empty")
    if stats.mean_quality < policy.min_mean_quality:
        return CutDecision(False, "low_mean_quality")
    if policy.min_sft and stats.sft >= policy.min_sft:
        return CutDecision(True, "sft_count")
    if policy.min_dpo and stats.dpo >= policy.min_dpo:
        return CutDecision(True, "dpo_count")
    if policy.max_age_s and stats.oldest_age_s >= policy.max_age_s and total >= policy.min_on_age:
        return CutDecision(True, "max_age")
    return CutDecision(False, "waiting")


@dataclass
class Screened:
    """The pool after screening: eligible records (oldest first) and the ones to remove."""

    eligible: list[ExampleRecord] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)  # pool key -> reason

    def dropped(self) -> Counter:
        return Counter(self.removed.values())


def screen_pool(records: Iterable[ExampleRecord], *, policy: BatchPolicy, now: float,
                batched: set[str], forgotten_users: set[str], eval_keys: set[str],
                eval_index: NearDuplicateIndex,
                contamination: Callable[[str], str | None] | None = None) -> Screened:
    """Split the pool into eligible records and records to drop, with the reason.

    ``contamination`` maps a normalised prompt to the reason it may not be trained on (or
    None); by default :func:`~.decontam.check_training_prompt` against the eval set. The
    curator passes a memoised one so a large pool is not re-hashed on every check.
    """
    if contamination is None:
        def contamination(text: str) -> str | None:
            return check_training_prompt(text, eval_keys, eval_index).reason
    out = Screened()
    for record in sorted(records, key=lambda r: (r.received_at, r.key)):
        if record.content_hash in batched:
            out.removed[record.key] = "already_batched"
        elif forgotten_users.intersection(record.user_ids):
            out.removed[record.key] = "forgotten_user"
        elif record.quality < policy.min_quality:
            out.removed[record.key] = "low_quality"
        elif policy.max_pool_age_s and now - record.received_at > policy.max_pool_age_s:
            out.removed[record.key] = "expired"
        elif (reason := contamination(record.prompt_text)) is not None:
            out.removed[record.key] = reason
        else:
            out.eligible.append(record)
    return out


@dataclass
class Selection:
    """The new examples of the next batch and why others wait."""

    sft: list[ExampleRecord] = field(default_factory=list)
    dpo: list[ExampleRecord] = field(default_factory=list)
    deferred: Counter = field(default_factory=Counter)

    def stats(self, now: float) -> PoolStats:
        chosen = self.sft + self.dpo
        if not chosen:
            return PoolStats()
        return PoolStats(len(self.sft), len(self.dpo),
                         max(0.0, now - min(r.received_at for r in chosen)),
                         sum(r.quality for r in chosen) / len(chosen))


def select_batch(eligible: Sequence[ExampleRecord], policy: BatchPolicy,
                 caps: CapPolicy) -> Selection:
    """Balance the eligible records per kind under the caps and the batch capacity."""
    out = Selection()
    for kind, capacity in (("sft", policy.max_sft), ("dpo", policy.max_dpo)):
        capped = apply_caps([r for r in eligible if r.kind == kind], capacity, caps,
                            lambda r: r.source, lambda r: r.intent)
        setattr(out, kind, capped.selected)
        out.deferred.update(capped.deferred)
    return out


def replay_count(new_count: int, share: float) -> int:
    """How many earlier examples to add so that they make up ``share`` of the batch."""
    if new_count <= 0 or share <= 0.0:
        return 0
    return math.floor(new_count * share / (1.0 - share))


def _rank(seed: str, content_hash: str) -> str:
    return hashlib.sha256(f"{seed}:{content_hash}".encode()).hexdigest()


def batch_seed(records: Iterable[ExampleRecord]) -> str:
    """A seed derived from the batch's new content: the same batch always gets the same one."""
    joined = "\n".join(sorted(r.key for r in records))
    return hashlib.sha256(joined.encode()).hexdigest()


def sample_replay(candidates: Sequence[ExampleRecord], count: int, seed: str
                  ) -> list[ExampleRecord]:
    """A deterministic sample of ``count`` earlier examples (ranked by a seeded hash)."""
    ranked = sorted(candidates, key=lambda r: _rank(seed, r.content_hash))
    return ranked[:count]


def shuffle_rows(records: Sequence[ExampleRecord], seed: str) -> list[ExampleRecord]:
    """Mix new and replayed examples in a deterministic order."""
    return sorted(records, key=lambda r: _rank(seed, r.key))
