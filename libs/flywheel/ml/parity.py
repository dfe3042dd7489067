"""The export parity gate: onnxruntime must generate what PyTorch generates.

For a float export, on a fixed prompt set:

- greedy tokens from onnxruntime equal PyTorch's on every prompt, at batch size 1 and in
  left-padded batches (PyTorch runs at batch size 1, the reference);
- the largest absolute logit difference over every position of each prompt's first step
  (the prefill) stays within ``logit_tolerance``.

A quantised export cannot match token for token, so it is judged by a caller-supplied task
metric over the generated texts: the onnxruntime score must not fall more than ``metric_margin``
below the PyTorch score. Both sides encode prompts with their own tokenizer (source directory
vs artifact), so a broken tokenizer copy shows up as a divergence too.

    result = run_parity_gate(Path("var/models/merged"), artifact_dir, prompts)
    if not result.passed:
        print(result.reasons, result.divergence)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.logging import get_logger
from flywheel.ml import MLError, artifacts
from flywheel.ml.ort_runtime import OrtGenerator, Prompt

log = get_logger(__name__)

DEFAULT_LOGIT_TOLERANCE = 1e-3
TaskMetric = Callable[[Sequence[str]], float]


class ParityError(MLError):
    """The gate was called in a way it cannot judge (e.g. a quantised model without a metric)."""


@dataclass(frozen=True)
class Divergence:
    """The first prompt whose onnxruntime tokens differ from PyTorch's."""

    prompt_index: int
    mode: str  # "batch1" or "batched"
    token_index: int
    torch_tokens: list[int]
    ort_tokens: list[int]
    prompt_ids: list[int] = field(default_factory=list)
    prompt_text: str = ""


@dataclass(frozen=True)
class MetricCheck:
    torch_value: float
    ort_value: float
    margin: float
    passed: bool


@dataclass(frozen=True)
class ParityResult:
    """Outcome of the gate, with evidence for a failure."""

    passed: bool
    prompts: int
    quantized: bool
    max_logit_diff: float
    logit_tolerance: float
    token_agreement: float
    divergence: Divergence | None
    metric: MetricCheck | None
    timings: dict[str, float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    """Index of the first differing token, or -1 when the sequences are equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return -1 if len(a) == len(b) else min(len(a), len(b))


def _torch_greedy(model, tokenizer, prompts, max_new_tokens, eos_ids, pad_id):  # noqa: ANN001, ANN202
    """Greedy continuations at batch size 1 with Hugging Face generate, cut before the first eos."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
        eos_token_id=sorted(eos_ids), pad_token_id=pad_id,
    )
    outputs, prompt_ids = [], []
    for prompt in prompts:
        ids = _encode(tokenizer, prompt)
        prompt_ids.append(ids)
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                generation_config=config,
            )
        new = out[0, len(ids):].tolist()
        cut = next((i for i, t in enumerate(new) if t in eos_ids), len(new))
        outputs.append(new[:cut])
    return outputs, prompt_ids


def _encode(tokenizer, prompt: Prompt) -> list[int]:  # noqa: ANN001
    from flywheel.ml.chat import prompt_ids

    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    items = list(prompt)
    if items and isinstance(items[0], Mapping):
        return list(prompt_ids(tokenizer, items))
    return [int(t) for t in items]


def _max_logit_diff(model, gen: OrtGenerator, prompt_ids: Sequence[Sequence[int]]) -> float:  # noqa: ANN001
    import torch

    worst = 0.0
    for ids in prompt_ids:
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([list(ids)])).logits[0].numpy()
        got = gen.prefill_logits(ids)
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def _ort_runs(gen: OrtGenerator, prompts, max_new_tokens: int, batch_size: int):  # noqa: ANN001, ANN202
    """Greedy onnxruntime outputs at batch size 1 and in left-padded chunks, with timings."""
    started = time.perf_counter()
    single = [gen.generate([p], max_new_tokens=max_new_tokens)[0].token_ids for p in prompts]
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    batched: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        batched += [g.token_ids for g in gen.generate(chunk, max_new_tokens=max_new_tokens)]
    return single, batched, {"ort_batch1_s": single_s, "ort_batched_s": time.perf_counter() - started}


def _find_divergence(reference, runs: dict[str, list[list[int]]]) -> tuple[Divergence | None, float]:  # noqa: ANN001
    first: Divergence | None = None
    equal = total = 0
    for mode, outputs in runs.items():
        for i, (want, got) in enumerate(zip(reference, outputs, strict=True)):
            total += 1
            at = first_difference(want, got)
            if at < 0:
                equal += 1
            elif first is None:
                first = Divergence(i, mode, at, list(want), list(got))
    return first, (equal / total if total else 1.0)


