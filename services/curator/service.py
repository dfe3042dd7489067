"""The curator's state machine: tables in, examples and batches out.

:class:`Curator` holds the state the agents share and applies the pure logic to it. Its
tables are mappings (Faust tables in the service, plain dicts in unit tests):

* ``pool``: pooled training examples, ``"<kind>:<content hash>"`` -> record dict;
* ``traces``: trace id -> revision and pool keys of its latest triage decision (and the
  decision itself, base64, when labels or answers will be joined to it);
* ``tasks``: annotation task id -> task (base64), for pairwise candidates and label joins;
* ``pending``: label id -> a label waiting for its trace or task;
* ``rated``: normalised-prompt key -> rated answers, for rating-gap pairs;
* ``facts``: IN2 facts (retrieved segment, question, answer);
* ``counters``: drops counted since the last batch.

Blocking work (SQL, files) runs in a thread. Every update is keyed by content, so a
redelivered message changes nothing (at-least-once delivery).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from flywheel.designs.in2 import In2Fact, synthesize
from flywheel.designs.rag_cot import is_relevant
from flywheel.events.codec import encode
from flywheel.events.envelope import new_envelope
from flywheel.logging import get_logger
from flywheel.services.curator.logic.batching import (
    batch_seed,
    replay_count,
    sample_replay,
    screen_pool,
    select_batch,
    should_cut_batch,
)
from flywheel.services.curator.logic.decontam import (
    NearDuplicateIndex,
    check_training_prompt,
    prompt_key,
    prompt_text,
)
from flywheel.services.curator.logic.examples import (
    Candidate,
    Coordinates,
    Curated,
    LabelContext,
    from_decision,
    from_label,
    from_preference,
    label_needs_context,
    split_conversation,
    with_rating_gaps,
)
from flywheel.services.curator.logic.forget import forgotten_users_path, load_forgotten_users
from flywheel.services.curator.logic.formats import seal_sft, sha256_hex
from flywheel.services.curator.logic.pairs import RatedAnswer, add_rated, rating_gap_pairs
from flywheel.services.curator.logic.records import ExampleRecord, record_from_candidate
from flywheel.services.curator.logic.writer import (
    BatchContent,
    BatchStore,
    announce_pending,
    publish_batch,
)
from flywheel.services.curator.settings import SERVICE, Curation, CuratorSettings
from flywheel.v1.annotation_pb2 import AnnotationLabel, AnnotationTask
from flywheel.v1.datasets_pb2 import DatasetBatch
from flywheel.v1.examples_pb2 import DpoExample, EvalExample, EvalKind, Lineage, SftExample
from flywheel.v1.preference_pb2 import PreferenceAnswer
from flywheel.v1.trace_pb2 import Trace
from flywheel.v1.triage_pb2 import Route, TriageDecision

log = get_logger(__name__)

Send = Callable[[str, str, bytes], Awaitable[None]]
"""Send (short topic name, key, value) and wait until the broker acknowledged it."""

MAX_FACTS = 256
UNJOINED_ROUTES = frozenset({Route.ROUTE_DROP, Route.ROUTE_UNSPECIFIED})
"""Routes whose decision is not kept whole: nothing learns from a dropped trace, so no label
or preference answer needs to be joined to it."""
PRUNE_EVERY_S = 60.0


def _b64(msg: Message) -> str:
    return base64.b64encode(encode(msg)).decode()


def _unb64(text: str, cls: type[Message]) -> Message:
    msg = cls()
    msg.ParseFromString(base64.b64decode(text))
    return msg


@dataclass
class Tables:
    """The curator's state; Faust tables in production, dicts in tests."""

    pool: MutableMapping[str, Any] = field(default_factory=dict)
    traces: MutableMapping[str, Any] = field(default_factory=dict)
    tasks: MutableMapping[str, Any] = field(default_factory=dict)
    pending: MutableMapping[str, Any] = field(default_factory=dict)
    rated: MutableMapping[str, Any] = field(default_factory=dict)
    facts: MutableMapping[str, Any] = field(default_factory=dict)
    counters: MutableMapping[str, Any] = field(default_factory=dict)


