"""Export a Hugging Face causal LM directory to ONNX with a KV cache, as a content-addressed artifact.

The graph takes flat inputs ``input_ids``, ``attention_mask`` (past + new tokens),
``position_ids`` and ``past_key_values.<layer>.key|value`` (``[batch, kv_heads, past, head_dim]``,
past may be 0 on the first step) and returns ``logits`` and ``present.<layer>.key|value``.
Batch, sequence and past length are dynamic. The TorchScript exporter (``dynamo=False``) is used:
it takes well under a second for the tiny model and gives the same greedy tokens as dynamo.

    result = export_onnx(Path("var/models/tiny-base"), Path("var"), quantize=False)
    result.artifact_dir  # var/artifacts/onnx/<digest>/ with model.onnx, tokenizer, manifest.json
"""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.logging import get_logger
from flywheel.ml import MLError, artifacts

log = get_logger(__name__)

ARTIFACT_KIND = "onnx"
MODEL_FILE = "model.onnx"
DEFAULT_OPSET = 17
# Files copied verbatim from the source directory when present: tokenizer, chat template, config.
_COPIED_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "config.json",
    "generation_config.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja", ".txt", ".model")


class ExportError(MLError):
    """The model could not be traced, checked or quantised, or the source is not a model dir."""


@dataclass(frozen=True)
class KvLayout:
    """Shape of the KV cache the exported graph expects and returns."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int | None

    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def present_names(self) -> list[str]:
        return [f"present.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KvLayout:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ExportResult:
    """Where an export landed and what its manifest says."""

    artifact_dir: Path
    manifest: dict[str, Any]
    reused: bool

    @property
    def onnx_path(self) -> Path:
        return self.artifact_dir / MODEL_FILE


def load_torch_model(model_dir: Path):  # noqa: ANN201 - torch is imported lazily
    """Load a causal LM in float32 with eager attention (traceable masks), in eval mode.

    Raises:
        ModelLoadError: the directory cannot be opened (see ``flywheel.ml.loading``).
    """
    from flywheel.ml.loading import load_model

    model = load_model(model_dir)
    # The SDPA path decides from the data whether to build a mask; a trace would freeze that.
    model.set_attn_implementation("eager")
    return model.eval()


class _KvCacheWrapper:
    """Builds the torch module with flat cache tensors (defined lazily: torch is optional)."""

    @staticmethod
    def build(model):  # noqa: ANN001, ANN205
        import torch
        from transformers import DynamicCache

        class KvCacheModule(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, position_ids, *past):  # noqa: ANN001
                cache = DynamicCache(list(zip(past[0::2], past[1::2], strict=True)))
                out = self.inner(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    past_key_values=cache,
                    use_cache=True,
                    return_dict=True,
                )
                flat = []
                for layer in out.past_key_values.layers:
                    flat += [layer.keys, layer.values]
                return (out.logits, *flat)

        return KvCacheModule(model).eval()


def _sample_inputs(model) -> tuple[tuple, KvLayout]:  # noqa: ANN001
    """Trace inputs with a real non-empty past, a padded row and more than one new token.

    Tracing with past > 0, seq > 1 and batch > 1 keeps every one of those sizes symbolic.
    """
    import torch

    vocab = int(model.config.vocab_size)
    gen = torch.Generator().manual_seed(0)
    batch, past_len, new_len = 2, 4, 3
    prefix = torch.randint(0, vocab, (batch, past_len), generator=gen)
    with torch.no_grad():
        prefill = model(input_ids=prefix, use_cache=True, return_dict=True)
    past = []
    for layer in prefill.past_key_values.layers:
        past += [layer.keys.detach().clone(), layer.values.detach().clone()]
    mask = torch.ones(batch, past_len + new_len, dtype=torch.long)
    mask[1, :2] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, past_len:]
    ids = torch.randint(0, vocab, (batch, new_len), generator=gen)
    first = past[0]
    layout = KvLayout(
        num_layers=len(past) // 2,
        num_kv_heads=int(first.shape[1]),
        head_dim=int(first.shape[3]),
        vocab_size=vocab,
        max_positions=getattr(model.config, "max_position_embeddings", None),
    )
    return (ids, mask, positions, *past), layout


def export_model(model, onnx_path: Path, opset: int = DEFAULT_OPSET) -> KvLayout:  # noqa: ANN001
    """Trace a loaded causal LM to ``onnx_path`` with KV-cache inputs and outputs.

    The model should use eager attention (see ``load_torch_model``): the SDPA path decides
    whether to build a mask from the data, and a trace would freeze that decision.
    """
    import onnx
    import torch

    args, layout = _sample_inputs(model)
    inputs = ["input_ids", "attention_mask", "position_ids", *layout.past_names()]
    outputs = ["logits", *layout.present_names()]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    axes.update({name: {0: "batch", 2: "past_sequence"} for name in layout.past_names()})
    axes.update({name: {0: "batch", 2: "total_sequence"} for name in layout.present_names()})
    wrapper = _KvCacheWrapper.build(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, args, str(onnx_path), input_names=inputs, output_names=outputs,
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    try:
        onnx.checker.check_model(str(onnx_path))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported graph failed the ONNX checker: {exc}") from None
    return layout


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def source_digest(model_dir: Path) -> str:
    """SHA-256 over the weight, config and tokenizer files of a model directory."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).iterdir()):
        if path.is_file() and path.name.endswith(_WEIGHT_SUFFIXES):
            digest.update(f"{path.name}\0{artifacts.file_sha256(path)}\n".encode())
    return digest.hexdigest()


