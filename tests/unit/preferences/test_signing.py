"""Webhook signatures and retry timing."""

from __future__ import annotations

import hashlib
import hmac
import random

from flywheel.services.preferences.signing import backoff_delay, should_retry, sign, verify_signature

BODY = b'{"type":"preference.request"}'


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    header = sign("s3cret-s3cret-s3cret", 1_700_000_000, BODY)
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verification_refuses_other_secrets_bodies_and_stale_timestamps() -> None:
    header = sign("key-one-key-one", 1000, BODY)
    assert verify_signature("key-one-key-one", header, BODY, now=1010)
    assert not verify_signature("key-two-key-two", header, BODY, now=1010)
    assert not verify_signature("key-one-key-one", header, BODY + b" ", now=1010)
    assert not verify_signature("key-one-key-one", header, BODY, now=2000, tolerance_s=300)
    assert not verify_signature("key-one-key-one", "garbage", BODY, now=1010)


def test_retry_on_server_errors_timeouts_and_rate_limits_only() -> None:
    assert should_retry(None) and should_retry(500) and should_retry(503)
    assert should_retry(429) and should_retry(408)
    assert not should_retry(200) and not should_retry(400) and not should_retry(410)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, 1.0, 60.0, rng) for a in range(1, 9)]
    for attempt, delay in enumerate(delays, start=1):
        exp = min(60.0, 2 ** (attempt - 1))
        assert exp / 2 <= delay <= exp
    assert max(delays) <= 60.0