class Curator:
    """Turns decisions, labels and preferences into pooled examples, and cuts batches."""

    def __init__(self, settings: CuratorSettings, curation: Curation, store: BatchStore,
                 tables: Tables, send: Send, *, data_dir: Path,
                 clock: Callable[[], float] = time.time,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.curation = curation
        self.store = store
        self.t = tables
        self.send = send
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.ready = ready
        self.eval_index = NearDuplicateIndex(settings.near_dup_threshold)
        self.train_index = NearDuplicateIndex(settings.near_dup_threshold)
        self.metrics: Counter = Counter()
        self.forgotten: set[str] = set()
        self._forgotten_mtime = -1.0
        self._last_prune = 0.0
        self._cut_lock = asyncio.Lock()
        self.started = False
        self._verdicts: dict[str, str | None] = {}
        self._verdict_size = -1
        self._eval_keys: set[str] = set()

    # -- start ------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Create the model line, load the eval and training prompts, announce leftovers."""
        s = self.settings
        await asyncio.to_thread(self.store.ensure_model_line, s.model_line, s.base_model)
        for item_id, text in await asyncio.to_thread(self.store.eval_prompts):
            self.eval_index.add(item_id, text)
        for item_id, text in await asyncio.to_thread(self.store.trained_prompts):
            self.train_index.add(item_id, text)
        announced = await announce_pending(self.store, s.model_line, self._announce)
        self.started = True
        log.info("curator_started", model_line=s.model_line, eval_examples=len(self.eval_index),
                 trained_examples=len(self.train_index), reannounced=len(announced))

    # -- inputs -----------------------------------------------------------------------------------

    async def on_decision(self, decision: TriageDecision, coords: Coordinates) -> None:
        """A triage decision: (re)build the trace's examples; a revision replaces them."""
        trace_id = decision.trace_id or decision.trace.trace_id
        prev = self.t.traces.get(trace_id) or {}
        if prev.get("revision", 0) > decision.revision:
            self.metrics["stale_decision"] += 1
            return
        curated = from_decision(decision, coords, self.curation.rules, self.curation.designs)
        self._remove(prev.get("pool_keys", []))
        if prev.get("retracted"):
            curated.candidates = []
        keys = await self._accept(curated, "decision", decision.trace)
        entry = {"revision": decision.revision, "pool_keys": keys,
                 "retracted": prev.get("retracted", False), "received_at": self.clock(),
                 "user_id": decision.trace.user_id}
        if decision.route not in UNJOINED_ROUTES:  # labels or answers may refer to it
            entry["decision"] = _b64(decision)
        self.t.traces[trace_id] = entry
        await self._retry_pending(trace_id=trace_id)

    async def on_task(self, task: AnnotationTask, coords: Coordinates) -> None:
        """An annotation task: kept for the candidates of pairwise labels and as context."""
        self.t.tasks[task.task_id] = {"task": _b64(task), "trace_id": task.trace_id,
                                      "received_at": self.clock()}
        await self._retry_pending(task_id=task.task_id, trace_id=task.trace_id)

    async def on_label(self, label: AnnotationLabel, coords: Coordinates) -> None:
        """An annotation label: examples now, or parked until its trace or task arrives."""
        ctx = self._label_context(label)
        if label_needs_context(label, ctx):
            self.t.pending[label.label_id or label.envelope.event_id] = {
                "label": _b64(label), "trace_id": label.trace_id, "task_id": label.task_id,
                "coords": [coords.topic, coords.partition, coords.offset],
                "received_at": self.clock()}
            self.metrics["label_parked"] += 1
            return
        await self._apply_label(label, ctx, coords)

    async def on_preference(self, answer: PreferenceAnswer, coords: Coordinates) -> None:
        """A user's choice between two answers: a DPO pair."""
        decision = self._decision(answer.trace_id)
        curated = from_preference(answer, coords, self.curation.rules, decision)
        await self._accept(curated, "preference", decision.trace if decision else None)

    # -- joins ------------------------------------------------------------------------------------

    def _decision(self, trace_id: str) -> TriageDecision | None:
        entry = self.t.traces.get(trace_id) or {}
        if "decision" not in entry:
            return None
        return _unb64(entry["decision"], TriageDecision)

    def _label_context(self, label: AnnotationLabel) -> LabelContext:
        task_entry = self.t.tasks.get(label.task_id) if label.task_id else None
        task = _unb64(task_entry["task"], AnnotationTask) if task_entry else None
        trace_id = label.trace_id or (task.trace_id if task is not None else "")
        return LabelContext(decision=self._decision(trace_id), task=task)

    async def _apply_label(self, label: AnnotationLabel, ctx: LabelContext,
                           coords: Coordinates) -> None:
        curated = from_label(label, ctx, coords, self.curation.rules, self.curation.designs)
        if curated.skipped:
            self.metrics[f"label_{curated.skipped}"] += 1
        if curated.retract_trace:
            self._retract(curated.retract_trace)
        await self._accept(curated, "label", ctx.trace)

    async def _retry_pending(self, *, trace_id: str = "", task_id: str = "") -> None:
        for key, entry in list(self.t.pending.items()):
            if not ((trace_id and entry.get("trace_id") == trace_id)
                    or (task_id and entry.get("task_id") == task_id)):
                continue
            label = _unb64(entry["label"], AnnotationLabel)
            ctx = self._label_context(label)
            if label_needs_context(label, ctx):
                continue
            self.t.pending.pop(key, None)
            await self._apply_label(label, ctx, Coordinates(*entry["coords"]))

    async def flush_pending(self) -> None:
        """Labels that waited longer than the join timeout are used with what is known."""
        deadline = self.clock() - self.settings.join_timeout_s
        for key, entry in list(self.t.pending.items()):
            if entry.get("received_at", 0.0) > deadline:
                continue
            self.t.pending.pop(key, None)
            label = _unb64(entry["label"], AnnotationLabel)
            self.metrics["label_join_timeout"] += 1
            await self._apply_label(label, self._label_context(label),
                                    Coordinates(*entry["coords"]))

    # -- pooling ----------------------------------------------------------------------------------

    def _remove(self, keys: list[str]) -> None:
        for key in keys:
            self.t.pool.pop(key, None)

    def _retract(self, trace_id: str) -> None:
        entry = dict(self.t.traces.get(trace_id) or {})
        self._remove(entry.get("pool_keys", []))
        entry.update(pool_keys=[], retracted=True)
        entry.setdefault("received_at", self.clock())
        self.t.traces[trace_id] = entry

    async def _accept(self, curated: Curated, origin: str, trace: Trace | None) -> list[str]:
        for rated in curated.rated:
            curated = with_rating_gaps(curated, self._rating_gaps(rated), self.curation.rules)
        for example in curated.evals:
            await self._add_eval(example)
        keys = []
        for candidate in curated.candidates:
            keys.append(await self._pool(candidate, origin))
            if trace is not None and candidate.kind == "sft":
                self._collect_facts(trace, candidate)
        return keys

    def _rating_gaps(self, rated: RatedAnswer) -> list[DpoExample]:
        key = prompt_key(prompt_text(rated.prompt))
        earlier = [RatedAnswer.from_dict(d) for d in (self.t.rated.get(key) or [])]
        pairs = rating_gap_pairs(rated, earlier, self.curation.rules.min_rating_gap)
        self.t.rated[key] = [r.to_dict() for r in add_rated(earlier, rated)]
        return pairs

    async def _pool(self, candidate: Candidate, origin: str) -> str:
        record = record_from_candidate(candidate, received_at=self.clock(), origin=origin)
        if record.key not in self.t.pool:
            self.t.pool[record.key] = record.to_dict()
            self.metrics[f"pooled_{record.kind}"] += 1
        topic = "examples.sft" if record.kind == "sft" else "examples.dpo"
        await self._emit_example(topic, candidate.example)
        return record.key

    async def _emit_example(self, topic: str, example: SftExample | DpoExample | EvalExample
                            ) -> None:
        event = type(example)()
        event.CopyFrom(example)
        event.envelope.CopyFrom(new_envelope(event, SERVICE, event_id=str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"flywheel:{topic}:{example.example_id}"))))
        await self.send(topic, example.example_id, encode(event))

    async def _add_eval(self, example: EvalExample) -> None:
        text = prompt_text(example.prompt)
        if self.train_index.nearest(text) is not None:
            self.metrics["eval_seen_in_training"] += 1
            return
        source = "system_eval" if example.kind == EvalKind.EVAL_KIND_SYSTEM else "model_eval"
        result = await asyncio.to_thread(self.store.add_eval, example, text, source)
        if result == "exists":
            return
        self.eval_index.add(example.example_id, text)
        self.metrics[f"eval_{result}"] += 1
        await self._emit_example("examples.eval", example)

    def _collect_facts(self, trace: Trace, candidate: Candidate) -> None:
        if not self.curation.designs.in2.enabled or not trace.context_documents:
            return
        prompt, answer = split_conversation(trace.messages)
        question = prompt[-1].content if prompt else ""
        text = answer[-1].content if answer and answer[-1].role == "assistant" else ""
        for doc in trace.context_documents:
            if question and text and is_relevant(doc, text, self.curation.designs.rag_cot
                                                 .min_answer_recall):
                key = sha256_hex(f"{doc.content}\n{question}")
                self.t.facts[key] = {"segment": doc.content, "question": question,
                                     "answer": text, "intent": candidate.example.intent,
                                     "trace_id": trace.trace_id, "user_id": trace.user_id,
                                     "received_at": self.clock()}

    # -- housekeeping -----------------------------------------------------------------------------

    async def tick(self) -> DatasetBatch | None:
        """Timer body: purge forgotten users, flush stale joins, prune, maybe cut a batch."""
        if not self.started or not self.ready():
            return None
        self._refresh_forgotten()
        await self.flush_pending()
        now = self.clock()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            self.prune(now)
        return await self.maybe_cut()

    def _refresh_forgotten(self) -> None:
        path = forgotten_users_path(self.data_dir)
        mtime = path.stat().st_mtime if path.exists() else 0.0
        if mtime == self._forgotten_mtime:
            return
        self._forgotten_mtime = mtime
        self.forgotten = load_forgotten_users(self.data_dir)
        self.purge_users(self.forgotten)

    def purge_users(self, users: set[str]) -> int:
        """Drop pooled examples, traces, facts and ratings that hold any of ``users``."""
        if not users:
            return 0
        gone = 0
        for key, value in list(self.t.pool.items()):
            if users.intersection(value.get("user_ids", [])):
                self.t.pool.pop(key, None)
                gone += 1
        for table, field_name in ((self.t.facts, "user_id"),):
            for key, value in list(table.items()):
                if value.get(field_name) in users:
                    table.pop(key, None)
                    gone += 1
        for key, value in list(self.t.traces.items()):
            if value.get("user_id") in users:
                self.t.traces.pop(key, None)
                gone += 1
        for key, value in list(self.t.rated.items()):
            kept = [r for r in value if r.get("user_id") not in users]
            if len(kept) != len(value):
                self.t.rated[key] = kept
                gone += 1
        return gone

    def prune(self, now: float) -> None:
        """Forget traces, tasks, ratings and facts older than the context TTL."""
        horizon = now - self.settings.context_ttl_s
        for table in (self.t.traces, self.t.tasks, self.t.facts):
            for key, value in list(table.items()):
                if value.get("received_at", now) < horizon:
                    table.pop(key, None)

    # -- batches ----------------------------------------------------------------------------------

    def _contamination(self, text: str) -> str | None:
        """check_training_prompt, memoised until the eval set grows."""
        if self._verdict_size != len(self.eval_index):
            self._verdicts.clear()
            self._verdict_size = len(self.eval_index)
            self._eval_keys = self.eval_index.keys()
        if text not in self._verdicts:
            self._verdicts[text] = check_training_prompt(text, self._eval_keys,
                                                         self.eval_index).reason
        return self._verdicts[text]

    def _count_dropped(self, reasons: Counter) -> None:
        if reasons:
            current = Counter(self.t.counters.get("dropped") or {})
            current.update(reasons)
            self.t.counters["dropped"] = dict(current)
            self.metrics.update({f"dropped_{k}": v for k, v in reasons.items()})

    async def maybe_cut(self) -> DatasetBatch | None:
        """Screen the pool, and cut, write and announce a batch when the policy says so."""
        async with self._cut_lock:
            now = self.clock()
            records = [ExampleRecord.from_dict(v) for v in list(self.t.pool.values())]
            if not records:
                return None
            batched = await asyncio.to_thread(self.store.batched_hashes,
                                              [r.content_hash for r in records])
            policy = self.curation.policy
            screened = screen_pool(records, policy=policy, now=now, batched=batched,
                                   forgotten_users=self.forgotten,
                                   eval_keys=set(), eval_index=self.eval_index,
                                   contamination=self._contamination)
            self._remove(list(screened.removed))
            self._count_dropped(screened.dropped())
            selection = select_batch(screened.eligible, policy, self.curation.caps)
            decision = should_cut_batch(selection.stats(now), policy)
            if not decision.cut:
                return None
            content = await self._content(selection.sft, selection.dpo, selection.deferred,
                                          decision.reason)
            return await self._publish(content)

    async def _content(self, sft: list[ExampleRecord], dpo: list[ExampleRecord],
                       deferred: Counter, reason: str) -> BatchContent:
        line, share = self.settings.model_line, self.curation.policy.replay_share
        seed = batch_seed(sft + dpo)
        extra = self._in2_records(sft, seed)
        replay = {}
        for kind, new in (("sft", sft), ("dpo", dpo)):
            candidates = await asyncio.to_thread(self.store.replay_candidates, line, kind)
            replay[kind] = sample_replay(candidates, replay_count(len(new), share), seed)
        return BatchContent(
            model_line=line, sft=sft + extra, dpo=dpo, replay_sft=replay["sft"],
            replay_dpo=replay["dpo"], eval_rows=await asyncio.to_thread(self.store.eval_rows),
            designs=self.curation.designs.enabled(),
            dropped=dict(self.t.counters.get("dropped") or {}), deferred=dict(deferred),
            cut_reason=reason, policy=_policy_dict(self.curation))

    def _in2_records(self, sft: list[ExampleRecord], seed: str) -> list[ExampleRecord]:
        config = self.curation.designs.in2
        facts = sorted(self.t.facts.values(), key=lambda f: f.get("received_at", 0.0))
        if not config.enabled or not facts:
            return []
        chosen = [In2Fact(f["segment"], f["question"], f["answer"], f.get("intent", ""),
                          Lineage(trace_ids=[f["trace_id"]],
                                  user_ids=[f["user_id"]] if f.get("user_id") else []))
                  for f in facts[-MAX_FACTS:]]
        out = []
        for example in synthesize(chosen, [], config, int(seed[:8], 16)):
            text = prompt_text(example.messages)
            if self._contamination(text) is not None:
                continue
            candidate = Candidate("sft", seal_sft(example), 1.0, text)
            out.append(record_from_candidate(candidate, received_at=self.clock(), origin="in2"))
        return out

    async def _publish(self, content: BatchContent) -> DatasetBatch:
        async def release(row: Any) -> None:
            self._remove([r.key for r in content.new_records()])
            self.t.counters["dropped"] = {}
            for record in content.new_records():
                self.train_index.add(record.example_id, record.prompt_text)

        row = await publish_batch(self.store, content, self._announce, release)
        self.metrics["batches"] += 1
        log.info("batch_cut", batch_id=row.batch_id, version=row.version,
                 model_line=row.model_line, reason=content.cut_reason, **row.counts)
        return row

    async def _announce(self, event: DatasetBatch) -> None:
        await self.send("datasets.batches", event.model_line, encode(event))


def _policy_dict(curation: Curation) -> dict[str, Any]:
    return {**asdict(curation.policy), "max_source_share": curation.caps.max_source_share,
            "max_intent_share": curation.caps.max_intent_share,
            "source_caps": dict(curation.caps.source_shares),
            "eval_share": curation.rules.eval_share}
