"""SIGKILL a triage worker in the middle of a stream of 20,000 traces, start it again: every
trace gets its decision, and the duplicates a crash causes downstream collapse by event id."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from flywheel.events.codec import decode
from flywheel.services.triage import samples

from .conftest import TopicReader, produce, write_policy

N_TRACES = 20_000
KILL_AFTER = 6_000


def _traces(n: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 10
        if kind < 7:
            trace = samples.chat_trace(rng, f"k{seed}-{i}", correct=kind != 0,
                                       pii="email" if i % 13 == 0 else None)
        else:
            trace = samples.agent_trace(rng, f"k{seed}-{i}",
                                        failure=(None, "invented_tool", "tool_timeout")[kind - 7])
        out.append(("traces.raw", *samples.record(trace)))
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_stream_loses_nothing(triage_settings, workers, tmp_path: Path) -> None:
    started = time.monotonic()
    policy = write_policy(tmp_path / "policy.yaml")
    env = {"hold_s": 0.5, "policy_path": policy, "tick_interval_s": 0.25}
    records = _traces(N_TRACES, seed=11)
    trace_ids = {key.decode() for _, key, _ in records}
    produce(triage_settings, records[: N_TRACES // 2])
    first = workers.start(triage_settings, "victim", **env)
    # The second half streams in while the first worker runs and dies.
    rest = threading.Thread(target=produce, args=(triage_settings, records[N_TRACES // 2:]))
    rest.start()
    reader = TopicReader(triage_settings, ["traces.triaged"])
    try:
        reader.wait_for(lambda: len(reader.records["traces.triaged"]) >= KILL_AFTER, 150,
                        f"{KILL_AFTER} decisions before the kill", [first])
        first.kill()
        killed_at = len(reader.records["traces.triaged"])
        second = workers.start(triage_settings, "survivor", **env)
        rest.join()

        def all_decided() -> bool:
            return len({r.key for r in reader.records["traces.triaged"]}) >= N_TRACES

        reader.wait_for(all_decided, 240, "a decision for every trace", [second])
        time.sleep(2)
        reader.poll()
    finally:
        reader.close()
        rest.join()
    decisions = [decode(r.value, "TriageDecision") for r in reader.records["traces.triaged"]]
    by_event: dict[str, list] = defaultdict(list)
    for d in decisions:
        by_event[d.envelope.event_id].append(d)
    unique = [ds[0] for ds in by_event.values()]
    assert {d.trace_id for d in unique} == trace_ids  # no trace lost
    assert len(unique) == N_TRACES  # one event id per trace once duplicates are removed
    for ds in by_event.values():  # a re-emitted decision is the same decision
        assert len({d.route for d in ds}) == 1 and len({d.trace_id for d in ds}) == 1
    duplicates = len(decisions) - len(unique)
    print(f"\nkilled after {killed_at} decisions; {len(decisions)} decisions read, "
          f"{duplicates} duplicates removed by event id; {time.monotonic() - started:.0f} s")
