"""Evaluation with PyTorch: batched greedy generation, shop exact match, preference accuracy.

Generation is a small greedy loop over left-padded batches with a KV cache: the prompt is run
once, then one token per step for every unfinished row. It is the reference the ONNX export
is compared against, so it does nothing clever (no sampling, no repetition penalties).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from flywheel.ml.chat import collate, prompt_ids, render_pair
from flywheel.ml.loading import eos_token_ids

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from flywheel.demo.shop import Question


def _greedy_batch(model: Any, prompts: Sequence[Sequence[int]], pad_id: int, eos: "torch.Tensor",
                  max_new_tokens: int) -> list[list[int]]:
    import torch

    from flywheel.ml.chat import pad_ids

    ids, mask = pad_ids(prompts, pad_id, side="left")
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    done = torch.zeros(len(prompts), dtype=torch.bool)
    generated: list[torch.Tensor] = []
    for _ in range(max_new_tokens):
        token = out.logits[:, -1].argmax(-1)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        generated.append(token)
        done |= torch.isin(token, eos)
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                    past_key_values=out.past_key_values, use_cache=True)
    rows = torch.stack(generated, dim=1).tolist() if generated else [[] for _ in prompts]
    eos_set = set(eos.tolist())
    return [_cut_at_eos(row, eos_set) for row in rows]


def _cut_at_eos(row: list[int], eos: set[int]) -> list[int]:
    for i, token in enumerate(row):
        if token in eos:
            return row[:i]
    return row


def generate_ids(model: Any, prompts: Sequence[Sequence[int]], *, pad_token_id: int,
                 eos_token_ids: Sequence[int], max_new_tokens: int = 64,
                 batch_size: int = 32) -> list[list[int]]:
    """Greedy continuations of token-id prompts (end tokens excluded), in input order."""
    import torch

    eos = torch.tensor(list(eos_token_ids), dtype=torch.long)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: dict[int, list[int]] = {}
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            rows = _greedy_batch(model, [prompts[i] for i in chunk], pad_token_id, eos, max_new_tokens)
            results.update(zip(chunk, rows))
    return [results[i] for i in range(len(prompts))]


def generate(model: Any, tokenizer: "PreTrainedTokenizerBase",
             conversations: Sequence[Sequence[Mapping[str, Any]]], *,
             tools: Sequence[Mapping[str, Any]] | None = None, max_new_tokens: int = 64,
             batch_size: int = 32) -> list[str]:
    """Greedy assistant replies to each conversation, decoded without special tokens."""
    was_training = model.training
    model.eval()
    prompts = [prompt_ids(tokenizer, conv, tools) for conv in conversations]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = generate_ids(model, prompts, pad_token_id=int(pad),
                        eos_token_ids=eos_token_ids(model, tokenizer),
                        max_new_tokens=max_new_tokens, batch_size=batch_size)
    model.train(was_training)
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows]


@dataclass
class ExactMatchReport:
    """Exact-match accuracy on shop questions, overall and per intent, with the answers."""

    accuracy: float
    per_intent: dict[str, float]
    answers: list[str] = field(repr=False, default_factory=list)
    correct: list[bool] = field(repr=False, default_factory=list)


def exact_match_report(model: Any, tokenizer: "PreTrainedTokenizerBase",
                       questions: Sequence["Question"], *, batch_size: int = 64,
                       max_new_tokens: int = 40) -> ExactMatchReport:
    """Answer each shop question greedily and compare with its canonical reply."""
    from flywheel.demo.shop import is_correct, question_messages

    answers = generate(model, tokenizer, [question_messages(q) for q in questions],
                       max_new_tokens=max_new_tokens, batch_size=batch_size)
    correct = [is_correct(a, q) for a, q in zip(answers, questions)]
    by_intent: dict[str, list[bool]] = defaultdict(list)
    for q, ok in zip(questions, correct):
        by_intent[q.intent].append(ok)
    per_intent = {k: sum(v) / len(v) for k, v in sorted(by_intent.items())}
    accuracy = sum(correct) / len(correct) if correct else 0.0
    return ExactMatchReport(accuracy, per_intent, answers, correct)


def exact_match(model: Any, tokenizer: "PreTrainedTokenizerBase", questions: Sequence["Question"],
                *, batch_size: int = 64, max_new_tokens: int = 40) -> float:
    """Fraction of shop questions answered exactly with the canonical reply."""
    return exact_match_report(model, tokenizer, questions, batch_size=batch_size,
                              max_new_tokens=max_new_tokens).accuracy


def preference_accuracy(model: Any, tokenizer: "PreTrainedTokenizerBase",
                        pairs: Sequence[Mapping[str, Any]],
                        reference_model_ctx: Callable[[], Any] | None = None, *,
                        batch_size: int = 16, max_length: int = 512) -> float:
    """Fraction of pairs whose implicit reward prefers the chosen answer.

    The implicit reward is ``log p_policy(answer) - log p_reference(answer)``; the reference is
    the model inside ``reference_model_ctx()`` (default: the adapter disabled for a PeftModel;
    for a plain model without a reference, plain log-probabilities are compared).
    """
    import torch

    from flywheel.ml.train import sequence_logps

    ctx = reference_model_ctx or getattr(model, "disable_adapter", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rendered = [render_pair(tokenizer, p["prompt"], p["chosen"], p["rejected"], p.get("tools"),
                            max_length) for p in pairs]
    was_training, wins = model.training, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rendered), batch_size):
            chunk = rendered[start : start + batch_size]
            batch = collate([c for c, _ in chunk] + [r for _, r in chunk], int(pad))
            reward, _ = sequence_logps(model, batch)
            if ctx is not None:
                with ctx():
                    reward = reward - sequence_logps(model, batch)[0]
            n = len(chunk)
            wins += int((reward[:n] > reward[n:]).sum())
    model.train(was_training)
    return wins / len(rendered) if rendered else 0.0
