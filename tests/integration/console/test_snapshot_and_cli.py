"""The snapshot, ``flywheel status | lag | topics list | topics tail`` against a real broker,
Redis and SQLite seeded with known figures."""

from __future__ import annotations

import json
import threading
import time

import pytest
from console_seed import LINE, METRIC, TRACES, Expected, produce_events, seed
from typer.testing import CliRunner

from flywheel.services.console.collector import Collector
from flywheel.services.console.settings import ConsoleSection

runner = CliRunner()


@pytest.fixture
def seeded(console_settings):  # noqa: ANN001, ANN201
    settings = console_settings()
    return settings, seed(settings)


def _cli_env(monkeypatch: pytest.MonkeyPatch, settings) -> None:  # noqa: ANN001
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", settings.kafka())
    monkeypatch.setenv("FLYWHEEL_REDIS_URL", settings.redis())
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", settings.database())
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("COLUMNS", "200")


def _cli(*args: str) -> str:
    from flywheel.cli.main import app

    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}\n{result.exception!r}"
    return result.output


def test_the_snapshot_shows_what_was_seeded(seeded) -> None:  # noqa: ANN001
    settings, expected = seeded
    expected: Expected
    collector = Collector(settings)
    try:
        snap = collector.snapshot(rate_window_s=0.5)
    finally:
        collector.close()
    assert snap["sources"] == {"kafka": "ok", "database": "ok", "redis": "ok"}
    topics = {t["short"]: t for t in snap["topics"]}
    assert topics["traces.raw"]["end_offset"] == TRACES and topics["traces.raw"]["partitions"] == 6
    assert topics["deadletter"]["end_offset"] == sum(expected.dead_letters.values())
    assert topics["traces.raw"]["rate_per_s"] == 0.0  # nothing produced during the window
    assert snap["lag"]["groups"] == [{"group": expected.group, "lag": expected.lag_total,
                                      "max_lag": snap["lag"]["groups"][0]["max_lag"],
                                      "partitions": 6, "topics": [settings.topic("traces.raw")]}]
    dl = snap["deadletters"]
    assert dl["total"] == 5 and dl["by_reason"] == expected.dead_letters
    assert dl["by_source"] == {"traces.raw": 5} and dl["by_service"] == {"triage": 5}
    assert {(h["service"], h["instance"]) for h in snap["health"]} == {
        ("triage", "triage-1"), ("curator", "curator-1")}
    states = {s["name"]: (s["state"], s["reason"]) for s in snap["services"]}
    assert states["triage"][0] == "up" and states["curator"][0] == "up"  # recent pipeline.health
    assert states["gateway"] == ("down", "not started") and states["trainer"][0] == "down"
    assert snap["annotation"]["queue"] == {"label": expected.label_queue,
                                           "review": expected.review_queue}
    calibration = {c["criterion"]: c for c in snap["annotation"]["calibration"]}
    assert calibration["rate"]["agreement"] == 0.72 and calibration["pairwise"]["low"] is True
    prefs = snap["preferences"]
    assert (prefs["users"], prefs["questions"], prefs["at_limit"]) == (3, 6, 1)
    batches = snap["batches"]
    assert batches["count"] == 3 and [b["version"] for b in batches["history"]] == [1, 2, 3]
    assert batches["open"]["source"] == "pipeline.health"
    assert batches["open"]["sft"]["ready"] == expected.pool_sft
    line = snap["releases"]["lines"][0]
    assert (line["line"], line["current"]["version"], line["canary"]["version"]) == (LINE, 2, 3)
    assert [(p["version"], p["action"], p["value"]) for p in snap["task_metric"]["points"]] == [
        (1, "promote", METRIC[1]), (2, "promote", METRIC[2]), (3, "canary", METRIC[3])]
    models = {m["version"]: m for m in snap["models"]}
    assert models[4]["status"] == "rejected" and models[4]["gate"]["passed"] is False
    assert models[3]["metrics"]["eval.exact_match"] == METRIC[3]
    assert line["canary"]["share"] == 0.1
    json.dumps(snap)


