"""The page: the snapshot rendered with Jinja2 and inline SVG charts (no JavaScript)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from . import charts

TEMPLATES = Path(__file__).resolve().parent / "templates"
THROUGHPUT_LINES = 6
GATE_COLUMNS = 6
_NOISE = (".seconds", ".items", ".errors", ".source_batch")


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _throughput_series(snap: Mapping[str, Any]) -> list[dict[str, Any]]:
    series = snap["throughput"]["series"]
    totals: dict[str, float] = {}
    for point in series:
        for topic, rate in point["rates"].items():
            totals[topic] = totals.get(topic, 0.0) + rate
    busiest = [t for t, total in sorted(totals.items(), key=lambda kv: -kv[1]) if total > 0]
    lines = [{"name": "all topics",
              "points": [(_epoch(p["at"]), round(sum(p["rates"].values()), 3)) for p in series]}]
    return lines + [{"name": topic,
                     "points": [(_epoch(p["at"]), p["rates"].get(topic)) for p in series]}
                    for topic in busiest[:THROUGHPUT_LINES]]


def _task_metric_series(snap: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for action, dashed in (("promote", False), ("canary", True)):
        lines = sorted({p["line"] for p in snap["task_metric"]["points"]})
        for line in lines:
            points = [(_epoch(p["at"]), p["value"], f"v{p['version']}: {charts.fmt(p['value'], 4)}")
                      for p in snap["task_metric"]["points"]
                      if p["line"] == line and p["action"] == action]
            if points:
                name = f"{line} released" if action == "promote" else f"{line} canary"
                out.append({"name": name, "points": points, "dashed": dashed})
    return out


def gate_columns(models: list[Mapping[str, Any]], task_metric: str) -> list[str]:
    """Metric names shown as columns: the task metric first, then the most common others."""
    seen: dict[str, int] = {}
    for model in models:
        for key, value in model["metrics"].items():
            if isinstance(value, (int, float)) and not key.endswith(_NOISE):
                seen[key] = seen.get(key, 0) + 1
    ordered = sorted(seen, key=lambda k: (task_metric not in k, k.startswith("release."),
                                          -seen[k], k))
    return ordered[:GATE_COLUMNS]


def build_charts(snap: Mapping[str, Any]) -> dict[str, Any]:
    """Every chart of the page, as inline SVG markup."""
    topics = [t for t in snap["topics"] if t["exists"]]
    dl = snap["deadletters"]
    annotation = snap["annotation"]
    calibration = annotation.get("calibration") or []
    queue = annotation.get("queue") or {}
    prefs = snap["preferences"]
    fill = snap["batches"]["open"]
    serving = (snap["releases"]["serving"] or {}).get("signals") or {}
    return {
        "throughput": charts.hbar_chart(
            [(t["short"], t["rate_per_s"]) for t in topics], testid="chart-throughput",
            label="events per second per topic", unit="/s", empty="no topics"),
        "throughput_time": charts.line_chart(
            _throughput_series(snap), testid="chart-throughput-time",
            label="events per second over time", y_label="events/s"),
        "end_offsets": charts.hbar_chart(
            [(t["short"], t["end_offset"]) for t in topics], testid="chart-end-offsets",
            label="events per topic", empty="no topics"),
        "lag": charts.hbar_chart(
            [(g["group"], g["lag"]) for g in snap["lag"]["groups"]], testid="chart-lag",
            label="consumer lag per group", empty="no consumer groups"),
        "deadletters": charts.hbar_chart(
            list(dl["by_reason"].items()), testid="chart-deadletters",
            label="dead letters by reason", empty="no dead letters"),
        "queue": charts.hbar_chart(
            [(f"{q} queue", n) for q, n in queue.items()]
            + [(f"tasks {s}", n) for s, n in sorted(annotation.get("tasks", {}).items())],
            testid="chart-queue", label="annotation queue and tasks", empty="no tasks"),
        "calibration": charts.hbar_chart(
            [(c["criterion"], c["agreement"]) for c in calibration], testid="chart-calibration",
            label="judge vs people agreement", max_value=1.0,
            marks={c["criterion"]: c["threshold"] for c in calibration
                   if c["threshold"] is not None},
            empty="no calibration pairs yet"),
        "budget": charts.hbar_chart(
            [(f"{k} asked", v) for k, v in (prefs.get("histogram") or {}).items()],
            testid="chart-budget", label="users by questions asked today",
            empty="no questions asked today"),
        "fill_sft": charts.progress(fill["sft"]["fill"], testid="chart-fill-sft",
                                    label="SFT examples towards the next batch",
                                    text=_fill_text(fill["sft"])),
        "fill_dpo": charts.progress(fill["dpo"]["fill"], testid="chart-fill-dpo",
                                    label="DPO pairs towards the next batch",
                                    text=_fill_text(fill["dpo"])),
        "batches": charts.column_chart(
            [(f"v{b['version']}", {"sft": b["sft"], "dpo": b["dpo"], "replay": b["replay"]})
             for b in snap["batches"]["history"]], ["sft", "dpo", "replay"],
            testid="chart-batches", label="examples per batch"),
        "task_metric": charts.line_chart(
            _task_metric_series(snap), testid="chart-task-metric",
            label=f"{snap['task_metric']['name']} per released version",
            y_label=snap["task_metric"]["name"], empty="no released versions yet"),
        "serving": charts.hbar_chart(
            [(f"v{v['version']}", v["requests"]) for v in serving.get("versions", [])],
            testid="chart-serving", label="requests per served version",
            empty="no serving metrics"),
    }


def _fill_text(part: Mapping[str, Any]) -> str:
    if part["threshold"] <= 0:
        return "disabled"
    if part["ready"] is None:
        return "unknown"
    return f"{part['ready']} / {part['threshold']}"


def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["num"] = charts.fmt
    env.filters["pct"] = lambda v: "–" if v is None else f"{v * 100:.0f}%"
    env.filters["slug"] = lambda s: "".join(c if c.isalnum() or c in "-_." else "-"
                                            for c in str(s))
    return env


def render_page(env: Environment, snap: Mapping[str, Any], *, refresh_s: int,
                task_metric: str) -> str:
    """The whole page for one snapshot."""
    template = env.get_template("console.html")
    return template.render(snap=snap, charts=build_charts(snap), refresh_s=refresh_s,
                           gate_columns=gate_columns(snap["models"], task_metric),
                           task_metric=task_metric)
