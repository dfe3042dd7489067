"""Duplicate detection: exact (normalised hash) and near (MinHash over word shingles + LSH).

A trace's dedupe text is its conversation without the system prompt: every user, assistant
and tool message, tool calls included, after PII redaction. Two fingerprints come from it:

* the **exact key**: a hash of the text after normalisation (Unicode NFKC, case folded,
  punctuation dropped, whitespace collapsed), so "Where is order 12?" and "where is order 12"
  are the same;
* a **MinHash signature** over word 3-shingles and its **LSH band keys**. Two texts whose
  estimated Jaccard similarity reaches the policy threshold are near-duplicates.

Numbers matter in this domain (an order number changes the right answer), so the set of numbers
in the text is part of every band key: texts that differ only in their numbers never become
near-duplicate candidates. The first occurrence of a key wins; the shared store that makes this
hold across partitions and restarts is :mod:`flywheel.services.triage.dedupe_store`.

All functions here are pure; hashing is stable across processes (no ``hash()``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"\d+")
_MERSENNE_SEED = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class MinHashConfig:
    """Shape of the near-duplicate index: ``num_perm = bands * rows``."""

    num_perm: int = 64
    bands: int = 16
    shingle: int = 3
    seed: int = 1

    def __post_init__(self) -> None:
        if self.num_perm % self.bands:
            raise ValueError("num_perm must be a multiple of bands")

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands


@dataclass(frozen=True)
class Fingerprint:
    """What the duplicate store needs to know about one trace."""

    exact: str
    bands: tuple[str, ...]
    signature: bytes
    empty: bool = False


@dataclass(frozen=True)
class DuplicateVerdict:
    """``kind`` is ``"none"``, ``"exact"`` or ``"near"``; ``of`` the first occurrence's trace id."""

    kind: str = "none"
    of: str = ""
    similarity: float = 0.0

    @property
    def is_duplicate(self) -> bool:
        return self.kind != "none"


NOT_DUPLICATE = DuplicateVerdict()


def dedupe_text(trace) -> str:
    """The text two traces must share to be duplicates: the conversation minus system prompts."""
    parts: list[str] = []
    for m in trace.messages:
        if m.role in ("system", "developer"):
            continue
        if m.content:
            parts.append(f"{m.role}: {m.content}")
        for call in m.tool_calls:
            parts.append(f"call {call.function.name} {call.function.arguments}")
    return "\n".join(parts)


