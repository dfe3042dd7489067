"""``flywheel models list | show | diff`` on a SQLite registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli.main import app
from flywheel.db.engine import make_engine, migrate
from flywheel.services.trainer import registry

LINE = "shop-assistant"


@pytest.fixture
def seeded(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate(sqlite_url)
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("flywheel.cli.common.console.width", 160)
    engine = make_engine(sqlite_url)
    registry.ensure_line(engine, LINE, "/base")
    for n, (em, passed) in enumerate([(0.6, True), (0.3, False)], 1):
        parent = registry.current_release(engine, LINE, Path("/base"))
        version = registry.start_version(
            engine, line=LINE, parent=parent, batch_id=f"batch{n}", token=n,
            hyperparameters={"train": {"sft_steps": 40 * n, "lora_r": 16}})
        registry.finish_version(
            engine, LINE, version, n, passed=passed,
            metrics={"eval.exact_match": em, "release.eval.exact_match": 0.0,
                     "gate": {"passed": passed, "reasons": [f"eval.exact_match: {em}"]}},
            adapter_path=f"/m/v{n}/adapter", merged_path=f"/m/v{n}/merged",
            artifact_hash=f"{n}" * 64, reason="test",
            hyperparameters={"train": {"sft_steps": 40 * n, "lora_r": 16}})
        if n == 1:
            registry.set_status(engine, LINE, version, "released", "test")
    engine.dispose()


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list(seeded: None) -> None:
    rows = json.loads(_run("models", "list", "--json"))
    assert [(r["version"], r["status"], r["parent"]) for r in rows] == [
        (1, "released", "base"), (2, "rejected", 1)]
    assert rows[0]["exact_match"] == 0.6 and rows[1]["gate"] == "failed"
    assert "rejected" in _run("models", "list")
    assert len(json.loads(_run("models", "list", "--status", "released", "--json"))) == 1


def test_show(seeded: None) -> None:
    info = json.loads(_run("models", "show", f"{LINE}:2", "--json"))
    assert info["batch_ids"] == ["batch1", "batch2"]
    assert [e["status"] for e in info["status_history"]] == ["training", "rejected"]
    text = _run("models", "show", "release")
    assert "released" in text and "gate passed" in text


def test_diff(seeded: None) -> None:
    result = json.loads(_run("models", "diff", "1", "2", "--json"))
    assert result["batches"] == {"only_a": [], "only_b": ["batch2"]}
    assert result["hyperparameters"] == {"sft_steps": [40, 80]}
    a, b, delta = result["metrics"]["eval.exact_match"]
    assert (a, b) == (0.6, 0.3) and delta == pytest.approx(-0.3)
    assert "-0.3000" in _run("models", "diff", "1", "2")


def test_unknown_version_is_one_line_error(seeded: None) -> None:
    result = CliRunner().invoke(app, ["models", "show", "9"])
    assert result.exit_code != 0
