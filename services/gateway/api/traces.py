"""POST /v1/traces: one trace or a batch, JSON (JSON mapping or OpenAI shape) or Protobuf."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..schema import TRACES_BODY
from .deps import gateway_state
from .ingest_route import ROUTES, ingest
from .models import ERROR_RESPONSES, TracesAccepted, request_body

router = APIRouter(prefix="/v1", tags=["traces"])

_DESCRIPTION = (
    "One trace, a JSON array of traces or {\"traces\": [...]}; each in the Protobuf JSON "
    "mapping of flywheel.v1.Trace or in the OpenAI chat shape. Binary: "
    "application/x-protobuf with one Trace, or with `delimited=true` a varint-length-delimited "
    "stream of Traces. A trace without trace_id gets a uuid4 (returned); send your own id to "
    "make retries idempotent."
)


@router.post("/traces", response_model=TracesAccepted, responses=ERROR_RESPONSES,
             summary="Ingest traces", openapi_extra=request_body(TRACES_BODY, _DESCRIPTION))
async def post_traces(request: Request) -> Response:
    """Validate, deduplicate and write traces to traces.raw; answer once the broker acked."""
    payload = await ingest(gateway_state(request), ROUTES["/v1/traces"], request.headers,
                           request.stream())
    return Response(payload, media_type="application/json")
