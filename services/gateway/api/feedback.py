"""POST /v1/feedback: thumbs, 1-7 ratings, comments, corrections, regenerate/rephrase signals
and preference choices, keyed by trace id (before or long after the trace itself)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..schema import FEEDBACK_BODY
from .deps import gateway_state
from .ingest_route import ROUTES, ingest
from .models import ERROR_RESPONSES, FeedbackAccepted, request_body

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
async def post_feedback(request: Request) -> Response:
    """Validate, deduplicate and write feedback events to feedback.events."""
    payload = await ingest(gateway_state(request), ROUTES["/v1/feedback"], request.headers,
                           request.stream())
    return Response(payload, media_type="application/json")
