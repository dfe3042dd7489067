"""Obtain the second answer from any OpenAI-compatible endpoint (default: the serving service).

The endpoint's ``GET /models`` tells whether a canary is live (the serving service marks
versions with ``role``); ``POST /chat/completions`` answers. The version that answered is read
from the response's ``model`` field (``<line>:<version>``) or the ``x-flywheel-model-version``
header.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from flywheel.logging import get_logger

from .errors import SecondAnswerUnavailable
from .logic import ModelChoice, answers_differ, choose_second_model, new_answer_id, split_model_id
from .settings import PreferencesSection

log = get_logger(__name__)

VERSION_HEADER = "x-flywheel-model-version"
_RETRIES = 3
_RETRY_BASE_S = 0.5


class SecondAnswerSource:
    """Asks the endpoint for an answer that differs from the first one."""

    def __init__(self, config: PreferencesSection, http: httpx.AsyncClient) -> None:
        self._config = config
        self._http = http
        self._base = config.model_base_url.rstrip("/")
        self._models: list[dict[str, Any]] = []
        self._models_at = float("-inf")

    def _headers(self) -> dict[str, str]:
        key = self._config.model_api_key.get_secret_value()
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def models(self) -> list[dict[str, Any]]:
        """The endpoint's model listing, cached; empty when the endpoint cannot list."""
        now = time.monotonic()
        if now - self._models_at < self._config.models_cache_s:
            return self._models
        try:
            response = await self._http.get(f"{self._base}/models", headers=self._headers(),
                                            timeout=self._config.http_timeout_s)
            response.raise_for_status()
            self._models = list(response.json().get("data", []))
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("model_listing_failed", error=str(exc))
            self._models = []
        self._models_at = now
        return self._models

    async def obtain(self, prompt: Sequence[Mapping[str, Any]], original: Mapping[str, Any],
                     user: str) -> tuple[dict[str, Any], ModelChoice]:
        """A second answer (``{answer_id, messages, model}``) that differs from ``original``.

        Raises:
            SecondAnswerUnavailable: the endpoint failed, or repeated the first answer on
                every attempt.
        """
        model = original.get("model", {})
        choice = choose_second_model(
            await self.models(), str(model.get("version", "")),
            self._config.model_name or str(model.get("name", "")),
            self._config.canary_temperature, self._config.sample_temperature)
        if not choice.model:
            raise SecondAnswerUnavailable("no model to ask: set FLYWHEEL_PREFERENCES_MODEL_NAME")
        for attempt in range(self._config.second_answer_attempts):
            # A canary that repeats the release is still worth a second draw, hotter.
            temperature = min(2.0, choice.temperature + 0.3 * attempt)
            messages, name, version = await self._complete(choice.model, prompt, temperature, user)
            if answers_differ(original.get("messages", []), messages):
                answer = {"answer_id": new_answer_id(), "messages": messages,
                          "model": {"name": name, "version": version}}
                return answer, choice
        raise SecondAnswerUnavailable(
            f"{choice.model} repeated the first answer {self._config.second_answer_attempts} times")

    async def _complete(self, model: str, prompt: Sequence[Mapping[str, Any]],
                        temperature: float, user: str) -> tuple[list[dict[str, Any]], str, str]:
        body = {"model": model, "messages": [_openai_message(m) for m in prompt],
                "temperature": temperature, "max_tokens": self._config.max_tokens, "user": user,
                # The pair reaches the loop as a preference answer, not as a served trace.
                "metadata": {"flywheel_trace": "off"}}
        response = await self._post_with_retry(model, body)
        try:
            data = response.json()
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError) as exc:
            raise SecondAnswerUnavailable(f"{model}: malformed response: {exc}") from exc
        name, version = split_model_id(str(data.get("model") or model),
                                       response.headers.get(VERSION_HEADER, ""))
        return [_assistant_message(message)], name, version


    async def _post_with_retry(self, model: str, body: dict[str, Any]) -> httpx.Response:
        """POST a completion, retrying transport errors and 5xx with backoff (the serving
        service may be restarting or swapping models)."""
        delay = _RETRY_BASE_S
        for attempt in range(1, _RETRIES + 1):
            try:
                response = await self._http.post(f"{self._base}/chat/completions", json=body,
                                                 headers=self._headers(),
                                                 timeout=self._config.http_timeout_s)
                if response.status_code < 500 or attempt == _RETRIES:
                    response.raise_for_status()
                    return response
            except httpx.TransportError as exc:
                if attempt == _RETRIES:
                    raise SecondAnswerUnavailable(f"{model}: {type(exc).__name__}: {exc}") from exc
            except httpx.HTTPStatusError as exc:
                raise SecondAnswerUnavailable(f"{model}: HTTP {exc.response.status_code}") from exc
            await asyncio.sleep(delay)
            delay *= 2
        raise SecondAnswerUnavailable(f"{model}: no answer after {_RETRIES} attempts")


def _openai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A stored chat message (proto JSON shape) as an OpenAI request message."""
    out: dict[str, Any] = {"role": message.get("role", "user"),
                           "content": message.get("content", "")}
    for key in ("name", "tool_call_id"):
        if message.get(key):
            out[key] = message[key]
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c.get("id", ""), "type": c.get("type") or "function",
             "function": {"name": c.get("function", {}).get("name", ""),
                          "arguments": c.get("function", {}).get("arguments", "")}}
            for c in message["tool_calls"]]
    return out


def _assistant_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI response message in the stored (proto JSON) shape, empty fields dropped."""
    out: dict[str, Any] = {"role": "assistant"}
    if message.get("content"):
        out["content"] = str(message["content"])
    calls = [{"id": c.get("id", ""), "type": c.get("type") or "function",
              "function": {"name": c["function"].get("name", ""),
                           "arguments": c["function"].get("arguments", "")}}
             for c in message.get("tool_calls") or [] if c.get("function")]
    if calls:
        out["tool_calls"] = calls
    return out
