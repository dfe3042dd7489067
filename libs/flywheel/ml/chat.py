"""Render OpenAI-shaped conversations into token ids, loss labels and padded batches.

A conversation is a list of message dicts (``role``, ``content``, ``tool_calls``,
``tool_call_id``, ``name``) with an optional OpenAI ``tools`` list. It is rendered with the
tokenizer's own chat template, so any Hugging Face chat model works, not only the tiny one.

Labels: only assistant output carries loss (every assistant turn by default, including tool
calls and the end-of-turn token); everything else is ``IGNORE_INDEX``. Extra masks name
character spans inside an assistant message's content whose loss is switched off too (partial
answer masking: keep an erroneous draft in context but do not learn to write it).

Character positions come from rendering the conversation prefix by prefix: the assistant
turn ``i`` is the text between ``render(messages[:i], add_generation_prompt=True)`` and
``render(messages[:i+1])``. Tokens are mapped to characters with the fast tokenizer's offsets.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Sequence

from flywheel.ml import ChatFormatError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
Message = dict[str, Any]
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class MaskSpan:
    """Characters ``[char_start, char_end)`` of message ``message_index``'s content: no loss."""

    message_index: int
    char_start: int
    char_end: int

    @classmethod
    def coerce(cls, span: "MaskSpan | Mapping[str, int]") -> "MaskSpan":
        """Accept a MaskSpan or a dict with the same keys."""
        if isinstance(span, MaskSpan):
            return span
        return cls(int(span["message_index"]), int(span["char_start"]), int(span["char_end"]))


