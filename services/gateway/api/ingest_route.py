"""The two ingest routes' one implementation, shared by the FastAPI routes and the fast path.

``POST /v1/traces`` and ``POST /v1/feedback`` are the gateway's hot path: every trace and
feedback event of every application goes through them. The FastAPI routes in ``traces.py`` and
``feedback.py`` declare them (OpenAPI, security, bodies) and call :func:`ingest`; at run time
:class:`~flywheel.services.gateway.app.GatewayApp` answers these two paths before the framework's
middleware, routing and dependency layers (see :func:`serve`), with the same function, the
same error rendering and the same metrics. The rest of the API goes through FastAPI as usual.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import orjson
from starlette.types import Receive, Scope, Send

from ..auth import presented_key
from ..bodies import MediaType, parse_media_type, read_body
from ..ingest import FEEDBACK, TRACES, Item, decode_feedback, decode_traces
from .deps import GatewayState


@dataclass(frozen=True)
class IngestRoute:
    """What differs between the two ingest routes."""

    kind: str  # TRACES or FEEDBACK
    decode: Callable[[bytes, MediaType, int], list[Item]]
    id_name: str  # the id field of each answered item


ROUTES: dict[str, IngestRoute] = {
    "/v1/traces": IngestRoute(TRACES, decode_traces, "trace_id"),
    "/v1/feedback": IngestRoute(FEEDBACK, decode_feedback, "feedback_id"),
}


def dumps(body: object) -> bytes:
    """Compact UTF-8 JSON as every gateway answer is written (what ``json.dumps`` with
    ``ensure_ascii=False`` and compact separators gives, about 20x faster)."""
    return orjson.dumps(body)


async def ingest(state: GatewayState, route: IngestRoute, headers: Mapping[str, str],
                 chunks: AsyncIterator[bytes]) -> bytes:
    """Authenticate, read, decode, validate and write one request; the JSON answer.

    The key is checked first (401 before anything about the body), then the content type,
    encoding and size (415, 413), then every event (422), then admission and the write.

    Raises:
        GatewayError: the request is refused (rendered by the app's one error handler).
    """
    identity = await state.resolver.resolve(
        presented_key(headers.get("authorization"), headers.get("x-api-key")))
    media = parse_media_type(headers.get("content-type"))
    body = await read_body(chunks, headers.get("content-length"),
                           headers.get("content-encoding"), state.gw.max_body_bytes)
    items = route.decode(body, media, state.gw.max_batch_count)
    result = await state.ingestor.write_events(identity, route.kind, items)
    return dumps(result.as_json(route.id_name))


class ClientGone(Exception):
    """The client disconnected before its body was read; nothing is answered."""


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def serve(state: GatewayState, route: IngestRoute, scope: Scope, receive: Receive,
                send: Send, render_error: Callable[[str, str | None, BaseException], object],
                ) -> None:
    """Answer one ingest request as plain ASGI.

    ``render_error(path, content_type, exc)`` turns an exception into the Starlette response
    the FastAPI exception handlers would have sent (the app passes its own renderer), so both
    paths answer errors identically.
    """
    started = time.perf_counter()
    headers: dict[str, str] = {}
    for name, value in reversed(scope["headers"]):  # the first of repeated headers wins
        headers[name.decode("latin-1")] = value.decode("latin-1")
    status = 200
    try:
        try:
            payload = await ingest(state, route, headers, _chunks(receive))
        except ClientGone:
            status = 499
            return
        except Exception as exc:  # noqa: BLE001 - every failure gets the app's error answer
            response = render_error(scope["path"], headers.get("content-type"), exc)
            status = response.status_code  # type: ignore[attr-defined]
            await response(scope, receive, send)  # type: ignore[operator]
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
    finally:
        state.metrics.observe_request(scope["path"], status, time.perf_counter() - started)


__all__ = ["ROUTES", "ClientGone", "IngestRoute", "dumps", "ingest", "serve"]
