"""Errors of the annotation service, each mapped to an HTTP status by one handler in app.py."""

from __future__ import annotations

from flywheel.errors import FlywheelError


class AnnotationError(FlywheelError):
    """Base of annotation errors; ``status`` is the HTTP status the API answers with."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(AnnotationError):
    status = 401
    code = "unauthorized"


class Forbidden(AnnotationError):
    status = 403
    code = "forbidden"


class NotFound(AnnotationError):
    status = 404
    code = "not_found"


class LeaseLost(AnnotationError):
    """The caller does not hold the task's lease (it expired, or someone else holds it)."""

    status = 409
    code = "lease_lost"


class Conflict(AnnotationError):
    status = 409
    code = "conflict"


class InvalidLabel(AnnotationError):
    status = 422
    code = "invalid_label"


class InvalidEvent(AnnotationError):
    """An annotation.tasks event lacks what a task needs (id, kind)."""

    status = 422
    code = "invalid_event"


class LLMUnavailable(AnnotationError):
    """The judge or teacher endpoint failed or answered something unparseable."""

    status = 503
    code = "llm_unavailable"


class PromptStageError(AnnotationError):
    """A prompt version is not at the stage the requested step needs."""

    status = 409
    code = "prompt_stage"
