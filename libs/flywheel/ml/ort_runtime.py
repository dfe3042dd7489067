"""Text generation with onnxruntime over an exported ONNX artifact with a KV cache.

Prompts (token ids, plain text or chat messages) are left-padded into one batch; each step feeds
only the new token per row plus the cache. Every row carries its own sampling parameters and
random generator, so a row's output does not depend on what it is batched with. Rows leave the
batch as soon as they finish (end token, stop sequence, length or cancellation).

    gen = OrtGenerator(Path("var/artifacts/onnx/3a26..."), threads=2)
    [out] = gen.generate([[{"role": "user", "content": "Where is order 1234?"}]], max_new_tokens=32)
    out.text, out.finish_reason, out.token_ids
    for event in gen.stream(["Hello"], max_new_tokens=8):
        print(event.text, end="")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.ml import MLError

MODEL_FILE = "model.onnx"
_PAST_PREFIX = "past_key_values."
_ORT_FLOAT = {"tensor(float)": np.float32, "tensor(float16)": np.float16}

Message = Mapping[str, Any]
Prompt = str | Sequence[int] | Sequence[Message]


class GenerationError(MLError):
    """A generation request cannot be served (bad parameters, prompt too long, no template)."""


@dataclass(frozen=True)
class SamplingParams:
    """Per-row decoding parameters. ``temperature == 0`` means greedy."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise GenerationError("max_new_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise GenerationError("temperature must be within [0, 2]")
        if not 0.0 < self.top_p <= 1.0:
            raise GenerationError("top_p must be within (0, 1]")
        if not 0 <= self.top_logprobs <= 20:
            raise GenerationError("top_logprobs must be within [0, 20]")
        if any(not s for s in self.stop):
            raise GenerationError("stop sequences must be non-empty")


@dataclass(frozen=True)
class TopLogprob:
    token_id: int
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of a generated token under the model (temperature 1), with alternatives."""

    token_id: int
    token: str
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass
class Generation:
    """One finished row: a choice for one prompt."""

    prompt_index: int
    choice_index: int
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True)
class TokenEvent:
    """One streaming step of one row. ``text`` is the newly safe text (may be empty).

    The last event of a row has ``finish_reason`` and ``generation`` set.
    """

    row: int
    prompt_index: int
    choice_index: int
    token_id: int | None
    text: str
    logprob: TokenLogprob | None = None
    finish_reason: str | None = None
    generation: Generation | None = None


@dataclass
class RowSpec:
    """One row to decode: prompt ids, its parameters and an optional cancellation probe."""

    prompt_ids: list[int]
    params: SamplingParams
    prompt_index: int = 0
    choice_index: int = 0
    cancelled: Callable[[], bool] | None = None


@dataclass
class _RowState:
    row: int
    spec: RowSpec
    rng: np.random.Generator
    max_new: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish_reason: str | None = None


def load_eos_ids(artifact_dir: Path, tokenizer) -> set[int]:  # noqa: ANN001
    """End-of-sequence ids from generation_config.json plus the tokenizer's eos token."""
    ids: set[int] = set()
    path = Path(artifact_dir) / "generation_config.json"
    if path.is_file():
        value = json.loads(path.read_text()).get("eos_token_id")
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad token id lists into ``(input_ids, attention_mask)`` int64 arrays."""
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt):] = prompt
            mask[row, width - len(prompt):] = 1
    return ids, mask


def positions_from_mask(mask: np.ndarray) -> np.ndarray:
    """Position ids that start at 0 on each row's first real token (pads get 0)."""
    return np.clip(np.cumsum(mask, axis=1) - 1, 0, None).astype(np.int64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def sample_token(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """Greedy when temperature is 0, else temperature + nucleus (top-p) sampling."""
    if params.temperature == 0.0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / params.temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    if params.top_p < 1.0:
        cumulative = np.cumsum(probs[order])
        order = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]
    kept = probs[order] / probs[order].sum()
    pick = int(np.searchsorted(np.cumsum(kept), rng.random(), side="right"))
    return int(order[min(pick, len(order) - 1)])


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop sequence in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def safe_text_end(text: str, stops: Sequence[str]) -> int:
    """How much of ``text`` can be streamed now.

    Holds back a trailing incomplete UTF-8 character (decoded as U+FFFD) and any suffix that
    could still grow into a stop sequence.
    """
    end = len(text)
    while end > 0 and text[end - 1] == "\ufffd":
        end -= 1
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, end), 0, -1):
            if text[end - k:end] == stop[:k]:
                hold = max(hold, k)
                break
    return end - hold


