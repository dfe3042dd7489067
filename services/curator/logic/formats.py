"""Example events as rows of the TRL conversational formats, and their content hashes.

Rows (one JSON object per line in the batch files):

* SFT: ``{"messages": [...], "tools": "<JSON list>" | null, "loss_masks": [...]}``
* DPO: ``{"prompt": [...], "chosen": [...], "rejected": [...], "tools": "<JSON list>" | null}``
* eval: ``{"example_id", "prompt", "reference", "tools", "kind", "intent", "metric"}``

Messages are OpenAI chat dicts: ``role`` and ``content`` always, ``tool_calls`` (with
``arguments`` as a JSON string), ``tool_call_id`` and ``name`` when set. ``tools`` is a JSON
string of OpenAI tool schemas because their parameter schemas differ from row to row (TRL
parses a string ``tools`` column itself). ``loss_masks`` are character spans of message
content with a loss weight (see ``flywheel.designs.masks``).

Content hashes are SHA-256 over the canonical JSON of the row: equal training content gives
equal hashes, whatever event or labeller it came from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flywheel.v1.common_pb2 import ChatMessage, FunctionCall, ToolCall, ToolDefinition
from flywheel.v1.examples_pb2 import DpoExample, EvalExample, EvalKind, LossMask, SftExample


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, unicode kept: the text that hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def message_dict(message: ChatMessage) -> dict[str, Any]:
    """One message in the OpenAI chat shape."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": call.id, "type": call.type or "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}
            for call in message.tool_calls
        ]
    return out


def messages_dicts(messages: Iterable[ChatMessage]) -> list[dict[str, Any]]:
    return [message_dict(m) for m in messages]


def message_proto(data: Mapping[str, Any]) -> ChatMessage:
    """The inverse of :func:`message_dict` (dict arguments are encoded as JSON)."""
    calls = []
    for call in data.get("tool_calls") or []:
        fn = call.get("function") or {}
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = json.dumps(args)
        calls.append(ToolCall(id=call.get("id") or "", type=call.get("type") or "function",
                              function=FunctionCall(name=fn.get("name") or "", arguments=args)))
    return ChatMessage(role=data.get("role") or "", content=data.get("content") or "",
                       name=data.get("name") or "", tool_call_id=data.get("tool_call_id") or "",
                       tool_calls=calls)


def tool_dict(tool: ToolDefinition) -> dict[str, Any]:
    """A tool in the OpenAI function-calling shape."""
    try:
        parameters = json.loads(tool.parameters_json) if tool.parameters_json else {}
    except json.JSONDecodeError:
        parameters = {}
    return {"type": "function", "function": {"name": tool.name, "description": tool.description,
                                             "parameters": parameters}}


def tool_proto(data: Mapping[str, Any]) -> ToolDefinition:
    fn = data.get("function", data)
    return ToolDefinition(name=fn.get("name") or "", description=fn.get("description") or "",
                          parameters_json=canonical_json(fn.get("parameters") or {}))


def tools_json(tools: Sequence[ToolDefinition]) -> str | None:
    """The tools column: a JSON string of tool schemas, or None without tools."""
    if not tools:
        return None
    return json.dumps([tool_dict(t) for t in tools], ensure_ascii=False)


def mask_dict(mask: LossMask) -> dict[str, Any]:
    return {"message_index": mask.message_index, "char_start": mask.char_start,
            "char_end": mask.char_end, "weight": mask.weight}


def sft_row(example: SftExample) -> dict[str, Any]:
    """The TRL conversational language-modelling row of an SFT example."""
    return {"messages": messages_dicts(example.messages), "tools": tools_json(example.tools),
            "loss_masks": [mask_dict(m) for m in example.masks]}


def dpo_row(example: DpoExample) -> dict[str, Any]:
    """The TRL conversational preference row of a DPO example."""
    return {"prompt": messages_dicts(example.prompt), "chosen": messages_dicts(example.chosen),
            "rejected": messages_dicts(example.rejected), "tools": tools_json(example.tools)}


def eval_row(example: EvalExample) -> dict[str, Any]:
    """The eval-set row of an eval example."""
    kind = "system" if example.kind == EvalKind.EVAL_KIND_SYSTEM else "model"
    return {"example_id": example.example_id, "prompt": messages_dicts(example.prompt),
            "reference": messages_dicts(example.reference), "tools": tools_json(example.tools),
            "kind": kind, "intent": example.intent, "metric": example.metric}


def sft_content_hash(example: SftExample) -> str:
    return sha256_hex(canonical_json(sft_row(example)))


def dpo_content_hash(example: DpoExample) -> str:
    return sha256_hex(canonical_json(dpo_row(example)))


def example_id(kind: str, content_hash: str) -> str:
    """The id of an example: its kind and the head of its content hash."""
    return f"{kind}_{content_hash[:40]}"


def seal_sft(example: SftExample) -> SftExample:
    """Set the content hash and id of an SFT example from its content; returns it."""
    example.content_hash = sft_content_hash(example)
    example.example_id = example_id("sft", example.content_hash)
    return example


def seal_dpo(example: DpoExample) -> DpoExample:
    """Set the content hash and id of a DPO example from its content; returns it."""
    example.content_hash = dpo_content_hash(example)
    example.example_id = example_id("dpo", example.content_hash)
    return example
