"""Errors of the preferences service, each mapped to an HTTP status by one handler in app.py."""

from __future__ import annotations

from flywheel.errors import FlywheelError


class PreferencesError(FlywheelError):
    """Base of preferences errors; ``status`` is the HTTP status the API answers with."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthorized(PreferencesError):
    status = 401
    code = "unauthorized"


class RequestNotFound(PreferencesError):
    status = 404
    code = "not_found"


class RequestExpired(PreferencesError):
    status = 410
    code = "expired"


class AlreadyAnswered(PreferencesError):
    status = 409
    code = "already_answered"


class InvalidAnswer(PreferencesError):
    status = 422
    code = "invalid_answer"


class WebhookNotFound(PreferencesError):
    status = 404
    code = "not_found"


class SecondAnswerUnavailable(PreferencesError):
    """The model endpoint failed or only repeated the first answer."""

    status = 503
    code = "second_answer_unavailable"


class InvalidEvent(PreferencesError):
    """A preference.requests event lacks what a question needs (user, prompt, first answer)."""

    status = 422
    code = "invalid_event"
