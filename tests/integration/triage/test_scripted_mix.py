"""The triage worker on the real broker and Redis: a scripted mix of traces and feedback
(duplicates, PII, failed agent runs of both kinds, late feedback, garbage) comes out with the
expected routes and nothing lost; two workers sharing the partitions give the same result."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import TopicReader, write_policy
from .mix import LATE_WINDOW_S, MAX_TEXT_CHARS, Mix, check_mix, run_mix

OUTPUTS = ("traces.triaged", "deadletter", "annotation.tasks", "preference.requests",
           "pipeline.health")


def _env(policy: Path) -> dict:
    return {"hold_s": 2, "late_window_s": LATE_WINDOW_S, "policy_path": policy,
            "tick_interval_s": 0.25, "health_interval_s": 2}


def test_scripted_mix_single_worker(triage_settings, workers, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.yaml", redaction={"max_text_chars": MAX_TEXT_CHARS})
    worker = workers.start(triage_settings, "w1", **_env(policy))
    reader = TopicReader(triage_settings, OUTPUTS)
    try:
        mix, out = run_mix(triage_settings, reader, [worker])
        check_mix(mix, out)
        health = reader.events("pipeline.health", "PipelineHealth")
        assert health and health[-1].service == "triage"
        assert sum(h.counters["traces.raw.ingested"] for h in health) >= len(mix.expected)
        assert reader.records["preference.requests"] == []  # no model: nothing to compare
    finally:
        reader.close()


@pytest.mark.slow
def test_two_workers_give_the_same_result(triage_settings, make_settings, workers,
                                          tmp_path: Path) -> None:
    from flywheel.services.triage.main import ensure_topics

    policy = write_policy(tmp_path / "policy.yaml", redaction={"max_text_chars": MAX_TEXT_CHARS})
    results = {}
    for n in (1, 2):
        settings = triage_settings if n == 1 else make_settings(topic_prefix=triage_settings.topic_prefix + "b")
        ensure_topics(settings)
        started = [workers.start(settings, f"n{n}-w{i}", **_env(policy)) for i in range(n)]
        reader = TopicReader(settings, OUTPUTS)
        try:
            mix, out = run_mix(settings, reader, started, Mix.build(seed=99))
            check_mix(mix, out)
            results[n] = out.normalised()
            if n == 2:
                health = reader.events("pipeline.health", "PipelineHealth")
                busy = {h.instance for h in health if h.counters.get("traces.raw.ingested", 0) > 0}
                assert len(busy) == 2, f"both workers should own partitions: {busy}"
        finally:
            reader.close()
            for w in started:
                w.stop()
    assert results[1] == results[2]
