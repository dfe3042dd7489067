"""Turn character-span loss masks into per-token loss weights.

Examples carry masks as character spans of message content (``flywheel.v1.LossMask``:
``messages[i].content[char_start:char_end]`` gets its loss multiplied by ``weight``), which
stay valid whatever tokenizer trains on them. At training time the conversation is rendered
with the tokenizer's chat template and every token gets a weight:

* tokens of assistant output weigh 1.0 (the template's ``{% generation %}`` blocks when it has
  them, so tool calls count too; else the assistant messages' content);
* a token that overlaps a mask span takes the span's weight (0.0 masks it);
* every other token (system, user, tool results, template text) weighs 0.0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flywheel.designs.base import DesignError


def _mask_fields(mask: Any) -> tuple[int, int, int, float]:
    if isinstance(mask, Mapping):
        return (int(mask.get("message_index", 0)), int(mask.get("char_start", 0)),
                int(mask.get("char_end", 0)), float(mask.get("weight", 0.0)))
    return mask.message_index, mask.char_start, mask.char_end, mask.weight


def content_offsets(text: str, messages: Sequence[Mapping[str, Any]]) -> list[int | None]:
    """Where each message's content starts in the rendered ``text`` (None when empty).

    Raises:
        DesignError: a message's content does not appear, in order, in the rendering.
    """
    offsets: list[int | None] = []
    cursor = 0
    for index, message in enumerate(messages):
        content = message.get("content") or ""
        if not content:
            offsets.append(None)
            continue
        at = text.find(content, cursor)
        if at < 0:
            raise DesignError(f"message {index} content not found in the chat template output")
        offsets.append(at)
        cursor = at + len(content)
    return offsets


def char_weights(text: str, messages: Sequence[Mapping[str, Any]], masks: Sequence[Any],
                 assistant_chars: Sequence[bool] | None = None) -> list[float]:
    """A loss weight per character of the rendered conversation.

    Args:
        text: the chat template's rendering of ``messages``.
        messages: the conversation (OpenAI chat dicts).
        masks: ``LossMask`` protos or dicts with the same fields.
        assistant_chars: optional per-character flags of assistant output; when absent the
            assistant messages' content is used.
    """
    offsets = content_offsets(text, messages)
    if assistant_chars is not None:
        weights = [1.0 if flag else 0.0 for flag in assistant_chars]
    else:
        weights = [0.0] * len(text)
        for message, start in zip(messages, offsets):
            if message.get("role") == "assistant" and start is not None:
                for i in range(start, start + len(message.get("content") or "")):
                    weights[i] = 1.0
    for mask in masks:
        index, start, end, weight = _mask_fields(mask)
        if not 0 <= index < len(messages) or offsets[index] is None:
            raise DesignError(f"mask points at message {index}, which has no content")
        base = offsets[index]
        for i in range(base + max(0, start), base + min(end, len(messages[index]["content"]))):
            weights[i] = weight
    return weights


def _assistant_chars(tokenizer: Any, text: str, offsets: list[tuple[int, int]],
                     rendered: Mapping[str, Any]) -> list[bool] | None:
    flags = rendered.get("assistant_masks")
    if flags is None or 1 not in flags or len(flags) != len(offsets):
        return None
    chars = [False] * len(text)
    for flag, (start, end) in zip(flags, offsets):
        if flag:
            for i in range(start, end):
                chars[i] = True
    return chars


def token_loss_weights(tokenizer: Any, messages: Sequence[Mapping[str, Any]],
                       masks: Sequence[Any] = (), tools: Sequence[Mapping[str, Any]] | None = None,
                       ) -> tuple[list[int], list[float]]:
    """Token ids of the rendered conversation and one loss weight per token.

    A token takes the weight of the mask span it overlaps (the lowest when several), else 1.0
    when any of its characters is assistant output, else 0.0.

    Raises:
        DesignError: the tokenizer has no fast offsets or the rendering hides a message.
    """
    text = tokenizer.apply_chat_template(list(messages), tools=list(tools) if tools else None,
                                         tokenize=False)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]
    assistant = None
    try:
        rendered = tokenizer.apply_chat_template(
            list(messages), tools=list(tools) if tools else None, tokenize=True,
            return_dict=True, return_assistant_tokens_mask=True)
        if list(rendered["input_ids"]) == ids:
            assistant = _assistant_chars(tokenizer, text, offsets, rendered)
    except (ValueError, TypeError, KeyError):
        assistant = None
    weights = char_weights(text, messages, masks, assistant)
    masked = {i for mask in masks for i in _span_chars(text, messages, mask)}
    out: list[float] = []
    for start, end in offsets:
        span = range(start, end)
        in_mask = [weights[i] for i in span if i in masked]
        if in_mask:
            out.append(min(in_mask))
        else:
            out.append(1.0 if any(weights[i] > 0 for i in span) else 0.0)
    return ids, out


def _span_chars(text: str, messages: Sequence[Mapping[str, Any]], mask: Any) -> range:
    index, start, end, _ = _mask_fields(mask)
    base = content_offsets(text, messages)[index]
    if base is None:
        return range(0)
    return range(base + max(0, start), base + min(end, len(messages[index]["content"])))
