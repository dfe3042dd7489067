"""Console unit fixtures: settings whose broker, Redis and database do not answer, and a
snapshot with known figures built from hand-made source results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flywheel.services.console.collector import Collector
from flywheel.services.console.settings import ConsoleSettings
from flywheel.settings import load_settings
from flywheel.stack.process import free_port


@pytest.fixture
def offline_settings(tmp_path: Path) -> ConsoleSettings:
    """Settings pointing at closed loopback ports and a database file that does not exist."""
    kafka, redis_port = free_port(), free_port()
    return load_settings(ConsoleSettings, env="test", data_dir=tmp_path, topic_prefix="fw",
                         kafka_bootstrap=f"127.0.0.1:{kafka}",
                         redis_url=f"redis://127.0.0.1:{redis_port}/0",
                         database_url=f"sqlite:///{tmp_path / 'missing.db'}")


def _topic(short: str, end: int, rate: float | None) -> dict[str, Any]:
    return {"short": short, "topic": f"fw.{short}.v1", "exists": True, "partitions": 1,
            "expected_partitions": 1, "end_offset": end, "end_offsets": {"0": end},
            "rate_per_s": rate}


def _probe(name: str, url: str | None, healthz: Any, families: dict | None = None) -> dict:
    return {"name": name, "url": url, "pid": None, "kind": "http" if url else "worker",
            "pid_alive": None, "healthz": healthz, "readyz": 200 if healthz == 200 else None,
            "metrics": {"url": None, "error": "no metrics endpoint"}, "_families": families or {}}


def known_results() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Source results as the collector's readers would return them, with round numbers."""
    from flywheel.services.console import logic

    tally = logic.DeadLetterTally()
    for reason in ["EventDecodeError"] * 3 + ["<script>"]:
        tally.add({"error_type": reason, "service": "triage", "source_topic": "traces.raw",
                   "failed_at": "2026-11-01T10:00:00+00:00", "error_message": "m",
                   "partition": 0, "offset": 1})
    results = {
        "topics": {"topics": [_topic("traces.raw", 1200, 12.5), _topic("examples.sft", 80, 0.0),
                              _topic("examples.dpo", 10, 0.0)],
                   "throughput": {"window_s": 5.0, "total_rate_per_s": 12.5, "series": [
                       {"at": "2026-11-01T10:00:00+00:00", "rates": {"traces.raw": 10.0}},
                       {"at": "2026-11-01T10:00:05+00:00", "rates": {"traces.raw": 12.5}}]}},
        "lag": {"rows": [{"group": "fw-triage", "topic": "fw.traces.raw.v1", "partition": 0,
                          "committed": 1100, "end": 1200, "lag": 100}],
                "groups": logic.lag_by_group([{"group": "fw-triage", "topic": "fw.traces.raw.v1",
                                               "partition": 0, "lag": 100}]), "total": 100},
        "deadletters": tally.as_dict(),
        "health": [{"service": "triage", "instance": "t-1", "at": "2026-11-01T10:00:00+00:00",
                    "age_s": 3.0, "window_seconds": 10.0, "counters": {"processed": 5},
                    "gauges": {}}],
        "sql": {"batches": [{"batch_id": "b" * 64, "model_line": "shop-assistant", "version": 1,
                             "status": "announced", "counts": {"sft": 64}, "sft": 64, "dpo": 0,
                             "replay": 0, "replay_share": 0.0,
                             "created_at": "2026-11-01T09:00:00+00:00", "announced_at": None}],
                "models": [{"line": "shop-assistant", "version": v, "parent_version": None,
                            "status": s, "metrics": {"eval.exact_match": m, "eval.seconds": 3.0},
                            "gate": {"passed": True, "reasons": []}, "failure_reason": None,
                            "canary_share": 0.1 if s == "canary" else None,
                            "batches": 1, "base_model": "tiny",
                            "created_at": "2026-11-01T09:00:00+00:00",
                            "updated_at": "2026-11-01T09:00:00+00:00"}
                           for v, s, m in ((2, "canary", 0.8), (1, "released", 0.6))],
                "releases": [{"release_id": "r1", "line": "shop-assistant", "version": 1,
                              "action": "promote", "actor": "exporter", "reason": None,
                              "created_at": "2026-11-01T09:10:00+00:00"},
                             {"release_id": "r2", "line": "shop-assistant", "version": 2,
                              "action": "canary", "actor": "exporter", "reason": None,
                              "created_at": "2026-11-01T09:20:00+00:00"}],
                "annotation_tasks": {"pending": 7, "done": 3}},
        "redis": {"annotation": {"queue": {"label": 7, "review": 2}, "calibration": [
            logic.calibration_row("rate", {"agreement": "0.55", "n": "30", "threshold": "0.6",
                                           "low": "1"})]},
                  "preferences": {"day": "20261101", **logic.budget_summary([1, 3], 3)},
                  "training": ["shop-assistant"]},
    }
    probes = [_probe("gateway", "http://127.0.0.1:1", 200), _probe("serving", None, None),
              _probe("triage", None, None), _probe("console", None, None)]
    return results, probes


@pytest.fixture
def known_snapshot(offline_settings: ConsoleSettings) -> dict[str, Any]:
    collector = Collector(offline_settings, own_service="console")
    try:
        results, probes = known_results()
        return collector.assemble(results, {}, probes)
    finally:
        collector.close()
