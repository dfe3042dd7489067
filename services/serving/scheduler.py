"""A small batching scheduler: one worker thread runs generation off the event loop.

Jobs (one request: its model handle and its rows, ``n`` per request) wait in a queue. The
worker takes the oldest job, then gathers jobs that arrive within ``wait_ms`` and share its
model handle, up to ``max_rows`` rows, and decodes them as one left-padded batch. Jobs for a
different handle (a version switch or the canary) wait for the next batch, so a batch never
mixes versions. Events go back through each job's ``emit`` callable, from the worker thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel.logging import get_logger
from flywheel.ml.ort_runtime import GenerationError, RowSpec, TokenEvent

from .logic import should_join_batch

log = get_logger(__name__)

DONE = None  # emitted after a job's last event


@dataclass(eq=False)
class Job:
    """One request's work. ``emit`` receives TokenEvents, then an exception or ``DONE``."""

    handle: Any
    rows: list[RowSpec]
    emit: Callable[[TokenEvent | BaseException | None], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None


class BatchScheduler:
    """Runs jobs in batches on one worker thread.

    Args:
        max_rows: most rows in one batch (a single job larger than this still runs, alone).
        wait_ms: how long to wait for more jobs after the first one arrives.
        on_batch: called with (rows, jobs, queue wait seconds of the oldest job) per batch.
    """

    def __init__(self, max_rows: int = 8, wait_ms: float = 4.0,
                 on_batch: Callable[[int, int, float], None] | None = None) -> None:
        self.max_rows = max_rows
        self.wait_s = wait_ms / 1000.0
        self._on_batch = on_batch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._carry: deque[Job] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="generation-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the running batch, fail queued jobs, and stop the worker."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        for job in self._drain():
            _safe_emit(job, GenerationError("the server is shutting down"))

    def submit(self, job: Job) -> None:
        if self._stopping.is_set():
            raise GenerationError("the server is shutting down")
        self._queue.put(job)

    @property
    def depth(self) -> int:
        return self._queue.qsize() + len(self._carry)

    def _drain(self) -> list[Job]:
        jobs = list(self._carry)
        self._carry.clear()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if item is not None:
                jobs.append(item)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            batch = self._collect()
            if batch:
                self._run(batch)

    def _next(self, timeout: float | None) -> Job | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _collect(self) -> list[Job]:
        first = self._carry.popleft() if self._carry else self._next(None)
        if first is None:
            return []
        batch, rows = [first], len(first.rows)
        for job in list(self._carry):
            if should_join_batch(first.handle, rows, job.handle, len(job.rows), self.max_rows):
                self._carry.remove(job)
                batch.append(job)
                rows += len(job.rows)
        deadline = time.monotonic() + self.wait_s
        while rows < self.max_rows and (remaining := deadline - time.monotonic()) > 0:
            job = self._next(remaining)
            if job is None:
                if self._stopping.is_set():
                    break
                continue
            if should_join_batch(first.handle, rows, job.handle, len(job.rows), self.max_rows):
                batch.append(job)
                rows += len(job.rows)
            else:
                self._carry.append(job)
        return batch

    def _run(self, batch: list[Job]) -> None:
        valid = [job for job in batch if _check(job)]
        if not valid:
            return
        owners: list[tuple[Job, int]] = []
        rows: list[RowSpec] = []
        for job in valid:
            job.started_at = time.monotonic()
            for spec in job.rows:
                rows.append(RowSpec(spec.prompt_ids, spec.params, spec.prompt_index,
                                    spec.choice_index, cancelled=job.cancelled.is_set))
                owners.append((job, len(owners)))
        remaining = {job: len(job.rows) for job in valid}
        if self._on_batch is not None:
            self._on_batch(len(rows), len(valid), max(j.started_at - j.enqueued_at for j in valid))
        try:
            for event in valid[0].handle.generator.iter_rows(rows):
                job = owners[event.row][0]
                if not _safe_emit(job, event):
                    job.cancelled.set()
                if event.finish_reason is not None:
                    remaining[job] -= 1
                    if remaining[job] == 0:
                        _safe_emit(job, DONE)
        except Exception as exc:  # a runtime failure fails this batch, never the worker
            log.error("generation_batch_failed", rows=len(rows), error=str(exc))
            for job, left in remaining.items():
                if left:
                    _safe_emit(job, exc)


def _check(job: Job) -> bool:
    """Validate a job's rows before batching, so one bad request cannot fail its batch-mates."""
    try:
        for spec in job.rows:
            job.handle.generator.check_row(spec)
    except GenerationError as exc:
        _safe_emit(job, exc)
        return False
    return True


def _safe_emit(job: Job, item: TokenEvent | BaseException | None) -> bool:
    try:
        job.emit(item)
        return True
    except RuntimeError:  # the requester's event loop is gone
        return False
