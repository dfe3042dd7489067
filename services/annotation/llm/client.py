"""A minimal client for any OpenAI-compatible chat endpoint (httpx, async)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from ..errors import LLMUnavailable

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class ChatClient:
    """``POST {base_url}/chat/completions`` with a system and a user message."""

    def __init__(self, base_url: str, model: str, api_key: str, http: httpx.AsyncClient, *,
                 timeout_s: float = 60.0, concurrency: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._key = api_key
        self._http = http
        self._timeout = timeout_s
        self._slots = asyncio.Semaphore(concurrency)

    async def chat(self, system: str, user: str, *, temperature: float = 0.0,
                   max_tokens: int = 512) -> str:
        """The assistant's text.

        Raises:
            LLMUnavailable: transport error, non-2xx status or a malformed response.
        """
        body = {"model": self.model, "temperature": temperature, "max_tokens": max_tokens,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": user}]}
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        async with self._slots:
            try:
                response = await self._http.post(f"{self.base_url}/chat/completions", json=body,
                                                 headers=headers, timeout=self._timeout)
                response.raise_for_status()
                return str(response.json()["choices"][0]["message"].get("content") or "")
            except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
                raise LLMUnavailable(f"{self.model} at {self.base_url}: "
                                     f"{type(exc).__name__}: {exc}") from exc


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in a model's reply (models like to wrap JSON in prose or fences).

    Raises:
        LLMUnavailable: no JSON object in the text.
    """
    match = _JSON_OBJECT.search(text)
    if match is None:
        raise LLMUnavailable(f"no JSON object in the reply: {text[:200]!r}")
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise LLMUnavailable(f"invalid JSON in the reply: {exc}") from exc
    if not isinstance(value, dict):
        raise LLMUnavailable("the reply's JSON is not an object")
    return value
