"""The tiny demo base model: a local BPE tokenizer, a ~4M-parameter Llama, brief pre-training.

No model hub is reachable, so the demo and the tests build their own base model, and every
path a real model takes (``from_pretrained``, chat template, generation config, PEFT, ONNX)
is exercised on it. Run::

    flywheel model init-tiny [--out DIR] [--pretrain-steps N] [--seed S]

The tokenizer is byte-level BPE trained on the shipped corpus with digits split one per
token (copying an order number is then copying tokens), plus chat special tokens. The model
is a ``LlamaForCausalLM`` (hidden 256, 4 layers, 4 heads, tied embeddings), pre-trained for a
few hundred steps: first on copying drills, then on shop conversations generated afresh for
every row (see :class:`PretrainConfig`). Neither ever contains the shop task's canonical
replies: the base writes fluent shop text and copies order numbers, but scores near zero on
the held-out task.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from flywheel.logging import get_logger

if TYPE_CHECKING:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

log = get_logger(__name__)

PAD, BOS, END = "<|pad|>", "<|bos|>", "<|end|>"
SYSTEM, USER, ASSISTANT, TOOL = "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, END, SYSTEM, USER, ASSISTANT, TOOL)
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"

# Renders system (with an optional tool list), user, assistant (content, then each tool call as
# <tool_call>{"name": ..., "arguments": {...}}</tool_call>) and tool messages, each closed by
# <|end|>, which is also the tokenizer's eos token. {% generation %} marks assistant output so
# `return_assistant_tokens_mask` and TRL's assistant-only loss work too.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content or '' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- if system or tools -%}"
    "{{- '<|system|>\\n' + system -}}"
    "{%- if tools -%}{{- ('\\n\\n' if system else '') + 'Tools:' -}}"
    "{%- for tool in tools -%}"
    "{{- '\\n' + ((tool.function if tool.function is defined else tool) | tojson) -}}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|assistant|>\\n' -}}{%- generation -%}"
    "{%- if message.content -%}{{- message.content -}}{%- endif -%}"
    "{%- for call in (message.tool_calls or []) -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{%- set args = fn.arguments if fn.arguments is string else (fn.arguments | tojson) -%}"
    "{{- '<tool_call>{\"name\": ' + (fn.name | tojson) + ', \"arguments\": ' + args + '}</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|end|>' -}}{%- endgeneration -%}{{- '\\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{{- '<|tool|>\\n' + (message.content or '') + '<|end|>\\n' -}}"
    "{%- elif message.role == 'system' -%}"
    "{{- '<|system|>\\n' + (message.content or '') + '<|end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|user|>\\n' + (message.content or '') + '<|end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinySpec:
    """Shape of a tiny Llama; the defaults give the ~4M-parameter demo base."""

    vocab_size: int = 1024
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 688
    max_positions: int = 512


@dataclass(frozen=True)
class PretrainConfig:
    """Pre-training schedule: rows of generated documents, AdamW, warm-up then cosine decay.

    The first ``drill_steps_share`` of the steps train only on copying drills (loss on the
    repeated numbers alone); after that each row is a drill with probability ``drill_share``
    and otherwise a freshly generated shop conversation (new order numbers every draw, so
    numbers cannot be memorised, only copied). Measured on this machine: without the drill
    phase, 800 steps on the shop corpus left the model unable to copy an order number; with
    200 drill steps first, the number was copied in 0.78 of new questions after 500 steps.
    """

    steps: int = 600
    batch_size: int = 16
    block_size: int = 96  # tokens per row; shorter documents are padded (no loss on padding)
    learning_rate: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0
    system_share: float = 0.8
    drill_steps_share: float = 1 / 3
    drill_share: float = 0.3

    def __post_init__(self) -> None:
        for name in ("drill_steps_share", "drill_share", "system_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.steps < 0 or self.batch_size < 1 or self.block_size < 8:
            raise ValueError("steps >= 0, batch_size >= 1 and block_size >= 8 are required")

    @property
    def drill_steps(self) -> int:
        return int(self.steps * self.drill_steps_share)


@dataclass(frozen=True)
class PretrainProgress:
    """One pre-training step as reported to a progress callback."""

    step: int
    total: int
    loss: float
    tokens_per_s: float
    eta_s: float


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024,
                    chat_template: str = CHAT_TEMPLATE) -> "PreTrainedTokenizerBase":
    """Train a byte-level BPE on ``texts`` and wrap it as a transformers fast tokenizer.

    Digits are split into single tokens before BPE so numbers are copied digit by digit.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=END, pad_token=PAD,
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, TOOL], model_max_length=512,
    )
    wrapped.chat_template = chat_template
    return wrapped


def tiny_config(tokenizer: "PreTrainedTokenizerBase", spec: TinySpec = TinySpec()) -> "LlamaConfig":
    """A Llama config sized by ``spec`` whose special ids match ``tokenizer``."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads, num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_positions, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rms_norm_eps=1e-5,
    )


def build_model(tokenizer: "PreTrainedTokenizerBase", spec: TinySpec = TinySpec(),
                seed: int = 0) -> "LlamaForCausalLM":
    """A randomly initialised tiny Llama (deterministic for a seed)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(tokenizer, spec))
    _set_generation_defaults(model, tokenizer)
    return model


