"""Pure decisions around a training job: what to do with a delivered batch, how many steps,
how much replay, which pairs to hold out, and the exact-match win rate.

Nothing here touches a model, the database or the broker.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# Statuses after which a batch counts as trained (the outcome is in the registry).
DONE_STATUSES = frozenset({"candidate", "rejected", "canary", "released", "rolled_back"})
# Failure kinds that a redelivery retries by itself: the job did not fail on its own.
RETRYABLE_FAILURES = frozenset({"interrupted", "abandoned"})


@dataclass(frozen=True)
class Attempt:
    """One registry version trained on a batch: its number, status and failure kind."""

    version: int
    status: str
    failure_kind: str = ""


@dataclass(frozen=True)
class BatchAction:
    """What to do with a delivered batch.

    ``train``: start a new version; ``republish``: the batch was trained (version
    ``version``), announce its outcome again; ``skip``: leave it (``reason`` says why).
    ``abandon`` lists versions left in ``training`` by a trainer that died; they are marked
    failed before anything else happens.
    """

    kind: Literal["train", "republish", "skip"]
    version: int | None = None
    reason: str = ""
    abandon: tuple[int, ...] = ()


def decide_batch_action(attempts: Sequence[Attempt], *, retry_failed: bool = False,
                        force: bool = False) -> BatchAction:
    """Make the registry idempotent per batch id.

    Called while holding the model line's lock, so a version still in ``training`` belongs
    to a trainer that died (its lock expired): it is abandoned and the batch trained again.
    A batch with a finished version is announced again rather than retrained (``force``
    retrains it). A batch whose last attempt failed on its own (bad data, NaN loss, out of
    memory) is skipped on redelivery; ``retry_failed`` (``flywheel train --batch ID``)
    trains it again. Interrupted and abandoned attempts are retried by a redelivery.
    """
    abandon = tuple(a.version for a in attempts if a.status == "training")
    done = [a for a in attempts if a.status in DONE_STATUSES]
    if done and not force:
        latest = max(done, key=lambda a: a.version)
        return BatchAction("republish", latest.version, f"already trained as v{latest.version}"
                                                        f" ({latest.status})", abandon)
    failed = [a for a in attempts if a.status == "failed"]
    if force or retry_failed or not failed or abandon:
        return BatchAction("train", abandon=abandon)
    latest = max(failed, key=lambda a: a.version)
    if latest.failure_kind in RETRYABLE_FAILURES:
        return BatchAction("train", reason=f"v{latest.version} was {latest.failure_kind}")
    return BatchAction("skip", latest.version,
                       f"v{latest.version} failed; retry with `flywheel train --batch ID`")


def plan_steps(n_items: int, batch_size: int, epochs: float, max_steps: int,
               min_steps: int = 1) -> int:
    """Optimizer steps for ``epochs`` passes over ``n_items``, within [min_steps, max_steps].

    No items means no steps.
    """
    if n_items <= 0 or max_steps <= 0:
        return 0
    steps = math.ceil(epochs * n_items / max(1, batch_size))
    return max(min(min_steps, max_steps), min(steps, max_steps))


def replay_top_up(n_rows: int, n_replay_included: int, target_share: float) -> int:
    """How many earlier examples to add so replay makes up ``target_share`` of the rows.

    ``n_rows`` already holds ``n_replay_included`` replayed rows (the curator mixes replay
    into the batch file); nothing is added when that share already reaches the target.
    """
    if not 0 <= target_share < 1:
        raise ValueError(f"replay share {target_share} must be in [0, 1)")
    if n_rows <= 0:
        return 0
    missing = (target_share * n_rows - n_replay_included) / (1 - target_share)
    return max(0, math.ceil(missing - 1e-9))


def _unit_hash(key: str) -> float:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_heldout(keys: Sequence[str], share: float, cap: int) -> tuple[list[int], list[int]]:
    """Indices (train, held out): each key is held out when its hash falls below ``share``.

    Deterministic per key, so a retry holds out the same items. At most ``cap`` are held out
    and at least one item stays for training.
    """
    if share <= 0 or cap <= 0 or len(keys) < 2:
        return list(range(len(keys))), []
    ranked = sorted((h, i) for i, h in enumerate(_unit_hash(k) for k in keys) if h < share)
    held = sorted(i for _, i in ranked[: min(cap, len(keys) - 1)])
    held_set = set(held)
    return [i for i in range(len(keys)) if i not in held_set], held


@dataclass(frozen=True)
class WinRate:
    """Pairwise outcome of candidate against release: wins, losses, ties and the rate."""

    wins: int
    losses: int
    ties: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def rate(self) -> float:
        """Share of comparisons won, ties counting half (0.5 when nothing was compared)."""
        return (self.wins + 0.5 * self.ties) / self.n if self.n else 0.5


def exact_match_win_rate(candidate_correct: Sequence[bool],
                         release_correct: Sequence[bool]) -> WinRate:
    """Win rate judged by the task metric: right where the release was wrong wins."""
    if len(candidate_correct) != len(release_correct):
        raise ValueError("candidate and release were scored on different items")
    wins = sum(1 for c, r in zip(candidate_correct, release_correct) if c and not r)
    losses = sum(1 for c, r in zip(candidate_correct, release_correct) if r and not c)
    return WinRate(wins, losses, len(candidate_correct) - wins - losses)
