"""The batching scheduler on real onnxruntime generators: sharing, isolation, cancellation."""

from __future__ import annotations

import queue
import threading

import pytest

from flywheel.ml.ort_runtime import GenerationError, RowSpec, SamplingParams
from flywheel.services.serving.model_manager import ModelHandle
from flywheel.services.serving.scheduler import DONE, BatchScheduler, Job

pytestmark = pytest.mark.ml

CHAT = [{"role": "user", "content": "Where is my order 4821?"}]


def _handle(version: str, generators, version_artifacts) -> ModelHandle:  # noqa: ANN001
    return ModelHandle("line", version, version_artifacts[version], generators[version], 0.0)


class _Collector:
    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()

    def __call__(self, item) -> None:  # noqa: ANN001
        self.items.put(item)

    def result(self, timeout: float = 60.0):  # noqa: ANN201
        events = []
        while (item := self.items.get(timeout=timeout)) is not DONE:
            if isinstance(item, BaseException):
                return item
            events.append(item)
        return sorted((e.generation for e in events if e.generation), key=lambda g: g.choice_index)


def _job(handle: ModelHandle, ids: list[int], n: int = 1, max_tokens: int = 6) -> tuple[Job, _Collector]:
    sink = _Collector()
    params = SamplingParams(max_new_tokens=max_tokens)
    return Job(handle, [RowSpec(ids, params, 0, c) for c in range(n)], sink), sink


@pytest.fixture
def batches() -> list[tuple[int, int]]:
    return []


@pytest.fixture
def scheduler(batches) -> BatchScheduler:  # noqa: ANN001
    s = BatchScheduler(max_rows=8, wait_ms=100, on_batch=lambda rows, jobs, wait: batches.append((rows, jobs)))
    s.start()
    yield s
    s.stop()


def test_jobs_arriving_together_share_a_batch(scheduler, batches, generators, version_artifacts) -> None:  # noqa: ANN001
    h0 = _handle("0", generators, version_artifacts)
    prompts = [generators["0"].encode_prompt(p) for p in (CHAT, "Hello", "Can I return items?")]
    jobs = [_job(h0, ids, n=2 if i == 0 else 1) for i, ids in enumerate(prompts)]
    for job, _ in jobs:
        scheduler.submit(job)
    outputs = [sink.result() for _, sink in jobs]
    assert batches == [(4, 3)]
    for ids, out in zip(prompts, outputs, strict=True):
        [want] = generators["0"].generate([ids], max_new_tokens=6)
        assert [g.token_ids for g in out][0] == want.token_ids


def test_batches_never_mix_versions(scheduler, batches, generators, version_artifacts) -> None:  # noqa: ANN001
    live = {v: _handle(v, generators, version_artifacts) for v in ("0", "1")}
    handles = [live[v] for v in ("0", "1", "0", "1")]
    ids = generators["0"].encode_prompt(CHAT)
    jobs = [_job(h, ids) for h in handles]
    for job, _ in jobs:
        scheduler.submit(job)
    for handle, (_, sink) in zip(handles, jobs, strict=True):
        [want] = generators[handle.version].generate([ids], max_new_tokens=6)
        assert sink.result()[0].token_ids == want.token_ids
    assert sorted(batches) == [(2, 2), (2, 2)]


def test_an_invalid_job_fails_alone(scheduler, generators, version_artifacts) -> None:  # noqa: ANN001
    h0 = _handle("0", generators, version_artifacts)
    too_long = [5] * (generators["0"].max_positions + 1)
    bad, bad_sink = _job(h0, too_long)
    good, good_sink = _job(h0, generators["0"].encode_prompt(CHAT))
    scheduler.submit(bad)
    scheduler.submit(good)
    assert isinstance(bad_sink.result(), GenerationError)
    assert len(good_sink.result()) == 1


def test_a_cancelled_job_stops_early(scheduler, generators, version_artifacts) -> None:  # noqa: ANN001
    h0 = _handle("0", generators, version_artifacts)
    job, sink = _job(h0, generators["0"].encode_prompt(CHAT), max_tokens=50)
    job.cancelled.set()
    scheduler.submit(job)
    [out] = sink.result()
    assert out.finish_reason == "cancelled" and out.token_ids == []


def test_stop_fails_queued_jobs(generators, version_artifacts) -> None:  # noqa: ANN001
    s = BatchScheduler(max_rows=8, wait_ms=0)
    h0 = _handle("0", generators, version_artifacts)
    job, sink = _job(h0, generators["0"].encode_prompt(CHAT))
    s.submit(job)  # never started: stays queued
    threading.Thread(target=s.stop).start()
    assert isinstance(sink.result(), GenerationError)
    with pytest.raises(GenerationError):
        s.submit(_job(h0, [1, 2])[0])
