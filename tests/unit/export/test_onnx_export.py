"""ONNX export with a KV cache: artifact layout, manifest and idempotent content addressing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.ml import artifacts
from flywheel.ml.onnx_export import MODEL_FILE, export_onnx

pytestmark = pytest.mark.ml


def test_export_writes_a_complete_content_addressed_artifact(tiny_model_dir: Path, float_artifact: Path) -> None:
    manifest = artifacts.verify_artifact(float_artifact)
    for name in (MODEL_FILE, "tokenizer.json", "generation_config.json", "config.json"):
        assert (float_artifact / name).is_file(), name
    assert float_artifact.parent.name == "onnx" and float_artifact.parent.parent.name == "artifacts"
    assert float_artifact.name == manifest["digest"]
    assert manifest["onnx_sha256"] == artifacts.file_sha256(float_artifact / MODEL_FILE)
    assert manifest["source_dir"] == str(tiny_model_dir.resolve())
    assert manifest["quantized"] is False
    assert manifest["opset"] == 17
    assert 0 < manifest["export_seconds"] < 120
    assert manifest["layout"]["num_layers"] >= 1


def test_reexport_is_idempotent(tiny_model_dir: Path, float_artifact: Path, data_root: Path) -> None:
    before = json.loads((float_artifact / "manifest.json").read_text())
    again = export_onnx(tiny_model_dir, data_root, reuse=False)
    assert not again.reused
    assert again.artifact_dir == float_artifact
    assert again.manifest == before  # first writer's manifest is kept
    reused = export_onnx(tiny_model_dir, data_root)
    assert reused.reused and reused.artifact_dir == float_artifact
    leftovers = [p.name for p in artifacts.artifacts_dir(data_root, "onnx").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_graph_has_flat_cache_inputs_with_dynamic_axes(float_artifact: Path) -> None:
    import onnx

    graph = onnx.load(str(float_artifact / MODEL_FILE), load_external_data=False).graph
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert inputs["input_ids"] == ["batch", "sequence"]
    assert inputs["attention_mask"] == ["batch", "total_sequence"]
    assert inputs["past_key_values.0.key"][0] == "batch" and inputs["past_key_values.0.key"][2] == "past_sequence"
    outputs = [o.name for o in graph.output]
    assert outputs[0] == "logits" and "present.0.value" in outputs
