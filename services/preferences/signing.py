"""Webhook signatures and retry timing (pure).

Every webhook request carries ``X-Flywheel-Signature: t=<unix seconds>,v1=<hex>`` where
``hex = HMAC-SHA256(secret, f"{t}." + body)``. Receivers recompute it over the raw body,
compare in constant time and refuse timestamps older than a tolerance (replays). Apps can use
:func:`verify_signature` as the reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import random

SIGNATURE_HEADER = "X-Flywheel-Signature"
DELIVERY_HEADER = "X-Flywheel-Delivery"
EVENT_HEADER = "X-Flywheel-Event"
# Retry on timeouts, rate limiting and server errors; any other status is a final answer.
_RETRY_STATUSES = frozenset({408, 425, 429})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """Whether ``header`` is a valid signature of ``body`` made within ``tolerance_s`` of ``now``."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


def should_retry(status: int | None) -> bool:
    """Whether a delivery that ended with HTTP ``status`` (None: no response) is retried."""
    return status is None or status >= 500 or status in _RETRY_STATUSES


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Delay before attempt ``attempt + 1``: exponential from ``base_s``, capped, jittered.

    The jitter keeps the delay within [50%, 100%] of the exponential value, so replicas that
    failed together do not retry together, while the delay still grows every attempt.
    """
    exponential = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return exponential * (0.5 + 0.5 * rng.random())
