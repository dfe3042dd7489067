"""``POST /v1/chat/completions`` (OpenAI-compatible, with server-sent-event streaming)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import completions
from ..schemas import ChatCompletionRequest
from .deps import RequestId, Runtime

router = APIRouter(prefix="/v1", tags=["chat"])

VERSION_HEADER = "x-flywheel-model-version"


@router.post("/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, runtime: Runtime, request_id: RequestId) -> Response:
    """Answer a conversation; the answering version is in ``model`` and the version header."""
    prepared = completions.prepare(runtime, body, request_id)
    headers = {VERSION_HEADER: prepared.handle.version}
    if body.stream:
        return StreamingResponse(
            completions.stream(runtime, prepared), media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    return JSONResponse(await completions.complete(runtime, prepared), headers=headers)
