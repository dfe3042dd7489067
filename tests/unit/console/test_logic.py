"""The console's pure figures: rates, lag, dead letters, service states, metrics, releases."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flywheel.services.console import logic


def test_rates_use_the_newest_pair_at_least_the_window_apart() -> None:
    samples = [(100.0, {"a": 0, "b": 10}), (104.0, {"a": 40, "b": 10}),
               (104.5, {"a": 45, "b": 12})]
    rates, dt = logic.rates_from_samples(samples, min_window_s=1.0)
    assert dt == 4.5 and rates == {"a": 10.0, "b": round(2 / 4.5, 3)}
    assert logic.rates_from_samples(samples[:1], 1.0) == ({}, None)
    assert logic.rates_from_samples([(1.0, {"a": 1}), (1.2, {"a": 5})], 1.0) == ({}, None)


def test_a_topic_that_shrank_or_appeared_counts_zero_not_negative() -> None:
    rates, _ = logic.rates_from_samples([(0.0, {"a": 50}), (2.0, {"a": 10, "new": 7})], 1.0)
    assert rates == {"a": 0.0, "new": 0.0}


def test_throughput_series_skips_samples_closer_than_the_window() -> None:
    samples = [(0.0, {"a": 0}), (0.5, {"a": 5}), (2.0, {"a": 20}), (4.0, {"a": 20})]
    series = logic.throughput_series(samples, 1.0)
    assert [(p["at"], p["rates"]["a"]) for p in series] == [(2.0, 10.0), (4.0, 0.0)]


def test_lag_sums_per_group() -> None:
    rows = [{"group": "f-triage", "topic": "t1", "partition": 0, "lag": 3},
            {"group": "f-triage", "topic": "t2", "partition": 1, "lag": 4},
            {"group": "f-curator", "topic": "t1", "partition": 0, "lag": 0}]
    assert logic.lag_by_group(rows) == [
        {"group": "f-curator", "lag": 0, "max_lag": 0, "partitions": 1, "topics": ["t1"]},
        {"group": "f-triage", "lag": 7, "max_lag": 4, "partitions": 2, "topics": ["t1", "t2"]}]


def test_dead_letters_are_counted_by_reason_service_and_source() -> None:
    tally = logic.DeadLetterTally()
    for i in range(12):
        tally.add({"error_type": "EventDecodeError" if i % 3 else "RedactionError",
                   "service": "triage", "source_topic": "traces.raw",
                   "failed_at": f"2026-01-01T00:00:{i:02d}+00:00"})
    tally.add(None)
    out = tally.as_dict()
    assert out["total"] == 13 and out["undecodable"] == 1
    assert out["by_reason"] == {"EventDecodeError": 8, "RedactionError": 4, "(undecodable)": 1}
    assert out["by_service"] == {"triage": 12}
    assert len(out["recent"]) == logic.RECENT_DEAD_LETTERS
    assert out["recent"][0]["failed_at"].endswith(":11+00:00")


def test_latest_health_per_service_and_instance() -> None:
    latest: dict = {}
    for event in ({"service": "triage", "instance": "a", "at": 10.0, "counters": {"n": 1}},
                  {"service": "triage", "instance": "a", "at": 5.0, "counters": {"n": 0}},
                  {"service": "triage", "instance": "b", "at": 7.0, "counters": {"n": 2}}):
        logic.keep_latest_health(latest, event)
    assert latest[("triage", "a")]["counters"] == {"n": 1}
    assert len(latest) == 2


@pytest.mark.parametrize(("kwargs", "state"), [
    ({"url": "http://x", "healthz": 200, "readyz": 200}, ("up", "healthz ok")),
    ({"url": "http://x", "healthz": 200, "readyz": 503}, ("degraded", "readyz 503")),
    ({"url": "http://x", "healthz": "ConnectError", "readyz": None},
     ("down", "ConnectError")),
    ({"url": "http://x", "healthz": 500, "readyz": None}, ("down", "healthz 500")),
    ({"url": None, "pid_alive": True}, ("up", "process running")),
    ({"url": None, "pid_alive": False}, ("down", "process exited")),
    ({"url": None, "health_age_s": 12.0}, ("up", "pipeline.health 12s ago")),
    ({"url": None, "health_age_s": 600.0}, ("down", "last pipeline.health 600s ago")),
    ({"url": None}, ("down", "not started")),
])
def test_service_state(kwargs: dict, state: tuple[str, str]) -> None:
    args = {"healthz": None, "readyz": None, "pid_alive": None, "health_age_s": None,
            "stale_s": 60.0, **kwargs}
    assert logic.service_state(**args) == state


def _serving_text() -> str:
    r = CollectorRegistry()
    requests = Counter("flywheel_serving_requests", "x", ["version", "status", "stream"],
                       registry=r)
    latency = Histogram("flywheel_serving_request_seconds", "x", ["version"], registry=r)
    info = Gauge("flywheel_serving_model_info", "x", ["line", "role", "version"], registry=r)
    share = Gauge("flywheel_serving_canary_share", "x", registry=r)
    requests.labels("2", "ok", "false").inc(90)
    requests.labels("2", "error", "false").inc(10)
    requests.labels("3", "ok", "true").inc(10)
    for _ in range(4):
        latency.labels("2").observe(0.5)
    latency.labels("3").observe(0.2)
    info.labels("shop", "stable", "2").set(1)
    info.labels("shop", "canary", "3").set(1)
    share.set(0.1)
    return generate_latest(r).decode()


def test_prometheus_text_is_parsed_and_summed() -> None:
    families = logic.parse_metrics(_serving_text())
    totals = logic.metric_totals(families)
    assert totals["flywheel_serving_requests_total"] == 110
    assert totals["flywheel_serving_request_seconds_count"] == 5
    assert not any(name.endswith("_bucket") or name.endswith("_created") for name in totals)
    with pytest.raises(ValueError):
        logic.parse_metrics("this is { not prometheus")


def test_serving_signals_per_version() -> None:
    signals = logic.serving_signals(logic.parse_metrics(_serving_text()))
    assert signals["canary_share"] == 0.1
    assert {(r["role"], r["version"]) for r in signals["routing"]} == {("stable", "2"),
                                                                       ("canary", "3")}
    v2, v3 = signals["versions"]
    assert (v2["version"], v2["requests"], v2["errors"], v2["error_rate"]) == ("2", 100, 10, 0.1)
    assert v2["mean_latency_s"] == 0.5 and v3["mean_latency_s"] == 0.2 and v3["errors"] == 0


def _rel(version: int, action: str, at: str, line: str = "shop") -> dict:
    return {"line": line, "version": version, "action": action, "created_at": at,
            "release_id": f"{version}{action}"}


def test_release_state_replays_promote_canary_and_rollback() -> None:
    log = [_rel(1, "promote", "t1"), _rel(2, "canary", "t2"), _rel(2, "promote", "t3"),
           _rel(3, "canary", "t4"), _rel(3, "rollback", "t5"), _rel(4, "canary", "t6"),
           _rel(1, "promote", "t0", line="other")]
    lines = logic.release_state(log)
    assert lines["shop"]["current"]["version"] == 2
    assert lines["shop"]["canary"]["version"] == 4
    assert lines["other"]["current"]["version"] == 1 and lines["other"]["canary"] is None
    back = logic.release_state(log[:3] + [_rel(2, "rollback", "t9")])
    assert back["shop"]["current"]["version"] == 1


def test_task_metric_points_follow_the_release_log() -> None:
    models = [{"line": "shop", "version": 1, "metrics": {"exact_match": 0.6}},
              {"line": "shop", "version": 2, "metrics": {"eval_exact_match": 0.7}},
              {"line": "shop", "version": 3, "metrics": {"exact_match": float("nan")}}]
    log = [_rel(1, "promote", "t1"), _rel(2, "promote", "t2"), _rel(3, "canary", "t3"),
           _rel(3, "rollback", "t4")]
    points = logic.task_metric_points(log, models, "exact_match")
    assert [(p["version"], p["action"], p["value"]) for p in points] == [
        (1, "promote", 0.6), (2, "promote", 0.7), (3, "canary", None)]


def test_open_batch_fill_is_the_fuller_kind() -> None:
    fill = logic.open_batch_fill(pooled_sft=16, pooled_dpo=24, min_sft=64, min_dpo=32,
                                 source="estimate")
    assert fill["sft"]["fill"] == 0.25 and fill["dpo"]["fill"] == 0.75 and fill["fill"] == 0.75
    off = logic.open_batch_fill(pooled_sft=100, pooled_dpo=5, min_sft=64, min_dpo=0,
                                source="estimate")
    assert off["fill"] == 1.0 and off["dpo"]["fill"] is None
    unknown = logic.open_batch_fill(pooled_sft=None, pooled_dpo=None, min_sft=64, min_dpo=32,
                                    source="estimate")
    assert unknown["fill"] is None


def test_pooled_estimate_subtracts_batched_examples() -> None:
    batches = [{"counts": {"sft": 64, "dpo": 3}}, {"counts": {"sft": 10}}]
    assert logic.pooled_estimate({"examples.sft": 80, "examples.dpo": 2}, batches) == (6, 0)
    assert logic.pooled_estimate({}, batches) == (None, None)


def test_budget_summary_hides_users_and_counts_the_limit() -> None:
    out = logic.budget_summary([1, 3, 2, 5], limit=3)
    assert out == {"limit": 3, "users": 4, "questions": 11, "at_limit": 2,
                   "histogram": {"1": 1, "2": 1, "3": 2}, "use": round(11 / 12, 4)}
    assert logic.budget_summary([], 3)["use"] is None


def test_calibration_row_parses_the_redis_hash() -> None:
    row = logic.calibration_row("rate", {"agreement": "0.41", "n": "25", "threshold": "0.6",
                                         "low": "1", "kappa": "", "statistic": "percent"})
    assert row["agreement"] == 0.41 and row["n"] == 25 and row["low"] is True
    assert row["kappa"] is None and row["statistic"] == "percent"
