"""Build tiny random Llama models and tokenizers fast, for tests that need a real HF model dir.

Shared by the ML, export and serving tests::

    from tests.ml_fixtures import build_tiny_model_dir
    model_dir = build_tiny_model_dir(tmp_path)   # ~0.16M params, chat template, ~1 s

The directory is a normal ``save_pretrained`` output (config, safetensors weights, tokenizer
with the Flywheel chat template, generation config with eos/pad), loadable with
``flywheel.ml.loading.load_model`` / ``load_tokenizer`` or plain ``from_pretrained``. Weights
are random but deterministic for a seed; nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Small but not degenerate: 2 layers, 4 heads of 16 dims, a 384-token vocabulary.
TINY_TEST_SPEC = dict(vocab_size=384, hidden_size=64, num_layers=2, num_heads=4,
                      intermediate_size=256, max_positions=256)


def tokenizer_texts() -> list[str]:
    """Texts for the test tokenizer: part of the shipped corpus plus the shop's replies."""
    from flywheel.demo import shop
    from flywheel.ml.corpus import load_texts

    texts = load_texts()[:400]
    questions = shop.sample_questions(200, seed=0)
    return texts + [q.text for q in questions] + [shop.reference_answer(q) for q in questions]


def build_tiny_model(seed: int = 0, **spec_overrides: Any) -> tuple[Any, Any]:
    """A random tiny ``LlamaForCausalLM`` and its tokenizer, in memory."""
    import torch

    from flywheel.ml.tiny import TinySpec, build_model, train_tokenizer

    spec = TinySpec(**{**TINY_TEST_SPEC, **spec_overrides})
    tokenizer = train_tokenizer(tokenizer_texts(), spec.vocab_size)
    model = build_model(tokenizer, spec, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # At the usual init (std 0.02) a random model emits the same token whatever the prompt;
        # wider weights make greedy outputs depend on the input, which parity tests need.
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.25, generator=generator)
    model.eval()
    return model, tokenizer


def build_tiny_model_dir(tmp_path: Path, seed: int = 0, name: str = "tiny-model",
                         **spec_overrides: Any) -> Path:
    """Save a random tiny model + tokenizer under ``tmp_path / name`` and return that path."""
    model, tokenizer = build_tiny_model(seed, **spec_overrides)
    out = Path(tmp_path) / name
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
