"""The triage engine: the stateful glue between the Faust agents and the pure decision logic.

The agents hand it stream batches (:meth:`TriageEngine.on_batch`) and timer ticks
(:meth:`TriageEngine.on_tick`); everything else is here:

* **ingest**: decode, validate, redact (failures go to the dead letters), fingerprint and check
  duplicates in one Redis round trip per batch, join feedback, write the join state;
* **decide**: traces whose hold time passed (or that got strong feedback) are decided; those
  worth it are first sampled from the model in the background; verdicts for budgeted routes
  wait in a priority queue until the shared bucket grants a slot;
* **emit**: decisions (plus annotation tasks and preference requests) are sent and their
  delivery awaited *before* the state records them as decided, so a crash in between re-emits
  the same decision id instead of losing it;
* **expire**: entries past the late window are deleted; feedback whose trace never came is
  dead-lettered.

Ownership: every state entry records the partition of its trace id. The stream only delivers
owned partitions; ticks act only on entries of partitions this worker owns right now, and
only when no rebalance or table recovery is in progress. Batches and ticks hold one lock, so
state changes never interleave.

State writes go to the Faust table's in-memory store and its changelog with an explicit
partition (the entry's), because batched stream processing and timers have no single "current
event" for Faust to take the partition from.
"""

from __future__ import annotations

import asyncio
import heapq
import socket
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from flywheel.errors import EventDecodeError
from flywheel.events.codec import decode, encode
from flywheel.events.envelope import stamp
from flywheel.kafka.deadletter import DeadLetterSender
from flywheel.logging import get_logger
from flywheel.services.triage.logic import budget as budget_logic
from flywheel.services.triage.logic import state as st_logic
from flywheel.services.triage.logic.decide import (
    SchemaViolation,
    Verdict,
    build_signals,
    decide,
    ingest_report,
    needs_sampling,
    prepare_trace,
    validate_feedback,
    validate_trace,
)
from flywheel.services.triage.logic.dedupe import MinHashConfig
from flywheel.services.triage.logic.feedback import (
    add_item,
    inline_items,
    is_strong,
    item_from_event,
    summarise,
    within_window,
)
from flywheel.services.triage.logic.policy import Policy
from flywheel.services.triage.logic.quality import final_answer
from flywheel.services.triage.logic.records import (
    build_annotation_task,
    build_decision,
    build_preference_request,
    decision_id,
    trace_with_feedback,
)
from flywheel.services.triage.logic.redact import (
    CustomPattern,
    Redactor,
    redact_feedback_event,
    redact_trace,
)
from flywheel.services.triage.logic.state import TriageState
from flywheel.services.triage.logic.uncertainty import UncertaintyResult, assess_uncertainty
from flywheel.services.triage.metrics import TriageMetrics
from flywheel.services.triage.model_client import SamplingPool
from flywheel.v1 import feedback_pb2, pipeline_pb2, trace_pb2

log = get_logger(__name__)
SERVICE = "triage"


