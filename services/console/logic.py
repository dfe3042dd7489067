"""Pure figures of the console: rates, lag per group, dead-letter tallies, releases, fill.

Everything here works on plain values (dicts, lists, numbers) already read from the broker,
the database, Redis or a ``/metrics`` page, so it is tested without any of them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[float, Mapping[str, int]]
"""(wall-clock seconds, end offset per topic short name)."""

UP, DOWN, DEGRADED = "up", "down", "degraded"
RECENT_DEAD_LETTERS = 10


# -- throughput -------------------------------------------------------------------------------


def _rates(older: Sample, newer: Sample) -> dict[str, float]:
    dt = newer[0] - older[0]
    return {topic: round(max(0, end - older[1].get(topic, end)) / dt, 3)
            for topic, end in newer[1].items()}


def rates_from_samples(samples: Sequence[Sample], min_window_s: float
                       ) -> tuple[dict[str, float], float | None]:
    """Events per second per topic between the newest sample and the newest one at least
    ``min_window_s`` older; ``({}, None)`` when no such pair exists.

    A topic that shrank (deleted and re-created) counts as 0, never negative.
    """
    if len(samples) < 2:
        return {}, None
    newest = samples[-1]
    for older in reversed(samples[:-1]):
        dt = newest[0] - older[0]
        if dt >= min_window_s:
            return _rates(older, newest), round(dt, 3)
    return {}, None


def throughput_series(samples: Sequence[Sample], min_window_s: float) -> list[dict[str, Any]]:
    """Rates between consecutive samples (skipping pairs closer than ``min_window_s``)."""
    series = []
    previous: Sample | None = None
    for sample in samples:
        if previous is not None and sample[0] - previous[0] >= min_window_s:
            series.append({"at": sample[0], "rates": _rates(previous, sample)})
            previous = sample
        elif previous is None:
            previous = sample
    return series


# -- consumer lag -----------------------------------------------------------------------------


def lag_by_group(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Lag rows (group, topic, partition, committed, end, lag) summed per consumer group."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        g = groups.setdefault(row["group"], {"group": row["group"], "lag": 0, "max_lag": 0,
                                             "partitions": 0, "topics": set()})
        g["lag"] += int(row["lag"])
        g["max_lag"] = max(g["max_lag"], int(row["lag"]))
        g["partitions"] += 1
        g["topics"].add(row["topic"])
    return [{**g, "topics": sorted(g["topics"])} for _, g in sorted(groups.items())]


# -- dead letters -----------------------------------------------------------------------------


@dataclass
class DeadLetterTally:
    """Counts of dead letters by reason (error type), service and source topic.

    ``add`` is fed each dead letter once, in offset order per partition; ``recent`` keeps the
    newest few (by failure time) without their payloads.
    """

    total: int = 0
    by_reason: Counter = field(default_factory=Counter)
    by_service: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    undecodable: int = 0
    recent: list[dict[str, Any]] = field(default_factory=list)

    def add(self, letter: Mapping[str, Any] | None) -> None:
        """Count one dead letter (``None``: a record that is not a valid DeadLetter)."""
        self.total += 1
        if letter is None:
            self.undecodable += 1
            self.by_reason["(undecodable)"] += 1
            return
        self.by_reason[letter.get("error_type") or "(none)"] += 1
        self.by_service[letter.get("service") or "(unknown)"] += 1
        self.by_source[letter.get("source_topic") or "(unknown)"] += 1
        self.recent.append(dict(letter))
        self.recent.sort(key=lambda d: d.get("failed_at") or "", reverse=True)
        del self.recent[RECENT_DEAD_LETTERS:]

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "undecodable": self.undecodable,
                "by_reason": dict(self.by_reason.most_common()),
                "by_service": dict(self.by_service.most_common()),
                "by_source": dict(self.by_source.most_common()),
                "recent": list(self.recent)}


# -- pipeline.health --------------------------------------------------------------------------


def keep_latest_health(latest: dict[tuple[str, str], dict[str, Any]],
                       event: Mapping[str, Any]) -> None:
    """Keep ``event`` when it is the newest seen for its (service, instance)."""
    key = (event.get("service") or "", event.get("instance") or "")
    current = latest.get(key)
    if current is None or (event.get("at") or 0) >= (current.get("at") or 0):
        latest[key] = dict(event)


# -- services ---------------------------------------------------------------------------------


def service_state(*, url: str | None, healthz: int | str | None, readyz: int | str | None,
                  pid_alive: bool | None, health_age_s: float | None, stale_s: float
                  ) -> tuple[str, str]:
    """(state, reason) of one service from what could be observed.

    HTTP services are up when ``/healthz`` answers 200 (degraded when ``/readyz`` answers
    anything else); workers are up while their recorded process runs or their last
    ``pipeline.health`` is younger than ``stale_s``.
    """
    if url:
        if healthz == 200:
            if readyz in (200, None, 404):
                return UP, "healthz ok"
            return DEGRADED, f"readyz {readyz}"
        if isinstance(healthz, int):
            return DOWN, f"healthz {healthz}"
        return DOWN, str(healthz or "no answer")
    if pid_alive:
        return UP, "process running"
    if health_age_s is not None and health_age_s <= stale_s:
        return UP, f"pipeline.health {health_age_s:.0f}s ago"
    if pid_alive is False:
        return DOWN, "process exited"
    if health_age_s is not None:
        return DOWN, f"last pipeline.health {health_age_s:.0f}s ago"
    return DOWN, "not started"


# -- Prometheus text --------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, dict[str, Any]]:
    """Prometheus text exposition as ``{family: {"type", "samples": [(name, labels, value)]}}``.

    Raises:
        ValueError: the text is not in the exposition format.
    """
    families: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        samples = [(s.name, dict(s.labels), float(s.value)) for s in family.samples]
        families[family.name] = {"type": family.type, "samples": samples}
    return families


def metric_totals(families: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """One number per series name: the sum over label sets (NaN and bucket series skipped)."""
    totals: dict[str, float] = {}
    for family in families.values():
        for name, _labels, value in family["samples"]:
            if name.endswith("_bucket") or name.endswith("_created") or math.isnan(value):
                continue
            totals[name] = round(totals.get(name, 0.0) + value, 6)
    return dict(sorted(totals.items()))


def _series(families: Mapping[str, Mapping[str, Any]], name: str
            ) -> list[tuple[dict[str, str], float]]:
    out = []
    for family in families.values():
        for sample_name, labels, value in family["samples"]:
            if sample_name == name:
                out.append((labels, value))
    return out


def serving_signals(families: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Live signals of a model server: routing, and requests, errors, latency per version."""
    roles = [{"line": labels.get("line", ""), "role": labels.get("role", ""),
              "version": labels.get("version", "")}
             for labels, value in _series(families, "flywheel_serving_model_info") if value]
    share = _series(families, "flywheel_serving_canary_share")
    per_version: dict[str, dict[str, float]] = {}
    for base in ("flywheel_serving_requests_total", "flywheel_serving_requests"):
        for labels, value in _series(families, base):
            row = per_version.setdefault(labels.get("version", ""), {"requests": 0, "errors": 0})
            row["requests"] += value
            if labels.get("status", "ok") not in ("ok", "200", "success"):
                row["errors"] += value
        if per_version:
            break
    sums = dict((lab.get("version", ""), v)
                for lab, v in _series(families, "flywheel_serving_request_seconds_sum"))
    counts = dict((lab.get("version", ""), v)
                  for lab, v in _series(families, "flywheel_serving_request_seconds_count"))
    versions = []
    for version in sorted(set(per_version) | set(counts)):
        row = per_version.get(version, {"requests": 0, "errors": 0})
        n = counts.get(version, 0)
        versions.append({
            "version": version, "requests": int(row["requests"]), "errors": int(row["errors"]),
            "error_rate": round(row["errors"] / row["requests"], 4) if row["requests"] else None,
            "mean_latency_s": round(sums.get(version, 0) / n, 4) if n else None,
        })
    return {"routing": roles, "canary_share": share[0][1] if share else None,
            "versions": versions}


