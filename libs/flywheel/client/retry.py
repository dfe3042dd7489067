"""Retries with exponential backoff and full jitter, honouring Retry-After.

Retried: 409 (the same id is being written), 429, 502, 503, 504 and connection errors. Not
retried: other 4xx, which no retry can fix (the client handles them per status).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRYABLE_STATUSES = frozenset({409, 429, 502, 503, 504})
_MAX_RETRY_AFTER_S = 300.0  # the server knows best, within reason


@dataclass(frozen=True)
class RetryPolicy:
    """``delay(n)`` for the n-th consecutive failure (n >= 1): full jitter over an
    exponentially growing cap, or the server's Retry-After plus a little jitter."""

    base_s: float = 0.2
    max_s: float = 30.0
    jitter_s: float = 0.25

    def delay(self, attempt: int, retry_after_s: float | None = None,
              rng: random.Random | None = None) -> float:
        rand = (rng or random).random
        if retry_after_s is not None and retry_after_s >= 0:
            return min(retry_after_s, _MAX_RETRY_AFTER_S) + rand() * self.jitter_s
        cap = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        return rand() * cap


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
