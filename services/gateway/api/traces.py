"""POST /v1/traces: one trace or a batch, JSON (JSON mapping or OpenAI shape) or Protobuf."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..bodies import parse_media_type, read_body
from ..ingest import TRACES, decode_traces
from ..schema import TRACES_BODY
from .deps import Identity, gateway_state
from .models import ERROR_RESPONSES, TracesAccepted, request_body
from .respond import json_response

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
async def post_traces(request: Request, identity: Identity) -> Response:
    """Validate, deduplicate and write traces to traces.raw; answer once the broker acked."""
    state = gateway_state(request)  # not a dependency: one less to solve per request
    media = parse_media_type(request.headers.get("content-type"))
    body = await read_body(request.stream(), request.headers.get("content-length"),
                           request.headers.get("content-encoding"), state.gw.max_body_bytes)
    items = decode_traces(body, media, state.gw.max_batch_count)
    result = await state.ingestor.write_events(identity, TRACES, items)
    return json_response(result.as_json("trace_id"))
