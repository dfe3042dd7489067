"""Turn one gate-passed ``ModelCandidate`` into a verified ONNX artifact and a canary.

Steps: register (when the trainer did not), make sure there is a merged model directory
(merging the adapter when only an adapter is given), export it to ONNX with a KV cache, run
the parity gate on a fixed set of shop questions, and then either mark the version ``failed``
with the diverging prompt (nothing is released) or put it on canary through the releaser.
A quantised release is exported twice: the float export must pass the strict token gate and
the int8 export the task-metric gate.

    exporter = CandidateExporter(settings, exporter_settings, engine, releaser)
    outcome = exporter.handle(candidate)   # CandidateOutcome(status="canary", ...)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from flywheel.db.engine import session_scope
from flywheel.db.models import ModelStatus
from flywheel.logging import get_logger
from flywheel.settings import Settings

from . import registry
from .releasing import Releaser
from .settings import SERVICE, ExporterSettings

log = get_logger(__name__)

PARITY_SEED = 20_261_121
ExportFn = Callable[..., Any]
GateFn = Callable[..., Any]
HANDLED = frozenset({"canary", "released", "rolled_back", "failed", "rejected"})


@dataclass(frozen=True)
class CandidateOutcome:
    """What happened to one candidate: ``skipped``, ``failed`` or ``canary``."""

    status: str
    line: str
    version: int
    reason: str
    artifact_dir: Path | None = None
    release: Any = None


def parity_questions(n: int) -> list[Any]:
    """The fixed shop questions every export is checked on (same seed, every time)."""
    from flywheel.demo.shop import sample_questions

    return sample_questions(n, PARITY_SEED, "train")


def parity_prompts(questions: Sequence[Any]) -> list[list[dict[str, Any]]]:
    from flywheel.demo.shop import question_messages

    return [question_messages(q) for q in questions]


def exact_match_metric(questions: Sequence[Any]) -> Callable[[Sequence[str]], float]:
    """Task metric for quantised exports: exact-match rate on the gate's questions."""
    from flywheel.demo.shop import is_correct

    def metric(texts: Sequence[str]) -> float:
        return sum(is_correct(t, q) for t, q in zip(texts, questions, strict=True)) / max(1, len(questions))

    return metric


def describe_failure(result: Any) -> str:
    """One line for the registry: the gate's reasons and the diverging prompt."""
    text = "parity gate failed: " + "; ".join(result.reasons)
    div = result.divergence
    if div is not None:
        text += (f"; diverging prompt #{div.prompt_index} ({div.mode}, token {div.token_index}): "
                 f"{div.prompt_text!r}; torch {div.torch_tokens[:12]} vs onnxruntime {div.ort_tokens[:12]}")
    return text


def _gate_metrics(result: Any, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}.passed": float(result.passed),
        f"{prefix}.max_logit_diff": float(result.max_logit_diff),
        f"{prefix}.token_agreement": float(result.token_agreement),
        f"{prefix}.torch_tokens_per_s": float(result.timings.get("torch_tokens_per_s", 0.0)),
        f"{prefix}.ort_tokens_per_s": float(result.timings.get("ort_tokens_per_s", 0.0)),
    }


