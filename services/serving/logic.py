"""Pure decisions of the model server: routing, batching, release plans and OpenAI payloads.

Nothing here touches a model, a socket or a clock it was not given.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flywheel.ml.ort_runtime import Generation, SamplingParams, TokenLogprob

from .errors import InvalidRequest, ModelNotFound
from .ports import Release


# -- model names --------------------------------------------------------------------------------

def model_id(line: str, version: str) -> str:
    """The name a response carries in its ``model`` field: ``<line>:<version>``."""
    return f"{line}:{version}"


def pinned_version(requested: str, line: str) -> str | None:
    """The version a request's ``model`` field pins, or None to let routing decide.

    Raises:
        ModelNotFound: the name belongs to another line.
    """
    name, _, version = requested.partition(":")
    if name != line:
        raise ModelNotFound(f"the model {requested!r} does not exist; this server answers for {line!r}")
    return version or None


# -- canary routing -----------------------------------------------------------------------------

def canary_bucket(key: str) -> float:
    """A stable number in [0, 1) for a user (or request) key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def routes_to_canary(user: str | None, request_id: str, share: float) -> bool:
    """Whether a request goes to the canary: sticky per user, per request without a user."""
    if share <= 0.0:
        return False
    return canary_bucket(user if user else f"request:{request_id}") < share


# -- batching -----------------------------------------------------------------------------------

def should_join_batch(batch_model: object, batch_rows: int, job_model: object, job_rows: int,
                      max_rows: int) -> bool:
    """Whether a queued job may join the batch being formed.

    Rows of one batch share one model (so no request mixes versions); every row carries its own
    sampling parameters and random stream, so any parameters are compatible.
    """
    return job_model is batch_model and batch_rows + job_rows <= max_rows


# -- releases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReleaseStep:
    """One thing the model manager does for a release: load, promote or drop."""

    kind: str  # "load_stable" | "load_canary" | "promote_canary" | "drop_canary"
    version: str | None = None
    share: float | None = None


def plan_release(line: str, stable: str | None, canary: str | None, release: Release,
                 default_share: float) -> list[ReleaseStep]:
    """The steps that turn the current (stable, canary) versions into what a release asks for.

    Releases for other lines and releases already in effect plan nothing, so a redelivered
    event is harmless.
    """
    if release.model_line != line:
        return []
    if release.action == "canary":
        share = default_share if release.canary_share is None else release.canary_share
        if release.version == stable:
            return [ReleaseStep("drop_canary")] if canary else []
        return [ReleaseStep("load_canary", release.version, share)]
    steps = []
    if release.action == "promote" and release.version == canary:
        return [ReleaseStep("promote_canary", release.version)]
    if canary is not None:
        steps.append(ReleaseStep("drop_canary"))
    if release.version != stable:
        steps.append(ReleaseStep("load_stable", release.version))
    return steps


# -- requests -----------------------------------------------------------------------------------

def message_text(content: Any) -> str | None:
    """OpenAI content (a string, or a list of parts) as plain text."""
    if content is None or isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") in ("text", "input_text"):
            parts.append(str(part.get("text", "")))
        elif isinstance(part, str):
            parts.append(part)
    return "".join(parts)


def normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages for the chat template: text content, tool calls and tool results kept."""
    out = []
    for message in messages:
        item: dict[str, Any] = {"role": message["role"], "content": message_text(message.get("content"))}
        if item["role"] == "developer":
            item["role"] = "system"
        for key in ("name", "tool_call_id", "tool_calls"):
            if message.get(key) is not None:
                item[key] = message[key]
        out.append(item)
    return out


def stop_list(stop: str | Sequence[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(items) > 4:
        raise InvalidRequest("stop takes at most 4 sequences", param="stop")
    if any(not s for s in items):
        raise InvalidRequest("stop sequences must be non-empty", param="stop")
    return items


def sampling_params(body: Mapping[str, Any], default_max_tokens: int, max_tokens_limit: int,
                    max_n: int) -> tuple[SamplingParams, int]:
    """Decoding parameters and ``n`` from a chat request body (already type-checked).

    Log-probabilities are always computed (traces carry their statistics); the response shows
    them only when asked.
    """
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    if max_tokens > max_tokens_limit:
        raise InvalidRequest(f"max_tokens must be at most {max_tokens_limit}", param="max_tokens")
    n = body.get("n") or 1
    if n > max_n:
        raise InvalidRequest(f"n must be at most {max_n}", param="n")
    top = body.get("top_logprobs") or 0
    if top and not body.get("logprobs"):
        raise InvalidRequest("top_logprobs requires logprobs=true", param="top_logprobs")
    temperature = body.get("temperature")
    top_p = body.get("top_p")
    params = SamplingParams(
        max_new_tokens=max_tokens,
        temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        seed=body.get("seed"),
        stop=stop_list(body.get("stop")),
        logprobs=True,
        top_logprobs=top,
    )
    return params, n


# -- responses ----------------------------------------------------------------------------------

def extract_tool_calls(text: str, request_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Split the model's tool-call spans out of a reply (the chat template's format).

    Call ids are made unique per response; content is None when only calls remain.
    """
    from flywheel.ml.chat import parse_tool_calls

    content, calls = parse_tool_calls(text)
    if not calls:
        return text, []
    for i, call in enumerate(calls):
        call["id"] = f"call_{request_id[:12]}_{i}"
    return (content or None), calls


def _token_entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def logprob_entries(items: Sequence[TokenLogprob], top: int) -> list[dict[str, Any]]:
    """OpenAI ``logprobs.content`` entries."""
    entries = []
    for lp in items:
        entry = _token_entry(lp.token, lp.logprob)
        entry["top_logprobs"] = [_token_entry(t.token, t.logprob) for t in lp.top[:top]]
        entries.append(entry)
    return entries


def logprob_stats(items: Sequence[TokenLogprob] | None) -> dict[str, float]:
    """Summary of a choice's token log-probabilities for traces (uncertainty signals)."""
    values = [lp.logprob for lp in items or ()]
    if not values:
        return {}
    mean = sum(values) / len(values)
    return {"tokens": len(values), "mean_logprob": mean, "min_logprob": min(values),
            "perplexity": math.exp(-mean)}


def usage(prompt_tokens: int, generations: Sequence[Generation]) -> dict[str, int]:
    completion = sum(len(g.token_ids) for g in generations)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}


def choice_body(gen: Generation, request_id: str, want_logprobs: bool, top: int,
                parse_tools: bool) -> dict[str, Any]:
    """One ``choices[i]`` of a chat completion."""
    content, calls = extract_tool_calls(gen.text, request_id) if parse_tools else (gen.text, [])
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    finish = gen.finish_reason if gen.finish_reason in ("stop", "length") else "stop"
    if calls:
        message["tool_calls"] = calls
        finish = "tool_calls"
    logprobs = {"content": logprob_entries(gen.logprobs or [], top), "refusal": None} if want_logprobs else None
    return {"index": gen.choice_index, "message": message, "logprobs": logprobs, "finish_reason": finish}


def completion_body(request_id: str, created: int, model: str, choices: list[dict[str, Any]],
                    usage_: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}", "object": "chat.completion", "created": created,
        "model": model, "system_fingerprint": model, "choices": choices, "usage": usage_,
    }


def chunk_body(request_id: str, created: int, model: str, choices: list[dict[str, Any]],
               usage_: dict[str, int] | None = None) -> dict[str, Any]:
    body = {
        "id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": created,
        "model": model, "system_fingerprint": model, "choices": choices,
    }
    if usage_ is not None:
        body["usage"] = usage_
    return body


def chunk_choice(index: int, delta: dict[str, Any], finish_reason: str | None = None,
                 logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta,
            "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
            "finish_reason": finish_reason}


def sse(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event line (``data: ...`` and a blank line)."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, which the official clients turn into typed exceptions."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
