"""Tiny random causal-LM directories for export and serving tests (no downloads).

Uses ``tests/ml_fixtures.py::build_tiny_model_dir`` when it is present; otherwise builds a
~0.1M-parameter Llama with a locally trained byte-level BPE tokenizer and a chat template.
Loaded by file path from the conftests so it works however pytest is started.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "ml_fixtures.py"
_CORPUS = [
    "Hello! How can I help you with your order today?",
    "Your order 4821 has shipped and arrives on Tuesday.",
    "I am sorry, the refund for order 1930 is still pending.",
    "You can return items within thirty days of delivery.",
    "Please share your order number so I can look it up.",
] * 8
_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] or '' }}"
    "{% for c in (m['tool_calls'] or []) %}<tool_call>{{ c['function']['name'] }}</tool_call>{% endfor %}"
    "<|end|>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _shared_builder():  # noqa: ANN202
    if not _SHARED_FIXTURES.is_file():
        return None
    name = "flywheel_tests_ml_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _SHARED_FIXTURES)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[name], "build_tiny_model_dir", None)


def _build_local(out: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_CORPUS, trainers.BpeTrainer(
        vocab_size=384, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    ))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|end|>",
    )
    tokenizer.chat_template = _TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_model_dir(tmp_path: Path) -> Path:
    """A tiny random model directory (shared fixture when available)."""
    shared = _shared_builder()
    if shared is not None:
        return Path(shared(tmp_path))
    return _build_local(tmp_path / "tiny")


def perturbed_copy(model_dir: Path, out: Path, seed: int, scale: float = 0.5) -> Path:
    """Copy a model directory as a clearly different 'version' with the same tokenizer and shape.

    Random tiny models with tied embeddings mostly echo their last input token, so noise alone
    barely changes greedy outputs; the copy also unties the output head and permutes its rows.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * scale * param.std().clamp(min=1e-3))
        embed = model.get_input_embeddings().weight
        perm = torch.randperm(embed.shape[0], generator=gen)
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(embed[perm].clone())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(out)
    return out
