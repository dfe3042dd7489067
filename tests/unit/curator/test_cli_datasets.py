"""``flywheel datasets list | show | export | forget`` against a SQLite data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from curator_builders import LINE, sft_record
from curator_builders import batch_content as content
from typer.testing import CliRunner

from flywheel.cli.datasets import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store) -> Path:  # noqa: ANN001
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "160")  # rich tables are cut to the terminal width
    monkeypatch.setenv("FLYWHEEL_DATABASE_URL", f"sqlite:///{tmp_path / 'flywheel.db'}")
    store.write(content([sft_record(1, "alice"), sft_record(2, "bob")]))
    store.write(content([sft_record(3, "carol")]))
    return tmp_path


def test_list_and_show(data_dir: Path) -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["version"], r["sft"], r["status"]) for r in rows] == [(1, 2, "written"),
                                                                     (2, 1, "written")]
    table = runner.invoke(app, ["list"])
    assert table.exit_code == 0 and "shop-assistant" in table.output
    shown = runner.invoke(app, ["show", f"{LINE}:1", "--json"])
    info = json.loads(shown.output)
    assert info["version"] == 1 and info["manifest"]["examples"] == 2
    assert Path(info["sft_path"]).exists()
    latest = runner.invoke(app, ["show", "latest", "--examples"])
    assert latest.exit_code == 0 and "question" not in latest.output
    assert '"trace_ids": ["t3"]' in latest.output
    prefix = runner.invoke(app, ["show", rows[0]["batch_id"][:8]])
    assert prefix.exit_code == 0 and rows[0]["batch_id"] in prefix.output
    missing = runner.invoke(app, ["show", "nope:9"])
    assert missing.exit_code != 0


def test_export_jsonl_and_hf(data_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "export-jsonl"
    result = runner.invoke(app, ["export", f"{LINE}:1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["eval.jsonl", "manifest.json", "sft.jsonl"]
    loaded = datasets.load_dataset("json", data_files=str(out / "sft.jsonl"), split="train")
    assert loaded.num_rows == 2 and loaded[0]["messages"][0]["role"] == "user"
    hf = tmp_path / "export-hf"
    result = runner.invoke(app, ["export", "latest", "--out", str(hf), "--format", "hf"])
    assert result.exit_code == 0, result.output
    splits = datasets.load_from_disk(str(hf))
    assert splits["sft"].num_rows == 1 and "eval" in splits
    bad = runner.invoke(app, ["export", "latest", "--out", str(hf), "--format", "csv"])
    assert bad.exit_code != 0


def test_forget(data_dir: Path) -> None:
    result = runner.invoke(app, ["forget", "--user", "alice", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["examples"] == {"sft": 1} and len(report["superseded"]) == 1
    rows = json.loads(runner.invoke(app, ["list", "--json"]).output)
    assert [(r["version"], r["status"], r["sft"]) for r in rows] == [
        (1, "superseded", 2), (2, "written", 1), (3, "written", 1)]
    text = runner.invoke(app, ["forget", "--user", "bob"])
    assert text.exit_code == 0 and "forgot user bob: removed 1 sft" in text.output
