"""Open local Hugging Face causal-LM directories, offline: models, tokenizers, adapters.

Works with any ``save_pretrained`` directory (the tiny demo model or a real one) and with
LoRA adapter directories written by ``flywheel.ml.train.save_adapter``: those record their
lineage (the base directory and the adapters merged before them), so the exact weights they
were trained on can be rebuilt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.logging import get_logger
from flywheel.ml import ModelLoadError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = get_logger(__name__)

LINEAGE_FILE = "lineage.json"


def _offline() -> None:
    # Belt and braces with local_files_only: nothing in this process may reach a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def suggested_threads() -> int:
    """Intra-op threads worth using now: the CPUs not already busy (1-minute load), at least 1.

    On a shared machine, more torch threads than idle cores is far slower than fewer: with
    two threads on two loaded cores a small matmul ran ~20x slower than with one.
    """
    cpus = available_cpus()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return cpus
    return max(1, min(cpus, int(cpus - busy + 0.5)))


def set_torch_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads (default: ``suggested_threads()``); returns the number set."""
    import torch

    n = n or suggested_threads()
    torch.set_num_threads(n)
    return n


def is_adapter_dir(path: str | Path) -> bool:
    """True for a PEFT adapter directory (``adapter_config.json`` and no model config)."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def read_lineage(adapter_dir: str | Path) -> dict[str, Any]:
    """``{"base_dir": str, "merged_adapters": [str, ...]}`` of an adapter directory.

    Falls back to the adapter config's ``base_model_name_or_path`` for adapters that were
    not written by Flywheel.
    """
    p = Path(adapter_dir)
    if (p / LINEAGE_FILE).is_file():
        return json.loads((p / LINEAGE_FILE).read_text())
    try:
        base = json.loads((p / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{p}: no lineage and no readable adapter_config.json") from exc
    return {"base_dir": base, "merged_adapters": []}


def load_tokenizer(path: str | Path) -> "PreTrainedTokenizerBase":
    """The tokenizer of a model directory, or of an adapter directory's base.

    A tokenizer without a pad token gets its eos token as pad token.
    """
    from transformers import AutoTokenizer

    _offline()
    p = Path(path)
    if is_adapter_dir(p) and not (p / "tokenizer_config.json").is_file():
        p = Path(read_lineage(p)["base_dir"])
    try:
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {p}: {exc}") from exc
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def _load_base(path: Path, dtype: "torch.dtype | None") -> "PreTrainedModel":
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=dtype or torch.float32
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a causal LM from {path}: {exc}") from exc
    return model


def merge_adapters(model: "PreTrainedModel", adapter_dirs: list[str | Path]) -> "PreTrainedModel":
    """Merge each LoRA adapter, in order, into ``model``'s weights."""
    from peft import PeftModel

    for adapter in adapter_dirs:
        try:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot merge adapter {adapter}: {exc}") from exc
    return model


def load_model(path: str | Path, *, dtype: "torch.dtype | None" = None,
               merge: bool = True) -> Any:
    """A causal LM in eval mode from a model directory or a Flywheel adapter directory.

    For an adapter directory, the base is loaded, the adapters in its lineage are merged, and
    the adapter itself is merged too (``merge=True``) or left attached as a ``PeftModel``.

    Raises:
        ModelLoadError: the directory (or a directory in its lineage) cannot be loaded.
    """
    _offline()
    p = Path(path)
    if not p.is_dir():
        raise ModelLoadError(f"{p} is not a directory")
    if not is_adapter_dir(p):
        return _load_base(p, dtype).eval()
    lineage = read_lineage(p)
    model = merge_adapters(_load_base(Path(lineage["base_dir"]), dtype), lineage["merged_adapters"])
    if merge:
        return merge_adapters(model, [p]).eval()
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(p)).eval()


def eos_token_ids(model: Any, tokenizer: "PreTrainedTokenizerBase") -> list[int]:
    """Every id that ends a generation: the generation config's eos ids and the tokenizer's."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    configured = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
