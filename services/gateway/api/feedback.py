"""POST /v1/feedback: thumbs, 1-7 ratings, comments, corrections, regenerate/rephrase signals
and preference choices, keyed by trace id (before or long after the trace itself)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..bodies import parse_media_type, read_body
from ..ingest import FEEDBACK, decode_feedback
from ..schema import FEEDBACK_BODY
from .deps import Identity, gateway_state
from .models import ERROR_RESPONSES, FeedbackAccepted, request_body
from .respond import json_response

router = APIRouter(prefix="/v1", tags=["feedback"])

_DESCRIPTION = (
    "One flywheel.v1.FeedbackEvent in the Protobuf JSON mapping, a JSON array of them or "
    "{\"events\": [...]}; or binary (application/x-protobuf, `delimited=true` for several). "
    "trace_id is required; feedback_id keys idempotency (generated when absent). "
    "feedback.kind may be left out when exactly one of thumbs, ratings, comment, "
    "corrected_answer or preference is set."
)


@router.post("/feedback", response_model=FeedbackAccepted, responses=ERROR_RESPONSES,
             summary="Ingest feedback", openapi_extra=request_body(FEEDBACK_BODY, _DESCRIPTION))
async def post_feedback(request: Request, identity: Identity) -> Response:
    """Validate, deduplicate and write feedback events to feedback.events."""
    state = gateway_state(request)  # not a dependency: one less to solve per request
    media = parse_media_type(request.headers.get("content-type"))
    body = await read_body(request.stream(), request.headers.get("content-length"),
                           request.headers.get("content-encoding"), state.gw.max_body_bytes)
    items = decode_feedback(body, media, state.gw.max_batch_count)
    result = await state.ingestor.write_events(identity, FEEDBACK, items)
    return json_response(result.as_json("feedback_id"))
