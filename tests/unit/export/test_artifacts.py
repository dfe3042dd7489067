"""Content-addressed artifact writing: atomic, idempotent, verifiable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flywheel.ml import artifacts


def _stage(root: Path, payload: bytes) -> Path:
    staging = artifacts.new_staging_dir(root, "onnx")
    (staging / "model.onnx").write_bytes(payload)
    (staging / "tokenizer.json").write_text("{}")
    return staging


def test_same_content_gives_same_directory_and_keeps_first_manifest(tmp_path: Path) -> None:
    first = artifacts.commit_artifact(tmp_path, "onnx", _stage(tmp_path, b"abc"), {"export_seconds": 1})
    second = artifacts.commit_artifact(tmp_path, "onnx", _stage(tmp_path, b"abc"), {"export_seconds": 2})
    assert first == second
    assert artifacts.read_manifest(first)["export_seconds"] == 1
    assert [p.name for p in artifacts.artifacts_dir(tmp_path, "onnx").iterdir()] == [first.name]


def test_different_content_gives_different_directory(tmp_path: Path) -> None:
    a = artifacts.commit_artifact(tmp_path, "onnx", _stage(tmp_path, b"abc"), {})
    b = artifacts.commit_artifact(tmp_path, "onnx", _stage(tmp_path, b"abd"), {})
    assert a != b
    assert a.name == artifacts.read_manifest(a)["digest"] == artifacts.content_digest(a)[:16]


def test_concurrent_writers_of_same_content_leave_one_complete_artifact(tmp_path: Path) -> None:
    stagings = [_stage(tmp_path, b"same") for _ in range(6)]
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(artifacts.commit_artifact(tmp_path, "onnx", s, {})))
        for s in stagings
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert [p.name for p in artifacts.artifacts_dir(tmp_path, "onnx").iterdir()] == [results[0].name]
    artifacts.verify_artifact(results[0])


def test_verify_detects_tampering_and_listing_skips_staging(tmp_path: Path) -> None:
    path = artifacts.commit_artifact(tmp_path, "onnx", _stage(tmp_path, b"abc"), {"k": 1})
    leftover = artifacts.new_staging_dir(tmp_path, "onnx")
    assert [p for p, _ in artifacts.iter_artifacts(tmp_path, "onnx")] == [path]
    (path / "model.onnx").write_bytes(b"xyz")
    with pytest.raises(artifacts.ArtifactError):
        artifacts.verify_artifact(path)
    assert leftover.exists()
