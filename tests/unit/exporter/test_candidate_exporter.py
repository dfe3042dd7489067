"""The candidate exporter without a broker: an adapter-only candidate is merged, exported in
float and int8, gated twice and put on canary (tiny random model, SQLite registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("peft")

pytestmark = [pytest.mark.slow, pytest.mark.ml]


def _tiny_models():  # noqa: ANN202
    import importlib.util
    import sys

    name = "flywheel_tests_tiny_models"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "export" / "tiny_models.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_adapter_candidate_is_merged_quantised_gated_and_put_on_canary(tmp_path: Path) -> None:
    from flywheel.db.engine import make_engine, migrate, session_scope
    from flywheel.db.models import ModelVersion
    from flywheel.events.codec import decode
    from flywheel.events.envelope import stamp
    from flywheel.ml.artifacts import read_manifest
    from flywheel.ml.train import TrainConfig, prepare_model, save_adapter
    from flywheel.services.exporter.releasing import Releaser
    from flywheel.services.exporter.service import CandidateExporter
    from flywheel.services.exporter.settings import ExporterSettings
    from flywheel.settings import Settings
    from flywheel.v1.models_pb2 import Gate, ModelCandidate

    base = _tiny_models().build_model_dir(tmp_path / "base")
    cfg = TrainConfig(sft_steps=1, dpo_steps=0, lora_r=4, lora_alpha=8)
    adapter = save_adapter(prepare_model(base, None, cfg), tmp_path / "adapter", cfg)

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    engine = make_engine(url)
    sent: list[bytes] = []
    settings = Settings(env="test", data_dir=tmp_path / "data")
    releaser = Releaser(settings, engine, lambda topic, key, value: sent.append(value))
    exporter = CandidateExporter(settings, ExporterSettings(quantize=True, parity_prompts=4,
                                                            parity_max_new_tokens=6, threads=1),
                                 engine, releaser)
    candidate = stamp(ModelCandidate(model_line="shop", version=3, base_model=str(base),
                                     adapter_path=str(adapter), gate=Gate(passed=True), status="gated"),
                      "trainer")
    outcome = exporter.handle(candidate)
    assert outcome.status == "canary", outcome.reason
    assert (tmp_path / "data" / "models" / "shop" / "v3-merged" / "config.json").is_file()
    assert read_manifest(outcome.artifact_dir)["quantized"] is True
    with session_scope(engine) as s:
        row = s.get(ModelVersion, ("shop", 3))
        assert str(row.status.value) == "canary"
        assert row.metrics["parity.passed"] == 1.0 and row.metrics["parity_int8.passed"] == 1.0
        assert row.onnx_path == str(outcome.artifact_dir)
    [event] = [decode(v, "ModelRelease") for v in sent]
    assert event.version == 3 and event.artifact_path == str(outcome.artifact_dir)
    assert exporter.handle(candidate).status == "skipped"  # redelivery
    rejected = stamp(ModelCandidate(model_line="shop", version=4, gate=Gate(passed=False)), "trainer")
    assert exporter.handle(rejected).status == "skipped"
