"""The annotation service layer: tasks in, leases out, labels recorded, settled and published.

Routers, pages and Faust agents stay thin and call this. SQL runs in worker threads; Redis
and Kafka on the event loop. Model work (judge, teacher, calibration) is in ``automation.py``
and runs in background tasks that :meth:`AnnotationService.drain` waits for.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any

import redis.asyncio as aredis
from sqlalchemy import Engine

from flywheel.events.codec import to_dict
from flywheel.logging import get_logger
from flywheel.v1.annotation_pb2 import AnnotationTask

from . import auth, metrics, queue, store
from .auth import Principal
from .errors import InvalidEvent, LeaseLost, NotFound
from .events import Publisher
from .kinds import CORRECT, PROTO_TO_KIND, LabelRecord, corrected_conversation, label_event, validate_label
from .settings import AnnotationSection
from .views import claim_view, labels_public, task_public

log = get_logger(__name__)

SERVICE = "annotation"
_PRINCIPAL_CACHE_S = 30.0


class AnnotationService:
    """Everything the API, the page and the consumer do with people's labels."""

    def __init__(self, config: AnnotationSection, engine: Engine, client: aredis.Redis,
                 publisher: Publisher) -> None:
        self.config = config
        self.engine = engine
        self.redis = client
        self.publisher = publisher
        self.automation: Any = None  # set by the app: automation.Automation
        self.outcomes: Counter[str] = Counter()
        self._background: set[asyncio.Task] = set()
        self._guidelines: dict[tuple[str, str | None], tuple[str, str] | None] = {}
        self._principals: dict[str, tuple[float, Principal]] = {}

    # -- background work ---------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` in the background; failures are logged, never lost silently."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)

        def done(t: asyncio.Task) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background_failed", job=name, error=repr(t.exception()))

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait until background work (judge, teacher, calibration) is finished."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- principals --------------------------------------------------------------------------

    async def principal(self, *, api_token: str | None = None,
                        session_token: str | None = None) -> Principal | None:
        """The annotator behind an API token or a session cookie (cached for 30 s)."""
        token = api_token or session_token
        if not token:
            return None
        key = ("t:" if api_token else "s:") + auth.digest(token)
        cached = self._principals.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        lookup = auth.token_principal if api_token else auth.session_principal
        found = await asyncio.to_thread(lookup, self.engine, token)
        if found is not None:
            self._principals[key] = (now + _PRINCIPAL_CACHE_S, found)
        return found

    def forget_session(self, session_token: str) -> None:
        self._principals.pop("s:" + auth.digest(session_token), None)

    # -- guidelines --------------------------------------------------------------------------

    async def guideline(self, kind: str, version: str | None) -> tuple[str, str] | None:
        """``(version, text)`` for a kind; versions are immutable, so they are cached."""
        key = (kind, version)
        if key not in self._guidelines:
            found = await asyncio.to_thread(store.get_document, self.engine, kind, version)
            if version is None:
                return found  # "newest" changes when admins add versions
            self._guidelines[key] = found
        return self._guidelines[key]

    # -- tasks in ----------------------------------------------------------------------------

    async def ingest(self, event: AnnotationTask) -> str:
        """Store a task from ``annotation.tasks`` and hand it to people, the judge or the teacher.

        Raises:
            InvalidEvent: no task id or an unknown kind.
        """
        kind = PROTO_TO_KIND.get(event.kind)
        if not event.task_id or kind is None:
            raise InvalidEvent(f"annotation task {event.task_id!r} without id or kind")
        requested = event.guideline_version or None
        found = await self.guideline(kind, requested) if requested else None
        version = found[0] if found else (await self.guideline(kind, None) or (None, ""))[0]
        payload = {k: v for k, v in to_dict(event).items() if k != "envelope"}
        payload["app_id"] = event.envelope.app_id
        payload["source_event_id"] = event.envelope.event_id
        created = await asyncio.to_thread(
            store.insert_task, self.engine, task_id=event.task_id, trace_id=event.trace_id,
            kind=kind, priority=event.priority, payload=payload,
            required=event.required_annotators or self.config.default_required,
            guideline_version=version)
        task = await asyncio.to_thread(store.get_task, self.engine, event.task_id)
        if not created:
            if task is not None and task.status == "pending":
                await queue.enqueue(self.redis, task.task_id, task.priority, task.kind)
            outcome = "duplicate"
        else:
            outcome = await self.automation.route(task) if self.automation else "people"
            if outcome == "people":
                await queue.enqueue(self.redis, task.task_id, task.priority, task.kind)
        self.outcomes[outcome] += 1
        log.info("annotation_task_ingested", task_id=event.task_id, kind=kind, outcome=outcome,
                 event_id=event.envelope.event_id)
        return outcome

    async def rebuild_queue(self) -> int:
        """Refill the Redis queues from SQL (start-up; Redis may have lost them)."""
        # No clearing first: other replicas keep claiming meanwhile. Entries whose task is
        # settled or unknown are dropped by the next claim that meets them.
        tasks = await asyncio.to_thread(store.open_tasks, self.engine)
        for task in tasks:
            name = queue.LABEL_QUEUE if task.status == "pending" else queue.REVIEW_QUEUE
            await queue.enqueue(self.redis, task.task_id, task.priority, task.kind, name)
        return len(tasks)

    # -- people ------------------------------------------------------------------------------

    async def claim(self, who: Principal, kind: str | None = None,
                    review: bool = False) -> dict[str, Any] | None:
        """Lease the next task (most uncertain first) and return it, or None when none is left."""
        name = queue.REVIEW_QUEUE if review else queue.LABEL_QUEUE
        wanted = "in_review" if review else "pending"
        while True:
            lease = await queue.claim(self.redis, who.annotator_id, self.config.lease_s, kind, name)
            if lease is None:
                return None
            task = await asyncio.to_thread(store.get_task, self.engine, lease.task_id)
            if task is not None and task.status == wanted:
                view = claim_view(task, lease, await self.guideline(task.kind,
                                                                    task.guideline_version))
                if review:
                    view["labels"] = await self.labels_view(task.task_id)
                return view
            # A stale queue entry (settled elsewhere): drop it and look again.
            await queue.release(self.redis, lease.task_id, who.annotator_id, name)
            await queue.dequeue(self.redis, lease.task_id, name)

    async def _check_lease(self, who: Principal, task_id: str, token: str | None) -> None:
        holder = await queue.lease_holder(self.redis, task_id)
        if holder is None:
            raise LeaseLost(f"no lease on task {task_id!r}: it expired or was never claimed")
        if holder[0] != who.annotator_id or (token and holder[1] != token):
            raise LeaseLost(f"task {task_id!r} is held by another annotator")

    async def held_task(self, who: Principal, task_id: str) -> dict[str, Any]:
        """A task the caller holds (for the page), with its guideline."""
        await self._check_lease(who, task_id, None)
        task = await asyncio.to_thread(store.get_task, self.engine, task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        holder = await queue.lease_holder(self.redis, task_id)
        ttl = await self.redis.pttl(f"fw:ann:lease:{task_id}")
        lease = queue.Lease(task_id, who.annotator_id, holder[1] if holder else "", max(ttl, 0))
        view = claim_view(task, lease, await self.guideline(task.kind, task.guideline_version))
        if task.status == "in_review":
            view["labels"] = await self.labels_view(task_id)
        return view

    def _prepare(self, task_id: str, raw: dict[str, Any]) -> tuple[store.TaskView, dict[str, Any]]:
        task = store.get_task(self.engine, task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        value = validate_label(task.kind, raw)
        if task.kind == CORRECT and "answer" in value:
            messages = task.payload.get("trace", {}).get("messages", [])
            value["corrected_messages"] = corrected_conversation(messages, value["answer"])
        return task, value

    async def submit(self, who: Principal, task_id: str, raw: dict[str, Any],
                     lease_token: str | None = None, review: bool = False) -> dict[str, Any]:
        """Record a label on a task the caller holds, settle the task, publish, release.

        Raises:
            LeaseLost (409), NotFound (404), InvalidLabel (422), Conflict (409).
        """
        await self._check_lease(who, task_id, lease_token)
        task, value = await asyncio.to_thread(self._prepare, task_id, raw)
        record = store.record_review if review else store.record_human_label
        recorded = await asyncio.to_thread(record, self.engine, task_id, who.annotator_id, value)
        label = recorded.final if recorded.final is not None and \
            recorded.final.label_id == recorded.label.label_id else recorded.label
        await self.publish(label)
        status = recorded.decision.status
        name = queue.REVIEW_QUEUE if review else queue.LABEL_QUEUE
        await queue.mark_labelled(self.redis, task_id, who.annotator_id)
        await queue.release(self.redis, task_id, who.annotator_id, name)
        if status != "pending":
            await queue.dequeue(self.redis, task_id, name, forget=status != "in_review")
        if status == "in_review":
            await queue.enqueue(self.redis, task_id, task.priority, task.kind, queue.REVIEW_QUEUE)
        if recorded.final is not None and self.automation is not None:
            self.automation.after_settled(recorded.task, recorded.final)
        log.info("label_recorded", task_id=task_id, label_id=label.label_id, status=status,
                 review=review)
        return {"label_id": label.label_id, "task_id": task_id, "task_status": status,
                "is_final": label.is_final}

    async def give_back(self, who: Principal, task_id: str, review: bool = False) -> bool:
        name = queue.REVIEW_QUEUE if review else queue.LABEL_QUEUE
        return await queue.release(self.redis, task_id, who.annotator_id, name)

    async def publish(self, label: LabelRecord) -> None:
        await self.publisher.publish("annotation.labels", label.task_id or label.trace_id,
                                     label_event(label, SERVICE))

    # -- reading -----------------------------------------------------------------------------

    async def usernames(self) -> dict[str, str]:
        people = await asyncio.to_thread(auth.list_annotators, self.engine)
        return {p.annotator_id: p.username for p in people}

    async def labels_view(self, task_id: str) -> list[dict[str, Any]]:
        records = await asyncio.to_thread(store.labels_for_task, self.engine, task_id)
        return labels_public(records, await self.usernames())

    async def task_detail(self, task_id: str) -> dict[str, Any]:
        task = await asyncio.to_thread(store.get_task, self.engine, task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        return {"task": task_public(task), "labels": await self.labels_view(task_id)}

    async def agreement(self) -> dict[str, Any]:
        labels = await asyncio.to_thread(store.human_labels, self.engine)
        names = await self.usernames()
        per_annotator = metrics.by_annotator(labels)
        for row in per_annotator:
            row["annotator"] = names.get(row["annotator_id"], row["annotator_id"])
        return {"by_kind": metrics.by_kind(labels), "by_annotator": per_annotator}

    async def queue_stats(self) -> dict[str, Any]:
        counts = await asyncio.to_thread(store.task_counts, self.engine)
        return {"label_queue": await queue.depth(self.redis, queue.LABEL_QUEUE),
                "review_queue": await queue.depth(self.redis, queue.REVIEW_QUEUE),
                "tasks": counts}