# -- releases and models ----------------------------------------------------------------------


def release_state(releases: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model line, replay the release log (oldest first) into the current release and canary.

    ``promote v`` makes v the release (and ends its canary); ``canary v`` starts a canary;
    ``rollback v`` ends v's canary, or, when v is the release, returns to the release before it.
    """
    lines: dict[str, dict[str, Any]] = {}
    for rel in sorted(releases, key=lambda r: (r["created_at"] or "", r.get("release_id", ""))):
        line = lines.setdefault(rel["line"], {"line": rel["line"], "current": None,
                                              "canary": None, "promoted": [], "actions": 0})
        line["actions"] += 1
        version, action = int(rel["version"]), rel["action"]
        stamp = {"version": version, "at": rel["created_at"], "actor": rel.get("actor"),
                 "reason": rel.get("reason")}
        if action == "promote":
            line["current"] = stamp
            line["promoted"].append(stamp)
            if line["canary"] and line["canary"]["version"] == version:
                line["canary"] = None
        elif action == "canary":
            line["canary"] = stamp
        elif action == "rollback":
            if line["canary"] and line["canary"]["version"] == version:
                line["canary"] = None
            elif line["current"] and line["current"]["version"] == version:
                line["promoted"] = [p for p in line["promoted"] if p["version"] != version]
                line["current"] = line["promoted"][-1] if line["promoted"] else None
    for line in lines.values():
        line.pop("promoted")
    return dict(sorted(lines.items()))


def task_metric_value(metrics: Mapping[str, Any] | None, name: str) -> float | None:
    """The task metric of a model version: ``name``, else ``eval.<name>`` (the trainer's
    spelling), ``eval_<name>`` or ``eval/<name>``; None when absent or not finite."""
    for key in (name, f"eval.{name}", f"eval_{name}", f"eval/{name}"):
        value = (metrics or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value)
    return None


def task_metric_points(releases: Iterable[Mapping[str, Any]],
                       models: Iterable[Mapping[str, Any]], name: str) -> list[dict[str, Any]]:
    """One point per promote or canary action: when, which version, and its task metric."""
    metrics = {(m["line"], int(m["version"])): m.get("metrics") for m in models}
    points = []
    for rel in sorted(releases, key=lambda r: r["created_at"] or ""):
        if rel["action"] not in ("promote", "canary"):
            continue
        value = task_metric_value(metrics.get((rel["line"], int(rel["version"]))), name)
        points.append({"line": rel["line"], "version": int(rel["version"]),
                       "action": rel["action"], "at": rel["created_at"], "value": value})
    return points


# -- batches ----------------------------------------------------------------------------------


def open_batch_fill(*, pooled_sft: int | None, pooled_dpo: int | None, min_sft: int,
                    min_dpo: int, source: str) -> dict[str, Any]:
    """How full the next batch is: each kind against its cut threshold (0 disables a kind)."""

    def part(n: int | None, threshold: int) -> dict[str, Any]:
        fill = None if n is None or threshold <= 0 else round(min(1.0, max(0, n) / threshold), 4)
        return {"ready": n, "threshold": threshold, "fill": fill}

    sft, dpo = part(pooled_sft, min_sft), part(pooled_dpo, min_dpo)
    fills = [p["fill"] for p in (sft, dpo) if p["fill"] is not None]
    return {"sft": sft, "dpo": dpo, "fill": max(fills) if fills else None, "source": source}


def pooled_estimate(examples_end: Mapping[str, int], batches: Iterable[Mapping[str, Any]]
                    ) -> tuple[int | None, int | None]:
    """Examples published since they were last batched: topic end offsets minus new examples
    counted in batches (an estimate: withdrawn examples and commit markers count too)."""
    batched = Counter()
    for batch in batches:
        counts = batch.get("counts") or {}
        batched["sft"] += int(counts.get("sft", 0))
        batched["dpo"] += int(counts.get("dpo", 0))

    def left(kind: str) -> int | None:
        end = examples_end.get(f"examples.{kind}")
        return None if end is None else max(0, end - batched[kind])

    return left("sft"), left("dpo")


# -- Redis ------------------------------------------------------------------------------------


def budget_summary(used: Iterable[int], limit: int) -> dict[str, Any]:
    """Preference questions asked today: users asked, questions, users at the daily limit and
    how many users asked each number of questions (user ids are not shown)."""
    values = [max(0, int(v)) for v in used]
    histogram = Counter(min(v, limit) if limit > 0 else v for v in values)
    return {"limit": limit, "users": len(values), "questions": sum(values),
            "at_limit": sum(1 for v in values if limit > 0 and v >= limit),
            "histogram": {str(k): histogram[k] for k in sorted(histogram)},
            "use": round(sum(values) / (len(values) * limit), 4) if values and limit > 0 else None}


def calibration_row(criterion: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """One ``fw:calibration:<criterion>`` hash with numbers parsed ('' is None)."""

    def num(key: str) -> float | None:
        try:
            return float(raw[key]) if raw.get(key) not in (None, "") else None
        except ValueError:
            return None

    n = num("n")
    return {"criterion": criterion, "agreement": num("agreement"),
            "statistic": raw.get("statistic") or None, "kappa": num("kappa"),
            "percent": num("percent"), "n": None if n is None else int(n),
            "threshold": num("threshold"), "low": raw.get("low") == "1",
            "updated_at": raw.get("updated_at") or None}