def find_export(root: Path, source_sha256: str, quantized: bool, opset: int) -> Path | None:
    """An existing artifact exported from the same source with the same options, if any."""
    for path, manifest in artifacts.iter_artifacts(root, ARTIFACT_KIND):
        if (
            manifest.get("source_sha256") == source_sha256
            and manifest.get("quantized") == quantized
            and manifest.get("opset") == opset
            and (path / MODEL_FILE).is_file()
        ):
            return path
    return None


def _copy_side_files(model, model_dir: Path, staging: Path) -> None:  # noqa: ANN001
    for name in _COPIED_FILES:
        src = model_dir / name
        if src.is_file():
            shutil.copyfile(src, staging / name)
    if not (staging / "generation_config.json").exists():
        model.generation_config.to_json_file(str(staging / "generation_config.json"))


def export_onnx(
    model_dir: Path,
    root: Path,
    *,
    quantize: bool = False,
    opset: int = DEFAULT_OPSET,
    reuse: bool = True,
) -> ExportResult:
    """Export a merged HF causal-LM directory to a content-addressed ONNX artifact under ``root``.

    Args:
        model_dir: directory written by ``save_pretrained`` (weights, config, tokenizer).
        root: data root; the artifact lands in ``<root>/artifacts/onnx/<digest>/``.
        quantize: apply dynamic int8 weight quantisation.
        opset: ONNX opset for the TorchScript exporter.
        reuse: return an earlier export of the same source files and options without exporting.

    Raises:
        ModelLoadError: the source directory cannot be opened.
        ExportError: the model cannot be traced or checked.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} is not a model directory (no config.json)")
    src_hash = source_digest(model_dir)
    if reuse and (found := find_export(root, src_hash, quantize, opset)) is not None:
        log.info("onnx_export_reused", artifact=str(found))
        return ExportResult(found, artifacts.read_manifest(found), reused=True)
    import onnx  # heavy imports only when an export is actually needed
    import torch
    import transformers

    started = time.perf_counter()
    model = load_torch_model(model_dir)
    staging = artifacts.new_staging_dir(root, ARTIFACT_KIND)
    try:
        traced = staging / ("fp32.onnx.tmp" if quantize else MODEL_FILE)
        layout = export_model(model, traced, opset)
        if quantize:
            quantize_int8(traced, staging / MODEL_FILE)
            traced.unlink()
        _copy_side_files(model, model_dir, staging)
        seconds = time.perf_counter() - started
        manifest = {
            "kind": ARTIFACT_KIND,
            "source_dir": str(model_dir.resolve()),
            "source_sha256": src_hash,
            "onnx_sha256": artifacts.file_sha256(staging / MODEL_FILE),
            "quantized": quantize,
            "opset": opset,
            "export_seconds": round(seconds, 4),
            "exporter": "torchscript",
            "layout": asdict(layout),
            "created_at": datetime.now(UTC).isoformat(),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "onnx": onnx.__version__,
            },
        }
        final = artifacts.commit_artifact(root, ARTIFACT_KIND, staging, manifest)
    except BaseException:
        artifacts.discard_staging(staging)
        raise
    log.info("onnx_exported", artifact=str(final), seconds=round(seconds, 3), quantized=quantize)
    return ExportResult(final, artifacts.read_manifest(final), reused=False)