def _set_generation_defaults(model: Any, tokenizer: "PreTrainedTokenizerBase") -> None:
    gen = model.generation_config
    gen.bos_token_id = tokenizer.bos_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.do_sample = False
    gen.max_new_tokens = 64


class DocumentSampler:
    """Draws pre-training rows: copying drills and freshly generated shop conversations."""

    def __init__(self, tokenizer: "PreTrainedTokenizerBase", cfg: PretrainConfig) -> None:
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def drill(self, loss_on_head: bool) -> tuple[list[int], int]:
        """A copying drill's token ids and how many leading tokens carry no loss."""
        from flywheel.ml.corpus.generate import copy_drill

        head, tail = copy_drill(self.rng)
        head_ids = self._ids(f"{BOS}{head}")
        return head_ids + self._ids(f"{tail}{END}"), 0 if loss_on_head else len(head_ids)

    def conversation(self) -> list[int]:
        from flywheel.demo.shop import SYSTEM_PROMPT
        from flywheel.ml.corpus.generate import sample_chat

        chat = sample_chat(self.rng)
        messages = chat["messages"]
        if self.rng.random() < self.cfg.system_share:
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, *messages]
        text = self.tokenizer.apply_chat_template(messages, tools=chat.get("tools"), tokenize=False)
        return self._ids(text)

    def batch(self, drills_only: bool) -> tuple["torch.Tensor", "torch.Tensor"]:
        """``(input_ids, labels)`` of one batch; labels are -100 on padding and unscored heads."""
        import torch

        cfg, pad = self.cfg, self.tokenizer.pad_token_id
        rows, labels = [], []
        for _ in range(cfg.batch_size):
            if drills_only:
                ids, skip = self.drill(loss_on_head=False)
            elif self.rng.random() < cfg.drill_share:
                ids, skip = self.drill(loss_on_head=True)
            else:
                ids, skip = self.conversation(), 0
            ids = ids[: cfg.block_size]
            fill = cfg.block_size - len(ids)
            rows.append(ids + [pad] * fill)
            labels.append([-100] * min(skip, len(ids)) + ids[skip:] + [-100] * fill)
        return torch.tensor(rows, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


def _lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model: "LlamaForCausalLM", sampler: DocumentSampler, cfg: PretrainConfig,
             progress: Callable[[PretrainProgress], None] | None = None) -> float:
    """Full-parameter causal-LM training on sampled rows; returns the last smoothed loss."""
    import torch

    from flywheel.ml.train import TrainingError

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.95),
                            weight_decay=cfg.weight_decay)
    model.train()
    smoothed, start = float("nan"), time.perf_counter()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        inputs, labels = sampler.batch(drills_only=step < cfg.drill_steps)
        loss = model(input_ids=inputs, labels=labels).loss
        if not torch.isfinite(loss):
            raise TrainingError(f"pre-training loss is {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        smoothed = value if math.isnan(smoothed) else 0.9 * smoothed + 0.1 * value
        if progress is not None:
            elapsed = time.perf_counter() - start
            rate = (step + 1) * cfg.batch_size * cfg.block_size / elapsed
            eta = elapsed / (step + 1) * (cfg.steps - step - 1)
            progress(PretrainProgress(step + 1, cfg.steps, smoothed, rate, eta))
    model.eval()
    return smoothed


def init_tiny(out_dir: Path, pretrain_steps: int = PretrainConfig.steps, seed: int = 0,
              spec: TinySpec = TinySpec(),
              progress: Callable[[PretrainProgress], None] | None = None,
              pretrain_config: PretrainConfig | None = None) -> Path:
    """Train the tokenizer, build and pre-train the tiny Llama, and save both to ``out_dir``.

    ``pretrain_config`` overrides the schedule (its steps and seed win over the arguments).
    Returns ``out_dir``, a Hugging Face model directory that ``flywheel.ml.loading`` opens.
    """
    import torch

    from flywheel.ml.corpus import load_chats, load_texts

    started = time.perf_counter()
    chats = load_chats()
    texts = load_texts() + [m["content"] for c in chats for m in c["messages"] if m.get("content")]
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    model = build_model(tokenizer, spec, seed)
    cfg = pretrain_config or PretrainConfig(steps=pretrain_steps, seed=seed)
    log.info("tiny_pretrain_started", params=model.num_parameters(), vocab=len(tokenizer),
             steps=cfg.steps, drill_steps=cfg.drill_steps)
    torch.manual_seed(cfg.seed)
    loss = pretrain(model, DocumentSampler(tokenizer, cfg), cfg, progress) \
        if cfg.steps > 0 else float("nan")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = {"kind": "flywheel-tiny", "spec": asdict(spec), "pretrain": asdict(cfg),
            "params": model.num_parameters(), "final_loss": loss,
            "seconds": round(time.perf_counter() - started, 2)}
    (out_dir / "flywheel_tiny.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("tiny_saved", out=str(out_dir), loss=round(loss, 4), seconds=info["seconds"])
    return out_dir