@dataclass
class RenderedChat:
    """One rendered conversation: ids, labels (``IGNORE_INDEX`` where no loss) and text."""

    input_ids: list[int]
    labels: list[int]
    text: str = ""
    truncated: bool = False
    assistant_chars: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_labels(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Copy messages into the shape chat templates expect.

    ``content`` None becomes ``""``; tool-call ``arguments`` given as a JSON string (OpenAI)
    become a dict, so the template prints them in one canonical form.
    """
    out: list[Message] = []
    for message in messages:
        if "role" not in message:
            raise ChatFormatError(f"message without a role: {dict(message)!r}")
        m = copy.deepcopy(dict(message))
        if m.get("content") is None:
            m["content"] = ""
        for call in m.get("tool_calls") or []:
            fn = call.get("function", call)
            if isinstance(fn.get("arguments"), str):
                try:
                    fn["arguments"] = json.loads(fn["arguments"] or "{}")
                except json.JSONDecodeError:
                    pass
        if not m.get("tool_calls"):
            m.pop("tool_calls", None)
        out.append(m)
    return out


def render_text(tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Message],
                tools: Sequence[Mapping[str, Any]] | None = None,
                add_generation_prompt: bool = False) -> str:
    """The chat template's text for already-normalised ``messages``."""
    try:
        return tokenizer.apply_chat_template(
            list(messages), tools=list(tools) if tools else None, tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )
    except Exception as exc:  # jinja raises many types, including raise_exception's
        raise ChatFormatError(f"chat template failed: {exc}") from exc


def prompt_ids(tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Mapping[str, Any]],
               tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
    """Token ids of a conversation followed by the assistant generation prompt."""
    text = render_text(tokenizer, normalize_messages(messages), tools, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _assistant_regions(tokenizer: "PreTrainedTokenizerBase", msgs: list[Message],
                       tools: Sequence[Mapping[str, Any]] | None, full: str,
                       label_from: int) -> dict[int, tuple[int, int]]:
    regions: dict[int, tuple[int, int]] = {}
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or i < label_from:
            continue
        before = render_text(tokenizer, msgs[:i], tools, add_generation_prompt=True)
        upto = render_text(tokenizer, msgs[: i + 1], tools)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise ChatFormatError("chat template does not render conversations prefix by prefix")
        regions[i] = (len(before), len(upto.rstrip()))
    return regions


def _masked_chars(msgs: list[Message], regions: dict[int, tuple[int, int]], full: str,
                  spans: Iterable[MaskSpan | Mapping[str, int]]) -> list[tuple[int, int]]:
    out = []
    for raw in spans:
        span = MaskSpan.coerce(raw)
        i = span.message_index
        if not 0 <= i < len(msgs) or msgs[i]["role"] != "assistant":
            raise ChatFormatError(f"mask span names message {i}, which is not an assistant message")
        content = msgs[i]["content"]
        if not 0 <= span.char_start <= span.char_end <= len(content):
            raise ChatFormatError(f"mask span {span} is outside message {i} ({len(content)} chars)")
        if i not in regions:
            continue
        start = full.find(content, *regions[i]) if content else -1
        if start < 0:
            raise ChatFormatError(f"content of message {i} not found verbatim in the rendering")
        out.append((start + span.char_start, start + span.char_end))
    return out


def render_chat(tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Mapping[str, Any]],
                tools: Sequence[Mapping[str, Any]] | None = None,
                masked_spans: Iterable[MaskSpan | Mapping[str, int]] = (),
                max_length: int | None = None, label_from: int = 0) -> RenderedChat:
    """Tokenise a conversation with loss on assistant output only.

    Args:
        messages: OpenAI-shaped messages (tool calls, tool results allowed).
        tools: OpenAI tool definitions passed to the chat template.
        masked_spans: character spans of assistant contents that get no loss.
        max_length: truncate to this many tokens (from the right).
        label_from: only assistant messages at this index or later carry loss (for preference
            pairs, the index of the first answer message).

    Raises:
        ChatFormatError: bad roles or spans, or a template that cannot be aligned.
    """
    msgs = normalize_messages(messages)
    full = render_text(tokenizer, msgs, tools)
    regions = _assistant_regions(tokenizer, msgs, tools, full, label_from)
    masked = _masked_chars(msgs, regions, full, masked_spans)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = list(enc["input_ids"]), []
    spans = sorted(regions.values())
    for token, (start, end) in zip(ids, enc["offset_mapping"]):
        learn = any(a <= start < b for a, b in spans)
        if learn and any(start < m_end and end > m_start for m_start, m_end in masked):
            learn = False
        labels.append(token if learn else IGNORE_INDEX)
    truncated = max_length is not None and len(ids) > max_length
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return RenderedChat(ids, labels, full, truncated, spans)


def as_messages(answer: str | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Message]:
    """An answer given as text, one message or several messages, as a message list."""
    if isinstance(answer, str):
        return [{"role": "assistant", "content": answer}]
    if isinstance(answer, Mapping):
        return [dict(answer)]
    return [dict(m) for m in answer]


def render_pair(tokenizer: "PreTrainedTokenizerBase", prompt: Sequence[Mapping[str, Any]],
                chosen: Any, rejected: Any, tools: Sequence[Mapping[str, Any]] | None = None,
                max_length: int | None = None) -> tuple[RenderedChat, RenderedChat]:
    """Render a preference pair; only the answers (after ``prompt``) carry labels."""
    n = len(prompt)
    return (
        render_chat(tokenizer, [*prompt, *as_messages(chosen)], tools, max_length=max_length, label_from=n),
        render_chat(tokenizer, [*prompt, *as_messages(rejected)], tools, max_length=max_length, label_from=n),
    )


def pad_ids(seqs: Sequence[Sequence[int]], pad_value: int,
            side: Literal["left", "right"] = "right") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Pad id lists to one ``[batch, max_len]`` tensor; returns (ids, attention_mask)."""
    import torch

    width = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        if not seq:
            continue
        cols = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        ids[row, cols] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def collate(batch: Sequence[RenderedChat], pad_token_id: int,
            side: Literal["left", "right"] = "right") -> dict[str, "torch.Tensor"]:
    """Stack rendered chats into ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    ids, mask = pad_ids([b.input_ids for b in batch], pad_token_id, side)
    labels, _ = pad_ids([b.labels for b in batch], IGNORE_INDEX, side)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def parse_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Split generated assistant text into content and OpenAI-shaped tool calls.

    Recognises ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (the tiny model's
    template format). Malformed calls stay in the content.
    """
    calls: list[dict[str, Any]] = []

    def _take(match: re.Match[str]) -> str:
        try:
            body = json.loads(match.group(1))
            name, args = body["name"], body.get("arguments", {})
        except (json.JSONDecodeError, KeyError, TypeError):
            return match.group(0)
        calls.append({"id": f"call_{len(calls)}", "type": "function",
                      "function": {"name": str(name), "arguments": json.dumps(args)}})
        return ""

    content = _TOOL_CALL.sub(_take, text).strip()
    return content, calls