class OrtGenerator:
    """An onnxruntime session and tokenizer for one exported artifact.

    Args:
        artifact_dir: directory with model.onnx, tokenizer files and generation_config.json.
        threads: intra-op threads for onnxruntime (0: onnxruntime's default).
        spin: let idle onnxruntime threads spin (lower latency, burns CPU on shared machines).
    """

    def __init__(self, artifact_dir: Path, threads: int = 0, spin: bool = False) -> None:
        import onnxruntime as ort

        from flywheel.ml.loading import load_tokenizer

        self.artifact_dir = Path(artifact_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self.session = ort.InferenceSession(
                str(self.artifact_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = load_tokenizer(self.artifact_dir)
        except Exception as exc:  # onnxruntime raises its own non-Python exception types
            raise GenerationError(f"cannot load artifact {self.artifact_dir}: {exc}") from exc
        self._inputs = {i.name: i for i in self.session.get_inputs()}
        self.past_names = [n for n in self._inputs if n.startswith(_PAST_PREFIX)]
        self.output_names = [o.name for o in self.session.get_outputs()]
        first = self._inputs[self.past_names[0]]
        self._kv_heads, self._head_dim = int(first.shape[1]), int(first.shape[3])
        self._kv_dtype = _ORT_FLOAT.get(first.type, np.float32)
        self.eos_ids = load_eos_ids(self.artifact_dir, self.tokenizer)
        self.pad_id = next(
            (int(i) for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id) if i is not None),
            0,
        )
        self.max_positions = self._read_max_positions()
        self._token_text: dict[int, str] = {}

    def _read_max_positions(self) -> int | None:
        path = self.artifact_dir / "config.json"
        if path.is_file():
            value = json.loads(path.read_text()).get("max_position_embeddings")
            return int(value) if value else None
        return None

    # -- prompts ------------------------------------------------------------------------------

    def render_chat(self, messages: Sequence[Message], tools: Sequence[Mapping] | None = None) -> list[int]:
        """Token ids of a conversation plus the assistant prompt, rendered exactly as in training."""
        from flywheel.ml import ChatFormatError
        from flywheel.ml.chat import prompt_ids

        if not getattr(self.tokenizer, "chat_template", None):
            raise GenerationError(f"the tokenizer in {self.artifact_dir} has no chat template")
        try:
            return list(prompt_ids(self.tokenizer, messages, tools))
        except ChatFormatError as exc:
            raise GenerationError(str(exc)) from exc

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids for a prompt given as text, token ids or chat messages."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        items = list(prompt)
        if items and isinstance(items[0], Mapping):
            return self.render_chat(items)
        return [int(t) for t in items]

    def token_text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id])
            self._token_text[token_id] = text
        return text

    # -- model --------------------------------------------------------------------------------

    def empty_past(self, batch: int) -> list[np.ndarray]:
        shape = (batch, self._kv_heads, 0, self._head_dim)
        return [np.zeros(shape, dtype=self._kv_dtype) for _ in self.past_names]

    def forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
        past: Sequence[np.ndarray],
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One session run: logits ``[batch, seq, vocab]`` and the new cache."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        feeds.update(zip(self.past_names, past, strict=True))
        outputs = self.session.run(self.output_names, feeds)
        return outputs[0], outputs[1:]

    def prefill_logits(self, token_ids: Sequence[int]) -> np.ndarray:
        """Logits ``[seq, vocab]`` of one prompt with an empty cache (batch 1)."""
        ids, mask = left_pad([list(token_ids)], self.pad_id)
        logits, _ = self.forward(ids, mask, positions_from_mask(mask), self.empty_past(1))
        return logits[0]

    # -- generation ---------------------------------------------------------------------------

    def check_row(self, spec: RowSpec) -> None:
        """Raise GenerationError when a row cannot be decoded (empty or too long a prompt)."""
        if not spec.prompt_ids:
            raise GenerationError("empty prompt")
        if self.max_positions is not None and len(spec.prompt_ids) >= self.max_positions:
            raise GenerationError(
                f"prompt has {len(spec.prompt_ids)} tokens; the model takes {self.max_positions}"
            )

    def _new_state(self, row: int, spec: RowSpec) -> _RowState:
        self.check_row(spec)
        budget = spec.params.max_new_tokens
        if self.max_positions is not None:
            budget = min(budget, self.max_positions - len(spec.prompt_ids))
        seed = spec.params.seed
        # Seeds may be any integer (OpenAI allows negatives); numpy wants non-negative entropy.
        rng = np.random.default_rng(None if seed is None else [seed % 2**64, spec.choice_index])
        return _RowState(row=row, spec=spec, rng=rng, max_new=budget)

    def _token_logprob(self, logprobs: np.ndarray, token: int, top: int) -> TokenLogprob:
        best: tuple[TopLogprob, ...] = ()
        if top:
            idx = np.argpartition(-logprobs, top - 1)[:top]
            idx = idx[np.argsort(-logprobs[idx], kind="stable")]
            best = tuple(TopLogprob(int(i), self.token_text(int(i)), float(logprobs[i])) for i in idx)
        return TokenLogprob(token, self.token_text(token), float(logprobs[token]), best)

    def _advance(self, state: _RowState, logits: np.ndarray) -> TokenEvent:
        params = state.spec.params
        if state.spec.cancelled is not None and state.spec.cancelled():
            return self._finish(state, None, None, "cancelled")
        token = sample_token(logits, params, state.rng)
        if token in self.eos_ids:
            return self._finish(state, None, None, "stop")
        lp = None
        if params.logprobs:
            lp = self._token_logprob(log_softmax(logits), token, params.top_logprobs)
            state.logprobs.append(lp)
        state.tokens.append(token)
        state.text = self.tokenizer.decode(state.tokens, skip_special_tokens=True)
        cut = find_stop(state.text, params.stop) if params.stop else -1
        if cut >= 0:
            self._trim_to(state, cut)
            return self._finish(state, token, lp, "stop")
        if len(state.tokens) >= state.max_new:
            return self._finish(state, token, lp, "length")
        end = max(safe_text_end(state.text, params.stop), state.emitted)
        delta, state.emitted = state.text[state.emitted:end], end
        return TokenEvent(state.row, state.spec.prompt_index, state.spec.choice_index, token, delta, lp)

    def _trim_to(self, state: _RowState, cut: int) -> None:
        """Cut the text at a stop sequence and keep the tokens that reach its start."""
        keep = 0
        while keep < len(state.tokens) and len(
            self.tokenizer.decode(state.tokens[:keep], skip_special_tokens=True)
        ) < cut:
            keep += 1
        state.tokens = state.tokens[:keep]
        if state.logprobs:
            state.logprobs = state.logprobs[:keep]
        state.text = state.text[:cut]

    def _finish(
        self, state: _RowState, token: int | None, lp: TokenLogprob | None, reason: str
    ) -> TokenEvent:
        state.finish_reason = reason
        delta = state.text[state.emitted:] if len(state.text) > state.emitted else ""
        state.emitted = len(state.text)
        spec = state.spec
        generation = Generation(
            prompt_index=spec.prompt_index, choice_index=spec.choice_index,
            prompt_token_ids=list(spec.prompt_ids), token_ids=list(state.tokens), text=state.text,
            finish_reason=reason, logprobs=list(state.logprobs) if spec.params.logprobs else None,
        )
        return TokenEvent(state.row, spec.prompt_index, spec.choice_index, token, delta, lp, reason, generation)

    def iter_rows(self, rows: Sequence[RowSpec]) -> Iterator[TokenEvent]:
        """Decode rows together, yielding one event per row per step until every row finished."""
        active = [self._new_state(i, spec) for i, spec in enumerate(rows)]
        if not active:
            return
        input_ids, mask = left_pad([s.spec.prompt_ids for s in active], self.pad_id)
        positions = positions_from_mask(mask)
        past = self.empty_past(len(active))
        while active:
            logits, present = self.forward(input_ids, mask, positions, past)
            last = logits[:, -1, :]
            keep: list[int] = []
            for b, state in enumerate(active):
                event = self._advance(state, last[b])
                yield event
                if event.finish_reason is None:
                    keep.append(b)
            if not keep:
                return
            if len(keep) < len(active):
                active = [active[b] for b in keep]
                present = [p[keep] for p in present]
                mask = mask[keep]
                # Drop leading columns that are padding for every remaining row.
                first = int(mask.any(axis=0).argmax())
                if first:
                    mask = mask[:, first:]
                    present = [p[:, :, first:, :] for p in present]
            positions = mask.sum(axis=1, keepdims=True).astype(np.int64)
            mask = np.concatenate([mask, np.ones((len(active), 1), dtype=np.int64)], axis=1)
            input_ids = np.array([[s.tokens[-1]] for s in active], dtype=np.int64)
            past = present

    def _rows(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[RowSpec]:
        if n < 1:
            raise GenerationError("n must be at least 1")
        rows = []
        for p_index, prompt in enumerate(prompts):
            ids = self.encode_prompt(prompt)
            rows += [RowSpec(ids, params, p_index, c) for c in range(n)]
        return rows

    def stream(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int = 64, temperature: float = 0.0,
        top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] | None = None, n: int = 1,
        logprobs: bool = False, top_logprobs: int = 0,
    ) -> Iterator[TokenEvent]:
        """Like ``generate`` but yields a TokenEvent per row per step."""
        params = SamplingParams(
            max_new_tokens, temperature, top_p, seed, tuple(stop or ()), logprobs or top_logprobs > 0,
            top_logprobs,
        )
        yield from self.iter_rows(self._rows(prompts, n, params))

    def generate(
        self, prompts: Sequence[Prompt], *, max_new_tokens: int = 64, temperature: float = 0.0,
        top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] | None = None, n: int = 1,
        logprobs: bool = False, top_logprobs: int = 0,
    ) -> list[Generation]:
        """Generate ``n`` choices for every prompt in one left-padded batch.

        Args:
            prompts: each a text, a list of token ids or a list of chat messages.
            seed: makes sampling reproducible; choice ``i`` uses the stream ``(seed, i)``.
            stop: strings that end a choice; they are not part of the returned text.

        Returns:
            Generations ordered by prompt, then choice.
        """
        finished = [
            e.generation
            for e in self.stream(
                prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                seed=seed, stop=stop, n=n, logprobs=logprobs, top_logprobs=top_logprobs,
            )
            if e.generation is not None
        ]
        return sorted(finished, key=lambda g: (g.prompt_index, g.choice_index))