@dataclass(frozen=True)
class Record:
    """One consumed record, as much as a dead letter needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any = None

    @classmethod
    def of(cls, event) -> "Record":
        m = event.message
        return cls(m.topic, m.partition, m.offset, m.key, m.value, m.headers)


class StateStore(Protocol):
    """The join state: a Faust table in production, a dict in unit tests."""

    def get(self, key: str) -> TriageState | None: ...
    def put(self, key: str, value: TriageState, after: Sequence[Any] = ()) -> None: ...
    def delete(self, key: str, partition: int) -> None: ...
    def items(self) -> Iterable[tuple[str, TriageState]]: ...
    def drop_local(self, key: str) -> None: ...
    def __len__(self) -> int: ...
    async def flush(self) -> None: ...
    async def drain(self) -> None: ...


Send = Callable[..., Awaitable[Awaitable[Any]]]  # (topic, key, value, partition=None)


@dataclass(frozen=True)
class Topics:
    raw: str
    feedback: str
    triaged: str
    preference: str
    annotation: str
    health: str


class TriageEngine:
    """See the module docstring. Construct with :func:`flywheel.services.triage.app.create_app`."""

    def __init__(self, *, topics: Topics, tset, policy: Policy, store: StateStore, send: Send,
                 deadletters: DeadLetterSender, dedupe, budgets, sampling: SamplingPool,
                 metrics: TriageMetrics, owned: Callable[[], set[int]],
                 busy: Callable[[], bool] = lambda: False,
                 read_range: Callable[[str, int, int, int], Awaitable[list[Record]]] | None = None,
                 committed_offset: Callable[[str, int], Awaitable[int | None]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.topics = topics
        self.tset = tset
        self.policy = policy
        self.store = store
        self.send = send
        self.deadletters = deadletters
        self.dedupe = dedupe
        self.budgets = budgets
        self.sampling = sampling
        self.metrics = metrics
        self.owned = owned
        self.busy = busy
        self.read_range = read_range
        self.committed_offset = committed_offset
        self.clock = clock
        self.lock = asyncio.Lock()
        self.ready = False
        self.redactor = Redactor([CustomPattern(p.name, p.pattern, p.ignore_case)
                                  for p in policy.redaction.custom_patterns],
                                 max_chars=policy.redaction.max_text_chars)
        d = policy.dedupe
        self.minhash = MinHashConfig(d.num_perm, d.bands, d.shingle)
        self.window_s = tset.late_window_s
        self.instance = tset.instance or f"{socket.gethostname()}-{os.getpid()}"
        self._due: list[tuple[float, str]] = []
        self._expiry: list[tuple[float, str]] = []
        self._queues = {route: budget_logic.PriorityQueue(b.max_queue)
                        for route, b in policy.budgets.items()}
        self._health_at = clock()
        self._next_offset: dict[tuple[str, int], int] = {}
        self._refetched: set[tuple[str, int, int]] = set()

    # -- stream batches ------------------------------------------------------------------------

    async def on_batch(self, events: Sequence[Any]) -> None:
        """Ingest one batch of Faust events from traces.raw and feedback.events."""
        async with self.lock:
            started = time.perf_counter()
            now = self.clock()
            traces, feedbacks, dead = [], [], []
            holes, first = self._offset_holes(events)
            records = await self._refetch(holes + await self._start_holes(first))
            records += [Record.of(event) for event in events]
            for rec in records:
                if rec.topic == self.topics.raw:
                    self._parse(rec, trace_pb2.Trace, validate_trace, traces, dead)
                else:
                    self._parse(rec, feedback_pb2.FeedbackEvent, validate_feedback, feedbacks, dead)
            await self._ingest_traces(traces, dead, now)
            self._ingest_feedback(feedbacks, dead, now)
            await self._dead_letter(dead)
            if self.ready:
                await self._decide_due(now)
            await self.store.flush()
            self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _offset_holes(self, events: Sequence[Any],
                      ) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, int, int]]]:
        """Offsets skipped inside a partition this worker has been reading continuously, and
        the first offset of each partition this process had not read before.

        Faust drops messages it has fetched but not yet handed to the agents when a rebalance
        starts, and when the partition stays with this worker it does not always seek back
        to the committed offset: the dropped range would never be read while later offsets get
        committed. Each hole found here is read again (see :meth:`_refetch`). The same drop
        right after a (re)start leaves a hole before the first offset this process sees, which
        only the group's committed offset reveals (see :meth:`_start_holes`).
        """
        holes, first = [], []
        for event in events:
            m = event.message
            key = (m.topic, m.partition)
            expected = self._next_offset.get(key)
            if expected is None:
                first.append((m.topic, m.partition, m.offset))
            elif m.offset > expected:
                holes.append((m.topic, m.partition, expected, m.offset))
            if expected is None or m.offset >= expected:
                self._next_offset[key] = m.offset + 1
        return holes, first

    async def _start_holes(self, first: list[tuple[str, int, int]],
                           ) -> list[tuple[str, int, int, int]]:
        """Holes between the group's committed offset and the first offset this process read
        of a partition: a record fetched during start-up and dropped in the rebalance that
        follows (the group still holds the killed process's member until its session ends)
        was otherwise never read, and Faust committed past it as if it were a gap."""
        if self.committed_offset is None:
            return []
        holes = []
        for topic, partition, offset in first:
            try:
                committed = await self.committed_offset(topic, partition)
            except Exception as exc:  # noqa: BLE001 - cannot tell: read on, as before
                log.warning("committed_offset_unavailable", topic=topic, partition=partition,
                            error=type(exc).__name__)
                continue
            if committed is not None and committed < offset:
                holes.append((topic, partition, committed, offset))
        return holes

    async def _refetch(self, holes: list[tuple[str, int, int, int]]) -> list[Record]:
        """Read the records of each hole directly from the broker, once per hole; they are
        ingested with the batch (and redeliveries among them are skipped as usual). A hole
        whose records do not exist (transaction markers, compaction) yields nothing."""
        out: list[Record] = []
        for topic, partition, start, end in holes:
            self.metrics.count("offset_holes")
            key = (topic, partition, start)
            found: list[Record] = []
            if self.read_range is not None and key not in self._refetched:
                self._refetched.add(key)
                found = await self.read_range(topic, partition, start, end)
                out.extend(found)
            log.warning("offset_hole", topic=topic, partition=partition, missing_from=start,
                        missing_to=end - 1, refetched=len(found))
        return out

    def _parse(self, rec: Record, cls, validate, out: list, dead: list) -> None:
        short = "traces.raw" if cls is trace_pb2.Trace else "feedback.events"
        try:
            msg = decode(rec.value or b"", cls)
            validate(msg, rec.key)
        except (EventDecodeError, SchemaViolation) as exc:
            dead.append((rec, exc, type(exc).__name__, ""))
            self.metrics.input(short, "deadlettered")
            return
        out.append((rec, msg))

    async def _ingest_traces(self, items: list, dead: list, now: float) -> None:
        fresh, seen = [], set()
        for rec, trace in items:
            existing = self.store.get(trace.trace_id)
            if (existing is not None and existing.has_trace) or trace.trace_id in seen:
                self.metrics.input("traces.raw", "redelivered")
                continue
            seen.add(trace.trace_id)
            try:
                redacted, counts = redact_trace(trace, self.redactor)
            except Exception as exc:  # noqa: BLE001 - fail closed: nothing unredacted goes on
                dead.append((rec, exc, "RedactionError", trace.trace_id))
                self.metrics.input("traces.raw", "deadlettered")
                continue
            prepared = prepare_trace(redacted, counts, self.policy, self.minhash, now)
            fresh.append((rec, trace, prepared))
        verdicts = await self.dedupe.check([(t.trace_id, p.fingerprint) for _, t, p in fresh])
        for (rec, trace, prepared), dup in zip(fresh, verdicts):
            self._store_trace(rec, trace, prepared, dup, now)

    def _store_trace(self, rec: Record, trace, prepared, dup, now: float) -> None:
        tid = trace.trace_id
        trace_at = _event_time(trace, now)
        state = self.store.get(tid) or st_logic.new_state(rec.partition, now, self.window_s)
        items = list(state.feedback)
        for item in inline_items(prepared.trace, trace_at) + prepared.implicit:
            items, _ = add_item(items, item)
        strong = any(is_strong(i, self.policy.feedback.strong) for i in items)
        state = st_logic.with_trace(
            state.evolve(feedback=tuple(items)), _trace_bytes(rec, prepared),
            trace.envelope.event_id, trace_at, ingest_report(prepared, dup), now,
            self.tset.hold_s, self.window_s + _GRACE_S, decide_now=strong)
        self._put(tid, state)
        self.metrics.input("traces.raw", "ingested")
        self.metrics.redactions(prepared.pii_counts)
        if dup.is_duplicate:
            self.metrics.duplicates.labels(dup.kind).inc()
            self.metrics.count(f"duplicate.{dup.kind}")

    def _ingest_feedback(self, items: list, dead: list, now: float) -> None:
        for rec, event in items:
            try:
                redacted, counts = redact_feedback_event(event, self.redactor)
            except Exception as exc:  # noqa: BLE001 - fail closed
                dead.append((rec, exc, "RedactionError", event.trace_id))
                self.metrics.input("feedback.events", "deadlettered")
                continue
            self.metrics.redactions(counts)
            at = _event_time(event, now)
            item = item_from_event(redacted, at, f"{rec.topic}|{rec.partition}|{rec.offset}")
            state = self.store.get(event.trace_id)
            if state is None:
                state = st_logic.new_state(rec.partition, now, self.window_s + _GRACE_S)
            elif state.has_trace and not within_window(state.trace_at, at, self.window_s):
                dead.append((rec, None, "FeedbackTooLate", event.trace_id))
                self.metrics.input("feedback.events", "too_late")
                continue
            state, added = st_logic.with_feedback(state, item, now,
                                                  is_strong(item, self.policy.feedback.strong))
            if not added:
                self.metrics.input("feedback.events", "redelivered")
                continue
            self._put(event.trace_id, state)
            self.metrics.input("feedback.events", "joined" if state.has_trace else "waiting")

    async def _dead_letter(self, dead: list) -> None:
        futures = []
        for rec, exc, reason, trace_id in dead:
            message = str(exc) if exc is not None else reason
            futures.append(await self.deadletters.send_record(
                source_topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key,
                value=rec.value, headers=rec.headers, error_type=reason, error_message=message,
                trace_id=trace_id))
            self.metrics.deadletter(reason)
            log.warning("deadlettered", topic=rec.topic, partition=rec.partition,
                        offset=rec.offset, reason=reason)
        if futures:
            await asyncio.gather(*futures)

    # -- ticks --------------------------------------------------------------------------------

    async def on_tick(self) -> None:
        """Decide due traces, hand out budget slots, expire old entries."""
        if not self.ready or self.busy():
            return
        async with self.lock:
            if not self.ready or self.busy():
                return
            now = self.clock()
            await self._decide_due(now)
            await self._run_budgets(now)
            await self._expire(now)
            await self.store.flush()

    async def _decide_due(self, now: float) -> None:
        owned = self.owned()
        ready: list[tuple[str, TriageState, Verdict, UncertaintyResult | None]] = []
        seen: set[str] = set()
        while self._due and self._due[0][0] <= now:
            _, tid = heapq.heappop(self._due)
            state = self.store.get(tid)
            if tid in seen or state is None or state.status != st_logic.PENDING \
                    or state.due_at > now or state.partition not in owned or tid in self.sampling:
                continue
            seen.add(tid)
            decided = self._evaluate(tid, state)
            if decided is not None:
                ready.append(decided)
        for tid, answers in self.sampling.collect(self.tset.sampling_deadline_s).items():
            state = self.store.get(tid)
            if tid in seen or state is None or state.status != st_logic.PENDING \
                    or state.partition not in owned:
                continue
            seen.add(tid)
            self.metrics.model_calls.labels("ok" if answers else "unavailable").inc()
            trace = _trace(state)
            unc = assess_uncertainty(answers, final_answer(trace), _logprobs(trace),
                                     model_unavailable=answers is None)
            ready.append((tid, state, self._verdict(tid, state, unc), unc))
        if ready:
            await self._route(ready, now)

    def _evaluate(self, tid: str, state: TriageState):
        unc = UncertaintyResult.from_json(state.uncertainty) or self._trace_uncertainty(state)
        signals = build_signals(tid, state.report, summarise(state.feedback), unc, state.revision)
        if needs_sampling(signals, self.policy):
            if self.sampling.enabled and self.sampling.submit(tid, _trace(state)):
                return None  # decided when the samples are back
            self.metrics.model_calls.labels("unavailable").inc()
            # Nothing measured (no samples, no log-probs, or needs_sampling would be false):
            # the only change is the mark.
            unc = UncertaintyResult(model_unavailable=True)
            signals["model_unavailable"] = True
        return tid, state, decide(signals, state.report, self.policy), unc

    def _trace_uncertainty(self, state: TriageState) -> UncertaintyResult | None:
        """Samples or log-probs that came with the trace: no model call needed."""
        samples = state.report.get("samples") or []
        if len(samples) >= 2:
            trace = _trace(state)
            return assess_uncertainty(samples, final_answer(trace), _logprobs(trace), source="trace")
        if state.report.get("lp") is not None:
            return assess_uncertainty(None, "", _logprobs(_trace(state)))
        return None

    def _verdict(self, tid: str, state: TriageState, unc: UncertaintyResult | None) -> Verdict:
        signals = build_signals(tid, state.report, summarise(state.feedback), unc, state.revision)
        return decide(signals, state.report, self.policy)

    async def _route(self, ready: list, now: float) -> None:
        emit = []
        for tid, state, verdict, unc in ready:
            budget = self.policy.budgets.get(verdict.route)
            # A re-decision that keeps the route needs no budget slot: _emit settles it.
            if budget is None or (state.revision > 0 and verdict.route == state.route):
                emit.append((tid, state, verdict, unc))
                continue
            payload = {"v": verdict.to_json(), "u": unc.to_json() if unc else None}
            self._put(tid, st_logic.queued(state, payload, now))
            evicted = self._queues[verdict.route].push(
                budget_logic.QueuedItem(tid, verdict.route, verdict.priority, now))
            emit.extend(self._overflow(item, budget.overflow_route) for item in evicted)
        await self._emit([e for e in emit if e is not None], now)

    def _overflow(self, item: budget_logic.QueuedItem, route: str):
        state = self.store.get(item.trace_id)
        if state is None or state.status != st_logic.QUEUED or not state.verdict:
            return None
        self.metrics.budget.labels(item.route, "overflow").inc()
        verdict = Verdict.from_json(state.verdict["v"])
        verdict = replace(verdict, route=route,
                          reasons=verdict.reasons + (f"budget:{item.route}:overflow",))
        return item.trace_id, state, verdict, UncertaintyResult.from_json(state.verdict["u"])

    async def _run_budgets(self, now: float) -> None:
        owned = self.owned()
        emit = []
        for route, queue in self._queues.items():
            for item in queue.items():
                state = self.store.get(item.trace_id)
                if state is None or state.status != st_logic.QUEUED or state.partition not in owned:
                    queue.remove(item.trace_id)
            if not len(queue):
                continue
            b = self.policy.budgets[route]
            granted = await self.budgets.grant(route, len(queue), b.per_hour, b.bucket_size, now)
            chosen = budget_logic.select(queue, granted, now, b.max_wait_s)
            for item in chosen.granted:
                state = self.store.get(item.trace_id)
                self.metrics.budget.labels(route, "granted").inc()
                emit.append((item.trace_id, state, Verdict.from_json(state.verdict["v"]),
                             UncertaintyResult.from_json(state.verdict["u"])))
            emit.extend(self._overflow(item, b.overflow_route) for item in chosen.overflow)
            self.metrics.queued.labels(route).set(len(queue))
        await self._emit([e for e in emit if e is not None], now)

    # -- emit ---------------------------------------------------------------------------------

    async def _emit(self, items: list, now: float) -> None:
        if not items:
            return
        when = datetime.fromtimestamp(now, timezone.utc)
        for tid, state, verdict, unc in items:
            superseding = state.revision > 0
            if superseding and verdict.route == state.route:
                self._put(tid, st_logic.unchanged_after_redecide(state))
                self.metrics.count("redecided_unchanged")
                continue
            revision = state.revision + 1
            decision = build_decision(trace_with_feedback(state.trace, state.feedback), verdict,
                                      state.report, revision,
                                      state.decision_id if superseding else "",
                                      self.policy.version, unc, when)
            # Same partition number as the trace on traces.raw (both have 6 and are keyed by
            # trace id): keeps them co-partitioned and skips hashing the key in Python.
            sent = [await self.send(self.topics.triaged, tid.encode(), encode(decision),
                                    state.partition)]
            sent += await self._side_events(decision, verdict, unc, when)
            # The changelog records "decided" only once the decision is delivered: a crash in
            # between re-emits the same decision id instead of losing it.
            self._put(tid, st_logic.decided(state, verdict.route, decision.decision_id, revision,
                                            now, unc.to_json() if unc else None), after=sent)
            self.metrics.decision(verdict.route, verdict.rule, superseding)

    async def _side_events(self, decision, verdict: Verdict, unc, when: datetime) -> list:
        if verdict.route == "annotate":
            task = build_annotation_task(decision, verdict.annotation_kind,
                                         self.policy.annotation_guideline_version, when)
            return [await self.send(self.topics.annotation, task.task_id.encode(), encode(task))]
        if verdict.route == "preference" and unc is not None and unc.alternative:
            alternative, _ = self.redactor.redact(unc.alternative)
            req = build_preference_request(decision, alternative, self.tset.model_name,
                                           self.policy.preference_ttl_hours, when)
            return [await self.send(self.topics.preference, decision.trace_id.encode(), encode(req))]
        return []

    # -- expiry -------------------------------------------------------------------------------

    async def _expire(self, now: float) -> None:
        owned = self.owned()
        orphans, gone = [], []
        while self._expiry and self._expiry[0][0] <= now:
            _, tid = heapq.heappop(self._expiry)
            state = self.store.get(tid)
            if state is None or state.partition not in owned:
                continue
            if state.expires_at > now:
                heapq.heappush(self._expiry, (state.expires_at, tid))
            elif state.status == st_logic.WAITING_TRACE:
                orphans.append((tid, state))
            elif state.status == st_logic.DECIDED:
                gone.append((tid, state))
            else:  # still being decided (sampling, queued): look again later
                heapq.heappush(self._expiry, (now + 60.0, tid))
        futures = []
        for tid, state in orphans:
            for item in state.feedback:
                if item.origin:
                    topic, partition, offset = item.origin.split("|")
                    futures.append(await self.deadletters.send_record(
                        source_topic=topic, partition=int(partition), offset=int(offset),
                        key=tid.encode(), value=item.payload, error_type="OrphanFeedback",
                        error_message="no trace arrived within the late window", trace_id=tid))
                    self.metrics.deadletter("OrphanFeedback")
        await asyncio.gather(*futures)
        for tid, state in orphans + gone:
            self.store.delete(tid, state.partition)
        if orphans or gone:
            self.metrics.count("expired", len(orphans) + len(gone))

    # -- rebalancing ----------------------------------------------------------------------------

    async def on_revoked(self) -> None:
        """Partitions are being revoked: stop acting until the recovery finished, and make the
        state written so far durable before another worker reads the changelog."""
        self.ready = False
        async with self.lock:
            await self.store.drain()

    async def on_recovered(self) -> None:
        """Tables are recovered: keep only owned entries and rebuild the schedules."""
        async with self.lock:
            owned = self.owned()
            self._due, self._expiry = [], []
            for queue in self._queues.values():
                for item in queue.items():
                    queue.remove(item.trace_id)
            foreign = []
            for tid, state in list(self.store.items()):
                if state.partition not in owned:
                    foreign.append(tid)
                    continue
                self._schedule(tid, state)
            for tid in foreign:
                self.store.drop_local(tid)
            self._next_offset = {k: v for k, v in self._next_offset.items() if k[1] in owned}
            self.sampling.forget(foreign)
            self.ready = True
            log.info("triage_ready", owned=sorted(owned), entries=len(self.store),
                     dropped=len(foreign))

    def _put(self, tid: str, state: TriageState, after: Sequence[Any] = ()) -> None:
        self.store.put(tid, state, after)
        self._schedule(tid, state)

    def _schedule(self, tid: str, state: TriageState) -> None:
        if state.status == st_logic.PENDING:
            heapq.heappush(self._due, (state.due_at, tid))
        elif state.status == st_logic.QUEUED and state.verdict:
            v = state.verdict["v"]
            queue = self._queues.get(v["route"])
            if queue is not None and tid not in queue:
                queue.push(budget_logic.QueuedItem(tid, v["route"], v["priority"], state.queued_at))
        if state.expires_at and (state.status in (st_logic.WAITING_TRACE, st_logic.DECIDED)):
            heapq.heappush(self._expiry, (state.expires_at, tid))

    # -- health -------------------------------------------------------------------------------

    def health_event(self, now: float | None = None) -> pipeline_pb2.PipelineHealth:
        """Counts since the last call and current gauges, as a PipelineHealth event."""
        now = self.clock() if now is None else now
        statuses: dict[str, int] = {}
        for _, state in self.store.items():
            statuses[state.status] = statuses.get(state.status, 0) + 1
        self.metrics.pending.set(statuses.get(st_logic.PENDING, 0))
        self.metrics.entries.set(len(self.store))
        event = pipeline_pb2.PipelineHealth(service=SERVICE, instance=self.instance,
                                            window_seconds=round(now - self._health_at, 3))
        event.counters.update(self.metrics.take_window())
        event.gauges.update({f"state.{k}": float(v) for k, v in statuses.items()})
        event.gauges.update({f"queued.{r}": float(len(q)) for r, q in self._queues.items()})
        event.gauges["sampling_in_flight"] = float(self.sampling.in_flight())
        self._health_at = now
        return stamp(event, SERVICE, occurred_at=datetime.fromtimestamp(now, timezone.utc))

    async def on_health(self) -> None:
        event = self.health_event()
        await self.send(self.topics.health, SERVICE.encode(), encode(event))


_GRACE_S = 5.0


def _event_time(msg, fallback: float) -> float:
    if msg.HasField("envelope") and msg.envelope.HasField("occurred_at"):
        t = msg.envelope.occurred_at
        return t.seconds + t.nanos / 1e9
    return fallback


def _trace_bytes(rec: Record, prepared) -> bytes:
    """The redacted trace's bytes: the input record itself when redaction changed nothing
    (saves re-encoding the common case)."""
    if not prepared.pii_counts and rec.value is not None:
        return rec.value
    return prepared.trace.SerializeToString()


def _trace(state: TriageState) -> trace_pb2.Trace:
    trace = trace_pb2.Trace()
    trace.ParseFromString(state.trace)
    return trace


def _logprobs(trace):
    return trace.logprobs if trace.HasField("logprobs") else None


__all__ = ["Record", "StateStore", "Topics", "TriageEngine", "decision_id"]