def run_parity_gate(
    model_dir: Path,
    artifact_dir: Path,
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 16,
    batch_size: int = 8,
    logit_tolerance: float = DEFAULT_LOGIT_TOLERANCE,
    metric: TaskMetric | None = None,
    metric_margin: float = 0.02,
    quantized: bool | None = None,
    threads: int = 0,
    torch_threads: int | None = 1,
) -> ParityResult:
    """Compare an ONNX artifact with the PyTorch model it was exported from.

    Args:
        model_dir: the source HF directory (merged weights and tokenizer).
        artifact_dir: the exported artifact (see ``flywheel.ml.onnx_export``).
        prompts: texts, token id lists or chat conversations; at least one.
        batch_size: rows per left-padded onnxruntime batch (the set is split into chunks).
        metric: task score over greedy texts in prompt order, higher is better. Required for a
            quantised artifact; for a float one it is checked too when given.
        quantized: override the artifact manifest's ``quantized`` flag.
        threads: onnxruntime intra-op threads (0: its default).
        torch_threads: PyTorch threads while the gate runs (restored after; None: unchanged).
            Small models decode faster on one thread, far faster on a busy machine.

    Raises:
        ParityError: no prompts, or a quantised artifact without a metric.
    """
    if not prompts:
        raise ParityError("the parity gate needs at least one prompt")
    if quantized is None:
        quantized = bool(artifacts.read_manifest(artifact_dir).get("quantized", False))
    if quantized and metric is None:
        raise ParityError("a quantised artifact is judged by a task metric; none was given")
    prompts = list(prompts)
    gen = OrtGenerator(artifact_dir, threads=threads)
    with _torch_threads(torch_threads):
        model, reference, prompt_ids, torch_s = _reference(model_dir, prompts, max_new_tokens, gen)
        max_diff = _max_logit_diff(model, gen, prompt_ids)
    single, batched, timings = _ort_runs(gen, prompts, max_new_tokens, batch_size)
    timings["torch_batch1_s"] = torch_s
    timings["torch_tokens_per_s"] = sum(map(len, reference)) / max(torch_s, 1e-9)
    timings["ort_tokens_per_s"] = sum(map(len, single)) / max(timings["ort_batch1_s"], 1e-9)
    divergence, agreement = _find_divergence(reference, {"batch1": single, "batched": batched})
    if divergence is not None:
        ids = prompt_ids[divergence.prompt_index]
        divergence = replace(divergence, prompt_ids=list(ids), prompt_text=gen.tokenizer.decode(ids))
    check = _check_metric(metric, metric_margin, gen, reference, single) if metric else None
    reasons = _reasons(quantized, divergence, max_diff, logit_tolerance, check)
    result = ParityResult(
        passed=not reasons, prompts=len(prompts), quantized=quantized, max_logit_diff=max_diff,
        logit_tolerance=logit_tolerance, token_agreement=agreement, divergence=divergence,
        metric=check, timings=timings, reasons=tuple(reasons),
    )
    log.info("parity_gate", passed=result.passed, prompts=len(prompts), max_logit_diff=max_diff,
             token_agreement=agreement, quantized=quantized)
    return result


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reference(model_dir: Path, prompts: list, max_new_tokens: int, gen: OrtGenerator):  # noqa: ANN202
    """The PyTorch model, its greedy outputs at batch 1, the prompt ids and the seconds taken."""
    from flywheel.ml.loading import load_tokenizer
    from flywheel.ml.onnx_export import load_torch_model

    model = load_torch_model(model_dir)
    started = time.perf_counter()
    reference, prompt_ids = _torch_greedy(
        model, load_tokenizer(model_dir), prompts, max_new_tokens, gen.eos_ids, gen.pad_id
    )
    return model, reference, prompt_ids, time.perf_counter() - started


def _check_metric(metric: TaskMetric, margin: float, gen: OrtGenerator, reference, single) -> MetricCheck:  # noqa: ANN001
    decode = gen.tokenizer.decode
    torch_value = float(metric([decode(t, skip_special_tokens=True) for t in reference]))
    ort_value = float(metric([decode(t, skip_special_tokens=True) for t in single]))
    return MetricCheck(torch_value, ort_value, margin, ort_value >= torch_value - margin)


def _reasons(quantized, divergence, max_diff, tolerance, check) -> list[str]:  # noqa: ANN001
    reasons = []
    if not quantized:
        if divergence is not None:
            reasons.append(
                f"greedy tokens diverge on prompt {divergence.prompt_index} ({divergence.mode}) "
                f"at token {divergence.token_index}"
            )
        if not max_diff <= tolerance:  # also catches NaN
            reasons.append(f"max logit difference {max_diff:.3g} exceeds {tolerance:.3g}")
    if check is not None and not check.passed:
        reasons.append(
            f"task metric {check.ort_value:.4f} is more than {check.margin} below {check.torch_value:.4f}"
        )
    return reasons
