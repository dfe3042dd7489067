"""POST /v1/otlp/v1/traces: OTLP/HTTP trace export (protobuf or JSON) of GenAI spans.

Point an OpenTelemetry SDK at it with ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<gateway>/v1/otlp/v1/traces``
and ``OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-api-key=<key>``. Errors follow OTLP/HTTP: a
``google.rpc.Status`` body in the request's encoding; undecodable bodies get 400.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from .. import otlp
from ..bodies import PROTOBUF, parse_media_type, read_body
from ..errors import FieldIssue, InvalidInput
from .deps import SECURITY, Identity, State
from .models import ERROR_RESPONSES
from .respond import json_response

router = APIRouter(prefix="/v1/otlp", tags=["otlp"])

OTLP_PATH = "/v1/otlp/v1/traces"
_BODY = {"security": SECURITY, "requestBody": {
    "required": True,
    "description": "An opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest.",
    "content": {
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "properties": {
            "resourceSpans": {"type": "array", "items": {"type": "object"}}}}},
    },
}}
_RESPONSES = {**ERROR_RESPONSES, 400: {"description": "The body is not an export request."}}


@router.post("/v1/traces", summary="OTLP/HTTP trace export", responses=_RESPONSES,
             openapi_extra=_BODY)
async def post_otlp_traces(request: Request, identity: Identity, state: State) -> Response:
    """Turn GenAI spans into Traces (one per trace id) and write them; skip other spans."""
    media = parse_media_type(request.headers.get("content-type"))
    body = await read_body(request.stream(), request.headers.get("content-length"),
                           request.headers.get("content-encoding"), state.gw.max_body_bytes)
    try:
        export = otlp.parse_protobuf_request(body) if media.kind == PROTOBUF else \
            otlp.parse_json_request(body)
    except otlp.OtlpDecodeError as exc:
        raise InvalidInput([FieldIssue("$", str(exc))]) from None
    rejected, reason = await state.ingestor.write_otlp(identity, otlp.request_spans(export))
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = reason
    if media.kind == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    return json_response(json_format.MessageToDict(response))
