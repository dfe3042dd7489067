"""Errors of the serving service, each mapped to an HTTP status and an OpenAI error type."""

from __future__ import annotations

from flywheel.errors import FlywheelError


class ServingError(FlywheelError):
    """Base of serving errors."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(ServingError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFound(ServingError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class ModelNotReady(ServingError):
    status = 503
    type = "server_error"
    code = "model_not_ready"


class VersionLoadError(ServingError):
    """A model version could not be exported, loaded or warmed up."""

    code = "model_load_failed"
