"""API key authentication with a short in-process cache in front of the database.

Clients send ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The key is verified
against its SHA-256 digest in SQL (:mod:`flywheel.keys`) in a worker thread, and the answer
(including "no such key") is cached for ``auth_cache_s`` seconds, so the hot path does not
touch the database and a revocation takes effect within that time. The cache holds digests,
never keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

import anyio

from flywheel.keys import KeyIdentity

from .errors import DependencyDown, Unauthorized

Verifier = Callable[[str], KeyIdentity | None]
_NEGATIVE_TTL_S = 5.0
_MAX_ENTRIES = 10_000


def presented_key(authorization: str | None, api_key: str | None) -> str:
    """The key from the headers.

    Raises:
        Unauthorized: no key, or an Authorization header that is not a Bearer token.
    """
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise Unauthorized("the Authorization header must be 'Bearer <API key>'")
    raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")


class KeyResolver:
    """Resolve presented keys to identities through ``verify`` (blocking), with a TTL cache."""

    def __init__(self, verify: Verifier, ttl_s: float) -> None:
        self.verify = verify
        self.ttl_s = ttl_s
        self._cache: OrderedDict[str, tuple[KeyIdentity | None, float]] = OrderedDict()
        self._lookups: dict[str, asyncio.Future] = {}  # digest -> the lookup under way

    async def resolve(self, key: str) -> KeyIdentity:
        """The identity behind ``key``.

        Raises:
            Unauthorized: unknown, malformed or revoked key.
            DependencyDown: the key store did not answer.
        """
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            identity = cached[0]
        else:
            identity = await self._lookup(digest, key, now)
        if identity is None:
            raise Unauthorized("invalid or revoked API key")
        return identity

    async def _lookup(self, digest: str, key: str, now: float) -> KeyIdentity | None:
        """One database lookup per key at a time: requests that arrive while it runs (a burst
        on a cold cache) wait for its answer instead of each starting their own."""
        running = self._lookups.get(digest)
        if running is not None:
            return await asyncio.shield(running)
        future = asyncio.get_running_loop().create_future()
        self._lookups[digest] = future
        try:
            try:
                identity = await anyio.to_thread.run_sync(self.verify, key)
            except Exception as exc:  # noqa: BLE001 - any driver error means "store unreachable"
                raise DependencyDown(f"the key store did not answer: {type(exc).__name__}",
                                     2) from None
            ttl = self.ttl_s if identity is not None else min(self.ttl_s, _NEGATIVE_TTL_S)
            if ttl > 0:
                self._cache[digest] = (identity, now + ttl)
                self._cache.move_to_end(digest)
                while len(self._cache) > _MAX_ENTRIES:
                    self._cache.popitem(last=False)
            future.set_result(identity)
            return identity
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else DependencyDown(
                "the key lookup was cancelled", 2))
            future.exception()  # retrieved: waiters re-raise it; none may be waiting
            raise
        finally:
            del self._lookups[digest]