def test_dead_letters_are_read_once_by_a_long_lived_collector(seeded) -> None:  # noqa: ANN001
    settings, _ = seeded
    settings = settings.model_copy(update={"console": ConsoleSection(min_rate_window_s=0.01)})
    collector = Collector(settings)
    try:
        first = collector.snapshot()
        assert first["deadletters"]["total"] == 5
        again = collector.snapshot()
        assert again["deadletters"]["total"] == 5  # nothing new: nothing counted twice
        produce_events(settings)  # 5 more dead letters (and more traces)
        later = collector.snapshot()
        assert later["deadletters"]["total"] == 10
        assert later["deadletters"]["by_reason"] == {"EventDecodeError": 6, "RedactionError": 4}
        rates = [t["rate_per_s"] for t in later["topics"] if t["short"] == "traces.raw"]
        assert rates[0] is not None and rates[0] > 0  # end offsets grew between samples
    finally:
        collector.close()


def test_status_lag_and_topics_list_agree(seeded, monkeypatch) -> None:  # noqa: ANN001
    settings, expected = seeded
    _cli_env(monkeypatch, settings)
    status = json.loads(_cli("status", "--json", "--rate-window", "0"))
    listed = json.loads(_cli("topics", "list", "--json"))
    lag = json.loads(_cli("lag", "--json"))
    assert {t["short"]: t["end_offset"] for t in status["topics"]} == \
        {t["short"]: t["end_offset"] for t in listed}
    assert sum(r["lag"] for r in lag) == status["lag"]["total"] == expected.lag_total
    assert [(r["group"], r["partition"], r["lag"]) for r in lag] == \
        [(r["group"], r["partition"], r["lag"]) for r in status["lag"]["rows"]]
    table = _cli("status", "--rate-window", "0")
    assert "v2, canary v3" in table and "label 4, review 1" in table
    assert "EventDecodeError: 3" in table and "1 at the limit of 3" in table
    lag_table = _cli("lag")
    assert expected.group in lag_table and "per group" in lag_table


def test_tail_decodes_filters_and_stops_at_the_end(seeded, monkeypatch) -> None:  # noqa: ANN001
    settings, _ = seeded
    _cli_env(monkeypatch, settings)
    lines = [json.loads(x) for x in _cli("topics", "tail", "traces.raw",
                                         "--from-beginning").splitlines()]
    assert len(lines) == TRACES
    assert all(x["topic"] == "traces.raw" and x["event"]["envelope"]["event_type"]
               == "flywheel.v1.Trace" for x in lines)
    key = lines[3]["key"]
    by_key = [json.loads(x) for x in _cli("topics", "tail", "traces.raw", "--from-beginning",
                                          "--key", key).splitlines()]
    assert [x["key"] for x in by_key] == [key]
    grep = _cli("topics", "tail", settings.topic("traces.raw"), "--from-beginning",
                "--grep", "order 100[0-4]", "--grep", "ships").splitlines()
    assert len(grep) == 5
    assert len(_cli("topics", "tail", "traces.raw", "--from-beginning",
                    "--limit", "2").splitlines()) == 2
    last = [json.loads(x) for x in _cli("topics", "tail", "deadletter", "-n", "1").splitlines()]
    assert len(last) == 3  # one per partition
    assert {x["event"]["error_type"] for x in last} <= {"EventDecodeError", "RedactionError"}


def test_tail_follow_prints_records_produced_later(seeded, monkeypatch) -> None:  # noqa: ANN001
    settings, _ = seeded
    _cli_env(monkeypatch, settings)

    def produce_soon() -> None:
        time.sleep(2.0)
        produce_events(settings)

    thread = threading.Thread(target=produce_soon)
    thread.start()
    began = time.monotonic()
    out = _cli("topics", "tail", "pipeline.health", "-n", "0", "--follow", "--limit", "2")
    thread.join()
    events = [json.loads(x)["event"] for x in out.splitlines()]
    assert len(events) == 2 and time.monotonic() - began >= 2.0
    assert {e["service"] for e in events} == {"triage", "curator"}