def normalise(text: str) -> str:
    """Case-folded NFKC text without punctuation, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _WS.sub(" ", _PUNCT.sub(" ", text)).strip()


def exact_key(normalised: str) -> str:
    """128-bit hex digest of normalised text."""
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=16).hexdigest()


def numbers_key(normalised: str) -> str:
    """A short digest of the sorted numbers in the text ("" when there are none)."""
    nums = sorted(_NUMBER.findall(normalised))
    if not nums:
        return ""
    return hashlib.blake2b(" ".join(nums).encode(), digest_size=4).hexdigest()


def shingle_hashes(normalised: str, size: int = 3) -> np.ndarray:
    """CRC-32 hashes of the word ``size``-grams (one shingle for shorter texts). Repeated
    shingles stay: a minimum does not care about repeats, and skipping the set is faster."""
    words = normalised.split(" ")
    if len(words) <= size:
        grams = [normalised]
    else:
        grams = [" ".join(words[i:i + size]) for i in range(len(words) - size + 1)]
    return np.array([zlib.crc32(g.encode("utf-8")) for g in grams], dtype=np.uint64)


def _permutations(cfg: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    key = (cfg.num_perm, cfg.seed)
    perms = _PERMS.get(key)
    if perms is None:
        perms = _PERMS[key] = _make_perms(cfg.num_perm, cfg.seed)
    return perms


def _make_perms(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(seed))
    a = rng.integers(1, 2**63, size=n, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=n, dtype=np.uint64)
    return a, b


_PERMS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def minhash(hashes: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """The MinHash signature (``num_perm`` uint32) of a set of shingle hashes.

    Each permutation is a multiply-shift hash ``(a*x + b) mod 2**64 >> 32`` with a random odd
    ``a``; numpy's uint64 arithmetic wraps, which is the modulus.
    """
    a, b = _permutations(cfg)
    if hashes.size == 0:
        return np.full(cfg.num_perm, 0xFFFFFFFF, dtype=np.uint32)
    with np.errstate(over="ignore"):
        mixed = (a[:, None] * hashes[None, :] + b[:, None]) >> np.uint64(32)
    return mixed.min(axis=1).astype(np.uint32)


def _band_mixers(rows: int) -> np.ndarray:
    mixers = _MIXERS.get(rows)
    if mixers is None:
        rng = np.random.Generator(np.random.PCG64(rows))
        mixers = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
        _MIXERS[rows] = mixers
    return mixers


_MIXERS: dict[int, np.ndarray] = {}


def band_keys(signature: np.ndarray, cfg: MinHashConfig, numbers: str) -> tuple[str, ...]:
    """One key per LSH band: ``<numbers>:<band>:<64-bit mix of the band's rows>``."""
    with np.errstate(over="ignore"):
        mixed = (signature.reshape(cfg.bands, cfg.rows).astype(np.uint64)
                 * _band_mixers(cfg.rows)).sum(axis=1, dtype=np.uint64)
    return tuple(f"{numbers}:{i}:{v:016x}" for i, v in enumerate(mixed.tolist()))


def fingerprint(text: str, cfg: MinHashConfig) -> Fingerprint:
    """Exact key, band keys and signature bytes of a dedupe text."""
    norm = normalise(text)
    sig = minhash(shingle_hashes(norm, cfg.shingle), cfg)
    return Fingerprint(exact_key(norm), band_keys(sig, cfg, numbers_key(norm)),
                       sig.astype("<u4").tobytes(), empty=not norm)


def estimate_jaccard(sig_a: bytes, sig_b: bytes) -> float:
    """Share of equal MinHash rows: an unbiased estimate of the Jaccard similarity."""
    a = np.frombuffer(sig_a, dtype="<u4")
    b = np.frombuffer(sig_b, dtype="<u4")
    if a.size == 0 or a.size != b.size:
        return 0.0
    return float(np.count_nonzero(a == b)) / a.size


def judge_duplicate(trace_id: str, exact_owner: str | None, band_owners: list[str | None],
                    signatures: dict[str, bytes], own_signature: bytes, threshold: float,
                    roots: dict[str, str] | None = None) -> DuplicateVerdict:
    """Decide from the store's answers whether ``trace_id`` duplicates an earlier trace.

    Args:
        trace_id: the trace being checked.
        exact_owner: the trace that first claimed the exact key (None or ``trace_id``: us).
        band_owners: per band, the trace that first claimed that band bucket.
        signatures: signatures of the candidate owners that the store still holds.
        own_signature: this trace's signature.
        threshold: minimum estimated Jaccard similarity for a near-duplicate.
        roots: for owners that were themselves duplicates, their first occurrence.

    Returns:
        The verdict, pointing at the first occurrence (following ``roots`` one step).
    """
    roots = roots or {}
    if exact_owner and exact_owner != trace_id:
        return DuplicateVerdict("exact", roots.get(exact_owner, exact_owner), 1.0)
    best: tuple[float, str] | None = None
    for owner in dict.fromkeys(o for o in band_owners if o and o != trace_id):
        sig = signatures.get(owner)
        if sig is None:
            continue
        sim = estimate_jaccard(own_signature, sig)
        if sim >= threshold and (best is None or sim > best[0]):
            best = (sim, owner)
    if best is None:
        return NOT_DUPLICATE
    return DuplicateVerdict("near", roots.get(best[1], best[1]), round(best[0], 4))
