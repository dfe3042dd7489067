"""Accept traces in the OpenAI chat shape by rewriting them into the Protobuf JSON mapping (pure).

A trace object may mix both shapes; only constructs that exist in the OpenAI API are rewritten,
everything else is left for the strict validator (so a typo is still an error):

| OpenAI                                            | Trace (JSON mapping)                        |
|---------------------------------------------------|---------------------------------------------|
| ``"model": "gpt-4o-mini"``                        | ``"model": {"name": "gpt-4o-mini"}``        |
| ``messages[].content`` as a list of parts          | the text parts joined with blank lines      |
| ``messages[].content: null``                       | no content (an assistant turn of tool calls)|
| ``messages[].refusal`` (no content)                | the refusal text as content                 |
| ``tool_calls[].function.arguments`` as an object   | the arguments as JSON text                  |
| ``tools[]`` ``{"type": "function", "function": {name, description, parameters}}`` | ``{name, description, parameters_json}`` |
| ``"choices": [...]`` or ``"response": {chat.completion}`` | the first choice's message appended to ``messages``; ``response.id`` -> ``request_id``; ``response.model`` -> ``model.version`` when it adds a dated version |
| ``"user": "u-1"`` (request parameter)              | ``user_id`` when that is unset              |

Request parameters that describe sampling (``temperature``, ``top_p``, ``max_tokens``, ...) and
response bookkeeping (``usage``, ``system_fingerprint``, ...) are dropped, except the token
counts from ``usage``, kept as tags ``usage.prompt_tokens`` / ``usage.completion_tokens``.
"""

from __future__ import annotations

import json
from typing import Any

# OpenAI chat-completions request parameters and response fields with no place in a Trace.
DROPPED_KEYS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stream",
    "stream_options", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias",
    "top_logprobs", "tool_choice", "parallel_tool_calls", "response_format",
    "store", "reasoning_effort", "service_tier", "modalities", "audio", "prediction",
    "web_search_options", "function_call", "functions", "metadata", "id", "object", "created",
    "system_fingerprint", "usage",
})
_MESSAGE_DROPPED = frozenset({"refusal", "audio", "annotations", "function_call", "reasoning",
                              "reasoning_content"})
_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})


def _text_of(parts: list) -> Any:
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in _TEXT_PART_TYPES:
            texts.append(part.get("text"))
        elif isinstance(part, dict) and part.get("type") == "refusal":
            texts.append(part.get("refusal"))
        elif not isinstance(part, dict) or "type" not in part:
            return parts  # not OpenAI content parts: let the validator report it
    if not all(isinstance(t, str) for t in texts):
        return parts
    return "\n\n".join(texts)


def _message(msg: Any) -> Any:
    if not isinstance(msg, dict):
        return msg
    out = {k: v for k, v in msg.items() if k not in _MESSAGE_DROPPED}
    content = msg.get("content")
    if isinstance(content, list):
        out["content"] = _text_of(content)
    elif content is None:
        out.pop("content", None)
        if isinstance(msg.get("refusal"), str):
            out["content"] = msg["refusal"]
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [_tool_call(c) for c in calls]
    elif calls is None:
        out.pop("tool_calls", None)
    return out


def _tool_call(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    out = {k: v for k, v in call.items() if k != "index"}
    function = out.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), (dict, list)):
        out["function"] = {**function,
                           "arguments": json.dumps(function["arguments"], ensure_ascii=False)}
    return out


def _tool(tool: Any) -> Any:
    if not isinstance(tool, dict) or "function" not in tool:
        return tool
    function = tool["function"]
    if not isinstance(function, dict) or tool.get("type", "function") != "function":
        return tool
    out: dict[str, Any] = {}
    if "name" in function:
        out["name"] = function["name"]
    if "description" in function:
        out["description"] = function["description"]
    if "parameters" in function:
        params = function["parameters"]
        out["parameters_json"] = (json.dumps(params, ensure_ascii=False)
                                  if isinstance(params, (dict, list)) else params)
    unknown = set(function) - {"name", "description", "parameters", "strict"}
    for key in unknown:  # keep what the validator must complain about
        out[key] = function[key]
    return out


def _first_choice_message(choices: Any) -> Any:
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0].get("message")
    return None


def _apply_response(out: dict, response: dict) -> None:
    message = _first_choice_message(response.get("choices"))
    if message is not None:
        out.setdefault("messages", [])
        if isinstance(out["messages"], list):
            out["messages"] = [*out["messages"], _message(message)]
    if isinstance(response.get("id"), str):
        out.setdefault("request_id", response["id"])
    served = response.get("model")
    model = out.get("model")
    if isinstance(served, str) and served:
        if model is None:
            out["model"] = {"name": served}
        elif isinstance(model, dict) and not model.get("version") and served != model.get("name"):
            out["model"] = {**model, "version": served}
    _usage_tags(out, response.get("usage"))


def _usage_tags(out: dict, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    tags = out.get("tags")
    if tags is None:
        tags = {}
    if not isinstance(tags, dict):
        return
    tags = dict(tags)
    for key in ("prompt_tokens", "completion_tokens"):
        if isinstance(usage.get(key), int):
            tags.setdefault(f"usage.{key}", str(usage[key]))
    out["tags"] = tags


def looks_like_openai(obj: dict) -> bool:
    """Cheap test: does this trace object use any OpenAI-only construct?"""
    if isinstance(obj.get("model"), str) or "choices" in obj or "response" in obj:
        return True
    if not DROPPED_KEYS.isdisjoint(obj) or "user" in obj or isinstance(obj.get("logprobs"), bool):
        return True
    tools = obj.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "function" in t for t in tools):
        return True
    messages = obj.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            content = m.get("content", "")
            if not isinstance(content, str) or not _MESSAGE_DROPPED.isdisjoint(m):
                return True
            calls = m.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(call, dict) and "index" in call:
                    return True
                if isinstance(function, dict) and isinstance(function.get("arguments"), (dict, list)):
                    return True
    return False


def normalize_trace(obj: Any) -> Any:
    """Rewrite OpenAI constructs of one trace object into the JSON mapping; other values pass."""
    if not isinstance(obj, dict) or not looks_like_openai(obj):
        return obj
    out = {k: v for k, v in obj.items()
           if k not in DROPPED_KEYS and k not in ("choices", "response", "user")}
    if isinstance(obj.get("logprobs"), bool):  # the request flag, not LogprobStats
        out.pop("logprobs")
    if isinstance(obj.get("model"), str):
        out["model"] = {"name": obj["model"]}
    if isinstance(obj.get("user"), str):
        out.setdefault("user_id", obj["user"])
    elif "user" in obj:
        out["user"] = obj["user"]  # not OpenAI's: the validator reports it
    if isinstance(out.get("messages"), list):
        out["messages"] = [_message(m) for m in out["messages"]]
    if isinstance(out.get("tools"), list):
        out["tools"] = [_tool(t) for t in out["tools"]]
    if "choices" in obj:
        _apply_response(out, {"choices": obj["choices"]})
    response = obj.get("response")
    if isinstance(response, dict):
        _apply_response(out, response)
    elif response is not None:
        out["response"] = response
    _usage_tags(out, obj.get("usage"))
    return out
