"""The eval split and the contamination guard.

* A prompt is normalised (its user turns, NFKC, lower case, punctuation dropped, whitespace
  collapsed) and hashed. The hash alone decides whether the prompt belongs to the eval set
  (:func:`is_eval_prompt`), so every replica and every restart agrees without coordination.
* Training examples whose normalised prompt equals an eval prompt, or is a near-duplicate of
  one (Jaccard similarity of character 5-gram sets at or above a threshold), are dropped and
  counted. Candidates are found with MinHash LSH and confirmed with the exact Jaccard.

Character 5-grams keep numbers: "where is my order 1234" and "where is my order 5678" are
about 0.6 similar (different questions for a support bot), while "hi, where is my order
1234?" and "Where is my order 1234" are 0.85 similar (the same question).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from flywheel.v1.common_pb2 import ChatMessage

SHINGLE = 5
NUM_PERM = 64
BANDS = 16
_ROWS = NUM_PERM // BANDS
_PRIME = (1 << 31) - 1  # a * x + b stays below 2^62: exact in uint64
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_rng = np.random.default_rng(20_261_101)
_A = _rng.integers(1, _PRIME, size=NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, _PRIME, size=NUM_PERM, dtype=np.uint64)


def normalize_text(text: str) -> str:
    """NFKC, lower case, punctuation to spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    return " ".join(_NON_WORD.sub(" ", text).split())


def prompt_text(messages: Iterable[ChatMessage]) -> str:
    """The normalised prompt: the user turns of a conversation, one per line.

    System prompts and answers are left out: the same question under another system prompt
    is the same eval item.
    """
    return "\n".join(normalize_text(m.content) for m in messages
                     if m.role == "user" and m.content.strip())


def prompt_key(text: str) -> str:
    """SHA-256 hex of a normalised prompt."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_eval_prompt(key: str, share: float) -> bool:
    """Deterministic eval split: the first 8 bytes of the prompt hash, as a fraction, < share."""
    if share <= 0.0:
        return False
    return int(key[:16], 16) / float(1 << 64) < share


def shingles(text: str, n: int = SHINGLE) -> frozenset[str]:
    """Character n-grams of the normalised text (the whole text when shorter than n)."""
    flat = text.replace("\n", " ")
    if len(flat) <= n:
        return frozenset([flat]) if flat else frozenset()
    return frozenset(flat[i:i + n] for i in range(len(flat) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _gram_hashes(grams: Iterable[str]) -> np.ndarray:
    values = [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
              % _PRIME for g in grams]
    return np.array(values, dtype=np.uint64)


def minhash(grams: frozenset[str]) -> np.ndarray:
    """A 64-value MinHash signature of a shingle set (universal hashing mod 2^31-1)."""
    if not grams:
        return np.full(NUM_PERM, _PRIME, dtype=np.uint64)
    x = _gram_hashes(grams)
    return ((np.outer(_A, x) + _B[:, None]) % _PRIME).min(axis=1)


@dataclass(frozen=True)
class NearDuplicate:
    """A match in the index: the id it was stored under and the exact Jaccard similarity."""

    item_id: str
    similarity: float


class NearDuplicateIndex:
    """Prompts by id, queried for exact and near-duplicate matches (MinHash LSH + Jaccard)."""

    def __init__(self, threshold: float = 0.8) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("near-duplicate threshold must be in (0, 1]")
        self.threshold = threshold
        self._grams: dict[str, frozenset[str]] = {}
        self._keys: dict[str, str] = {}
        self._by_key: dict[str, str] = {}
        self._buckets: list[dict[bytes, set[str]]] = [defaultdict(set) for _ in range(BANDS)]

    def __len__(self) -> int:
        return len(self._grams)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._grams

    def keys(self) -> set[str]:
        """The prompt keys of every stored prompt."""
        return set(self._by_key)

    def add(self, item_id: str, text: str) -> None:
        """Store a normalised prompt under ``item_id`` (idempotent)."""
        if item_id in self._grams:
            return
        grams = shingles(text)
        self._grams[item_id] = grams
        self._keys[item_id] = prompt_key(text)
        self._by_key.setdefault(self._keys[item_id], item_id)
        sig = minhash(grams)
        for band in range(BANDS):
            self._buckets[band][sig[band * _ROWS:(band + 1) * _ROWS].tobytes()].add(item_id)

    def nearest(self, text: str) -> NearDuplicate | None:
        """The most similar stored prompt at or above the threshold, or None."""
        exact = self._by_key.get(prompt_key(text))
        if exact is not None:
            return NearDuplicate(exact, 1.0)
        grams = shingles(text)
        sig = minhash(grams)
        candidates: set[str] = set()
        for band in range(BANDS):
            candidates |= self._buckets[band].get(sig[band * _ROWS:(band + 1) * _ROWS].tobytes(),
                                                  set())
        best: NearDuplicate | None = None
        for item_id in sorted(candidates):
            sim = jaccard(grams, self._grams[item_id])
            if sim >= self.threshold and (best is None or sim > best.similarity):
                best = NearDuplicate(item_id, sim)
        return best


@dataclass(frozen=True)
class Verdict:
    """Why a training prompt is refused: ``eval_prompt`` (same normalised prompt as an eval
    example) or ``near_duplicate``; ``None`` when it may be trained on."""

    reason: str | None
    match: NearDuplicate | None = None


def check_training_prompt(text: str, eval_keys: set[str], index: NearDuplicateIndex) -> Verdict:
    """Decide whether a training example with normalised prompt ``text`` is contaminated."""
    if prompt_key(text) in eval_keys:
        return Verdict("eval_prompt", NearDuplicate("", 1.0))
    match = index.nearest(text)
    if match is not None:
        return Verdict("near_duplicate", match)
    return Verdict(None)


def split_contaminated(texts: Sequence[str], eval_keys: set[str],
                       index: NearDuplicateIndex) -> tuple[list[int], dict[int, Verdict]]:
    """Indices of clean prompts, and the verdicts of the contaminated ones."""
    clean: list[int] = []
    dropped: dict[int, Verdict] = {}
    for i, text in enumerate(texts):
        verdict = check_training_prompt(text, eval_keys, index)
        if verdict.reason is None:
            clean.append(i)
        else:
            dropped[i] = verdict
    return clean, dropped
