"""What the serving app is wired to from outside: a release source and a trace sink.

Both are plain callables so the Kafka wiring (following ``models.releases``, producing to
``traces.raw``) plugs in without the app knowing about the broker, and tests pass fakes.

- ``ReleaseSource``: called once at start-up with ``apply``; it calls ``apply(release)`` (from any
  thread) for every release of any line, and returns an optional ``stop`` callable for shutdown.
- ``TraceSink``: called with every served conversation after the response is complete. It must
  not block for long (hand off to a producer buffer); exceptions are logged and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

ReleaseAction = Literal["promote", "canary", "rollback"]


@dataclass(frozen=True)
class Release:
    """A release decision for one model line.

    ``promote``: serve ``version`` to everyone (a canary of the same version is promoted in
    place). ``canary``: send ``canary_share`` of users to ``version``. ``rollback``: drop the
    canary and serve ``version`` (the last good release) to everyone.
    """

    model_line: str
    version: str
    artifact_dir: Path
    action: ReleaseAction = "promote"
    canary_share: float | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class ServedConversation:
    """One answered chat request, as the trace sink receives it (OpenAI chat format)."""

    request_id: str
    model_line: str
    model_version: str
    user: str | None
    messages: list[dict[str, Any]]
    choices: list[dict[str, Any]]
    params: dict[str, Any]
    usage: dict[str, int]
    started_at: datetime
    latency_ms: float
    stream: bool
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Set when the request failed on the server (no answer): the trace then carries a failed
    # outcome of source "system", which the release controller counts in the error rate.
    error: str | None = None


ReleaseApply = Callable[[Release], None]
ReleaseSource = Callable[[ReleaseApply], Callable[[], None] | None]
TraceSink = Callable[[ServedConversation], None]
