"""``flywheel deadletter list`` and ``replay`` against the real broker: a trace dead-lettered
for a failed redaction is replayed after the fix (a policy with a larger limit) and decided."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from flywheel.cli.main import app as cli
from flywheel.services.triage import samples

from .conftest import TopicReader, produce, write_policy


def _env(settings) -> dict[str, str]:
    return {"FLYWHEEL_KAFKA_BOOTSTRAP": settings.kafka(), "FLYWHEEL_REDIS_URL": settings.redis(),
            "FLYWHEEL_TOPIC_PREFIX": settings.topic_prefix}


def test_list_and_replay_after_a_fix(triage_settings, workers, tmp_path: Path) -> None:
    strict = write_policy(tmp_path / "strict.yaml", redaction={"max_text_chars": 300})
    relaxed = write_policy(tmp_path / "relaxed.yaml")
    env = {"hold_s": 0.5, "tick_interval_s": 0.25}
    rng = random.Random(3)
    long_trace = samples.chat_trace(rng, "needs-fix", question=samples.shop.Question(
        "order_status", "Where is order 4821? " + "Please hurry. " * 40, "4821"))
    ok_trace = samples.chat_trace(rng, "fine")
    produce(triage_settings, [("traces.raw", *samples.record(long_trace)),
                              ("traces.raw", b"junk", b"\xff\xfe"),
                              ("traces.raw", *samples.record(ok_trace))])
    worker = workers.start(triage_settings, "strict", policy_path=strict, **env)
    reader = TopicReader(triage_settings, ["traces.triaged", "deadletter"])
    try:
        reader.wait_for(lambda: len(reader.records["deadletter"]) >= 2
                        and len(reader.records["traces.triaged"]) >= 1, 90, "dead letters", [worker])
        runner = CliRunner()
        listed = runner.invoke(cli, ["deadletter", "list", "--json"], env=_env(triage_settings))
        assert listed.exit_code == 0, listed.output
        rows = json.loads(listed.output)
        assert sorted(r["error_type"] for r in rows) == ["EventDecodeError", "RedactionError"]
        assert all(r["source"].startswith(triage_settings.topic("traces.raw")) for r in rows)
        worker.stop()
        fixed = workers.start(triage_settings, "fixed", policy_path=relaxed, **env)
        dry = runner.invoke(cli, ["deadletter", "replay", "--reason", "RedactionError", "--dry-run"],
                            env=_env(triage_settings))
        assert dry.exit_code == 0 and "needs-fix" not in {d.trace_id for d in
                                                          reader.events("traces.triaged", "TriageDecision")}
        done = runner.invoke(cli, ["deadletter", "replay", "--reason", "RedactionError"],
                             env=_env(triage_settings))
        assert done.exit_code == 0, done.output
        assert "replayed 1 of 1" in done.output
        again = runner.invoke(cli, ["deadletter", "replay", "--reason", "RedactionError"],
                              env=_env(triage_settings))
        assert "replayed 0 of 1" in again.output  # remembered: not sent twice
        reader.wait_for(lambda: "needs-fix" in {d.trace_id for d in reader.events(
            "traces.triaged", "TriageDecision")}, 90, "the replayed trace's decision", [fixed])
    finally:
        reader.close()
