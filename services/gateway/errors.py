"""Gateway errors. Each carries its HTTP status; one exception handler in ``app.py`` renders them.

Every error body has the same shape::

    {"error": "invalid_input", "message": "2 invalid fields",
     "fields": [{"path": "traces[0].messages[1].role", "message": "..."}]}

``fields`` appears only on 422; ``retry_after_s`` only on 429 and 503 (also sent as the
``Retry-After`` header).
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.errors import FlywheelError


@dataclass(frozen=True)
class FieldIssue:
    """One invalid field: where (``traces[2].messages[0].role``) and what is wrong."""

    path: str
    message: str


class GatewayError(FlywheelError):
    """Base of the errors the gateway answers with. ``status`` and ``code`` go on the wire."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(GatewayError):
    """The body does not decode or fails validation; ``issues`` lists every invalid field."""

    status, code = 422, "invalid_input"

    def __init__(self, issues: list[FieldIssue], message: str | None = None) -> None:
        self.issues = issues
        count = len(issues)
        super().__init__(message or (issues[0].message if count == 1 and not issues[0].path
                                     else f"{count} invalid field{'s' if count != 1 else ''}"))


class RetryableError(GatewayError):
    """An error the client should retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(RetryableError):
    status, code = 429, "rate_limited"


class InFlight(RetryableError):
    """The same id is being written by another request right now; its outcome is not known yet."""

    status, code = 409, "in_flight"


class BrokerUnavailable(RetryableError):
    """The broker did not acknowledge in time; nothing of the request is visible."""

    status, code = 503, "broker_unavailable"


class DependencyDown(RetryableError):
    """Redis or the database did not answer; nothing was written."""

    status, code = 503, "dependency_unavailable"
