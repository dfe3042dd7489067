"""The parity gate passes a good export and catches broken ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from flywheel.ml.onnx_export import MODEL_FILE, export_onnx
from flywheel.ml.parity import ParityError, first_difference, run_parity_gate

pytestmark = pytest.mark.ml

PROMPTS = [
    "Hello!",
    "Your order 4821 has shipped",
    "Please share your order number so I can look it up and",
    [{"role": "user", "content": "Where is my order 1930?"}],
    [
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "Can I return items?"},
        {"role": "assistant", "content": "Yes, within thirty days."},
        {"role": "user", "content": "Thanks"},
    ],
    "I am sorry",
]


def test_first_difference() -> None:
    assert first_difference([1, 2, 3], [1, 2, 3]) == -1
    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2


def test_gate_passes_a_good_export_at_batch_one_and_in_padded_batches(
    tiny_model_dir: Path, float_artifact: Path
) -> None:
    result = run_parity_gate(tiny_model_dir, float_artifact, PROMPTS, max_new_tokens=12, batch_size=4)
    assert result.passed, result.reasons
    assert result.divergence is None and result.token_agreement == 1.0
    assert result.max_logit_diff <= 1e-3
    assert result.timings["ort_tokens_per_s"] > 0 and result.timings["torch_tokens_per_s"] > 0


def _perturb_largest_initializer(src: Path, dst: Path) -> None:
    import onnx
    from onnx import numpy_helper

    shutil.copytree(src, dst)
    model = onnx.load(str(dst / MODEL_FILE))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(init).copy()
    values += np.random.default_rng(0).normal(0, 0.5, values.shape).astype(values.dtype) * values.std()
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(dst / MODEL_FILE))


def test_gate_catches_a_perturbed_weight(tiny_model_dir: Path, float_artifact: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    _perturb_largest_initializer(float_artifact, broken)
    result = run_parity_gate(tiny_model_dir, broken, PROMPTS, max_new_tokens=12, batch_size=4)
    assert not result.passed
    assert result.max_logit_diff > 1e-3
    assert any("logit" in r for r in result.reasons)


def test_gate_catches_an_export_of_another_model(
    tiny_model_dir: Path, other_model_dir: Path, data_root: Path
) -> None:
    wrong = export_onnx(other_model_dir, data_root).artifact_dir
    result = run_parity_gate(tiny_model_dir, wrong, PROMPTS, max_new_tokens=12, batch_size=4)
    assert not result.passed
    assert result.divergence is not None
    d = result.divergence
    assert d.prompt_ids and d.prompt_text
    assert d.torch_tokens[: d.token_index] == d.ort_tokens[: d.token_index]
    assert d.torch_tokens[d.token_index:] != d.ort_tokens[d.token_index:]


def _exact_match(references: list[str]):  # noqa: ANN202
    def metric(texts) -> float:  # noqa: ANN001
        return float(np.mean([t == r for t, r in zip(texts, references, strict=True)]))

    return metric


def test_quantised_export_is_judged_by_the_task_metric(
    quant_model_dir: Path, quant_other_dir: Path, data_root: Path
) -> None:
    from flywheel.ml.ort_runtime import OrtGenerator

    tiny_model_dir, other_model_dir = quant_model_dir, quant_other_dir
    float_artifact = export_onnx(tiny_model_dir, data_root).artifact_dir

    # The task's expected answers: what the float model says (verified equal to PyTorch above).
    float_gen = OrtGenerator(float_artifact)
    references = [float_gen.generate([p], max_new_tokens=12)[0].text for p in PROMPTS]
    quantised = export_onnx(tiny_model_dir, data_root, quantize=True)
    assert quantised.manifest["quantized"] is True
    assert quantised.artifact_dir != float_artifact
    with pytest.raises(ParityError):
        run_parity_gate(tiny_model_dir, quantised.artifact_dir, PROMPTS)
    good = run_parity_gate(
        tiny_model_dir, quantised.artifact_dir, PROMPTS, max_new_tokens=12,
        metric=_exact_match(references), metric_margin=0.34,
    )
    assert good.metric is not None and good.metric.torch_value == 1.0
    assert good.passed, (good.reasons, good.metric)
    bad_source = export_onnx(other_model_dir, data_root, quantize=True).artifact_dir
    bad = run_parity_gate(
        tiny_model_dir, bad_source, PROMPTS, max_new_tokens=12,
        metric=_exact_match(references), metric_margin=0.34,
    )
    assert not bad.passed and bad.metric is not None and bad.metric.ort_value < 0.66
