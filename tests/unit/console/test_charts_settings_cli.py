"""Inline SVG charts, the console settings, and the CLI against sources that do not answer."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from flywheel.errors import ConfigError
from flywheel.services.console import charts
from flywheel.services.console.settings import ConsoleSettings
from flywheel.settings import load_settings


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_charts_are_well_formed_svg_with_escaped_text() -> None:
    bars = charts.hbar_chart([("<b>&x", 3.0), ("y", None)], testid="t", label='a "b"',
                             marks={"y": 1.0})
    root = _parse(bars)
    assert root.tag.endswith("svg") and root.get("data-testid") == "t"
    assert "<b>" not in str(bars) and "&lt;b&gt;&amp;x" in str(bars)
    line = charts.line_chart([{"name": "a", "points": [(0.0, 1.0), (60.0, 2.0, "v2: 2")]},
                              {"name": "b", "points": [(0.0, None)]}], testid="l", label="l")
    assert len(_parse(line).findall("{http://www.w3.org/2000/svg}polyline")) == 1
    cols = charts.column_chart([("v1", {"sft": 3, "dpo": 1})], ["sft", "dpo"], testid="c",
                               label="c")
    assert len(_parse(cols).findall("{http://www.w3.org/2000/svg}rect")) >= 2
    for svg in (charts.progress(0.5, testid="p", label="p"), charts.progress(None, testid="q",
                                                                            label="q"),
                charts.sparkline([1, 2, None, 4], testid="s", label="s")):
        _parse(svg)


def test_empty_charts_say_so() -> None:
    assert "no data" in str(charts.hbar_chart([], testid="e", label="e", empty="no data"))
    assert "nothing" in str(charts.line_chart([], testid="e", label="e", empty="nothing"))
    assert "none" in str(charts.column_chart([], ["a"], testid="e", label="e", empty="none"))


def test_number_format() -> None:
    assert [charts.fmt(v) for v in (None, 3.0, 2.5, 12_345, 3e-5, 12_000_000)] == [
        "–", "3", "2.50", "12.3k", "3.0e-05", "12.0M"]


def test_service_and_metrics_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_CONSOLE_SERVICES", "gateway=http://gw:8000/, serving=http://s:1")
    monkeypatch.setenv("FLYWHEEL_CONSOLE_METRICS_URLS", "triage=http://t:9101/metrics")
    monkeypatch.setenv("FLYWHEEL_CONSOLE_PORT", "9004")
    settings = load_settings(ConsoleSettings)
    assert settings.console.services == {"gateway": "http://gw:8000", "serving": "http://s:1"}
    assert settings.console.metrics_urls == {"triage": "http://t:9101/metrics"}
    assert settings.console.port == 9004
    monkeypatch.setenv("FLYWHEEL_CONSOLE_SERVICES", "gateway")
    with pytest.raises(ConfigError):
        load_settings(ConsoleSettings)


def _env(monkeypatch: pytest.MonkeyPatch, settings: ConsoleSettings) -> None:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("FLYWHEEL_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "160")


def test_status_prints_the_snapshot_even_when_nothing_answers(
        offline_settings: ConsoleSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.cli.main import app

    _env(monkeypatch, offline_settings)
    runner = CliRunner()
    result = runner.invoke(app, ["status", "--json", "--rate-window", "0"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    assert snap["sources"]["kafka"] != "ok"
    assert {s["state"] for s in snap["services"]} == {"down"}
    table = runner.invoke(app, ["status", "--rate-window", "0"])
    assert table.exit_code == 0 and "kafka unavailable" in table.output
    assert "services" in table.output and "not started" in table.output


def test_lag_and_tail_fail_with_one_line_when_the_broker_is_down(
        offline_settings: ConsoleSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from flywheel.cli.main import app

    _env(monkeypatch, offline_settings)
    runner = CliRunner()
    for args in (["lag"], ["topics", "tail", "traces.raw"]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0
        assert isinstance(result.exception, ConfigError)
        assert "FLYWHEEL_KAFKA_BOOTSTRAP" in str(result.exception)
