"""Response bodies and shared OpenAPI fragments of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    path: str = Field(description="Where in the body, e.g. traces[2].messages[0].role.")
    message: str


class ErrorBody(BaseModel):
    """Every error answer has this shape."""

    error: str = Field(description="Machine-readable code, e.g. invalid_input, rate_limited.")
    message: str
    fields: list[FieldError] | None = Field(None, description="On 422: each invalid field.")
    retry_after_s: float | None = Field(None, description="On 409, 429 and 503.")


class TraceItem(BaseModel):
    trace_id: str
    status: Literal["accepted", "duplicate"]
    generated_id: bool | None = Field(None, description="True when the gateway made the id up.")


class TracesAccepted(BaseModel):
    """The broker acknowledged every accepted trace; duplicates were not produced again."""

    accepted: int
    duplicates: int
    items: list[TraceItem]


class FeedbackItem(BaseModel):
    feedback_id: str
    status: Literal["accepted", "duplicate"]
    generated_id: bool | None = None


class FeedbackAccepted(BaseModel):
    accepted: int
    duplicates: int
    items: list[FeedbackItem]


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None


_ERRORS = {
    401: "Missing, unknown or revoked API key.",
    409: "Another request is writing one of these ids right now; retry after Retry-After.",
    413: "Body, batch count or one event is larger than allowed.",
    415: "Unknown Content-Type or Content-Encoding.",
    422: "The body does not decode or does not validate; `fields` lists every problem.",
    429: "Rate limit of the API key exceeded; retry after Retry-After.",
    503: "The broker (or Redis, or the key store) did not answer in time; nothing was "
         "accepted; retry after Retry-After.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
}


def request_body(json_schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An ``openapi_extra`` fragment for a body read by hand (JSON or binary Protobuf), on an
    operation that needs an API key."""
    from .deps import SECURITY

    return {"security": SECURITY, "requestBody": {
        "required": True,
        "description": description,
        "content": {
            "application/json": {"schema": json_schema},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
        },
    }}