class CandidateExporter:
    """Export, gate and canary candidates (see the module docstring).

    Args:
        export_fn: ``export_fn(model_dir, root, quantize=...) -> ExportResult`` (injectable).
        gate_fn: ``run_parity_gate``-compatible callable (injectable).
    """

    def __init__(self, settings: Settings, cfg: ExporterSettings, engine: Engine, releaser: Releaser,
                 *, export_fn: ExportFn | None = None, gate_fn: GateFn | None = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.engine = engine
        self.releaser = releaser
        self._export_fn = export_fn
        self._gate_fn = gate_fn
        self._questions = parity_questions(cfg.parity_prompts)

    # -- steps ------------------------------------------------------------------------------

    def _register(self, cand: Any) -> str:
        with session_scope(self.engine) as s:
            row = registry.ensure_candidate(
                s, line=cand.model_line, version=cand.version, base_model=cand.base_model,
                parent_version=cand.parent_version, adapter_path=cand.adapter_path,
                merged_path=cand.merged_path, batch_ids=list(cand.batch_ids),
                metrics=dict(cand.metrics))
            return registry.status_of(row)

    def _merged_dir(self, cand: Any) -> Path:
        if cand.merged_path:
            return Path(cand.merged_path)
        if not cand.adapter_path:
            raise registry.RegistryError("the candidate has neither a merged model nor an adapter")
        from flywheel.ml.loading import load_model, load_tokenizer

        out = self.settings.data_dir / "models" / cand.model_line / f"v{cand.version}-merged"
        if not (out / "config.json").is_file():
            model = load_model(cand.adapter_path, merge=True)
            out.mkdir(parents=True, exist_ok=True)
            model.save_pretrained(str(out))
            load_tokenizer(cand.adapter_path).save_pretrained(str(out))
        return out

    def _export(self, model_dir: Path, quantize: bool) -> Any:
        if self._export_fn is not None:
            return self._export_fn(model_dir, self.settings.data_dir, quantize=quantize)
        from flywheel.ml.onnx_export import export_onnx

        return export_onnx(model_dir, self.settings.data_dir, quantize=quantize)

    def _gate(self, model_dir: Path, artifact_dir: Path, quantized: bool) -> Any:
        gate = self._gate_fn
        if gate is None:
            from flywheel.ml.parity import run_parity_gate as gate
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.cfg.parity_max_new_tokens,
            "logit_tolerance": self.cfg.parity_logit_tolerance, "threads": self.cfg.threads,
            "quantized": quantized,
        }
        if quantized:
            kwargs.update(metric=exact_match_metric(self._questions),
                          metric_margin=self.cfg.parity_metric_margin)
        return gate(model_dir, artifact_dir, parity_prompts(self._questions), **kwargs)

    # -- outcomes ---------------------------------------------------------------------------

    def _fail(self, cand: Any, reason: str, metrics: dict[str, float]) -> CandidateOutcome:
        with session_scope(self.engine) as s:
            row = registry.require_version(s, cand.model_line, cand.version)
            registry.merge_metrics(row, metrics)
            registry.set_status(row, ModelStatus.FAILED, reason, SERVICE)
        log.warning("candidate_failed", line=cand.model_line, version=cand.version, reason=reason[:300])
        return CandidateOutcome("failed", cand.model_line, cand.version, reason)

    def handle(self, cand: Any) -> CandidateOutcome:
        """Export, gate and canary one candidate; idempotent for redelivered events."""
        line, version = cand.model_line, cand.version
        if not cand.gate.passed or cand.status == "rejected":
            return CandidateOutcome("skipped", line, version, "the evaluation gate did not pass")
        status = self._register(cand)
        if status in HANDLED:
            return CandidateOutcome("skipped", line, version, f"already handled (status {status})")
        started = time.perf_counter()
        try:
            model_dir = self._merged_dir(cand)
            exported = self._export(model_dir, False)
            result = self._gate(model_dir, exported.artifact_dir, False)
            metrics = _gate_metrics(result, "parity")
            if result.passed and self.cfg.quantize:
                quantized = self._export(model_dir, True)
                q_result = self._gate(model_dir, quantized.artifact_dir, True)
                metrics.update(_gate_metrics(q_result, "parity_int8"))
                exported, result = quantized, q_result
        except Exception as exc:  # export and gate raise whatever torch/onnx raise: a failed version
            return self._fail(cand, f"export failed: {type(exc).__name__}: {exc}", {})
        if not result.passed:
            return self._fail(cand, describe_failure(result), metrics)
        metrics["export.seconds"] = round(time.perf_counter() - started, 3)
        manifest = exported.manifest
        reason = (f"parity gate passed on {result.prompts} prompts (max logit diff "
                  f"{result.max_logit_diff:.2g}, token agreement {result.token_agreement:.2f})")
        release = self.releaser.canary(
            line, version, exported.artifact_dir, manifest.get("content_sha256", ""),
            share=self.cfg.canary_share, actor=SERVICE, reason=reason, metrics=metrics)
        log.info("candidate_on_canary", line=line, version=version, artifact=str(exported.artifact_dir),
                 seconds=metrics["export.seconds"])
        return CandidateOutcome("canary", line, version, reason, exported.artifact_dir, release)
