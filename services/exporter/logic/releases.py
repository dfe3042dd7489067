"""Release state of a model line, folded from its release log, and the checks on new actions.

The log is the registry's append-only ``releases`` table. A row's ``version`` is the version
the action is about:

- ``canary v``: v takes the canary share (replacing any earlier canary);
- ``promote v``: v serves everyone; the canary slot empties;
- ``rollback v``: v is taken out: a canary is dropped, or a released version gives way to
  the release before it (version 0, the base model, when there is none).

On the wire (``ModelRelease``) a ROLLBACK carries the version taken out in ``version`` and the
version that serves afterwards in ``previous_version``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flywheel.errors import FlywheelError

BASE_VERSION = 0


class ReleaseRuleError(FlywheelError):
    """A release action that the line's current state does not allow."""


@dataclass(frozen=True)
class ReleaseRow:
    action: str  # "canary" | "promote" | "rollback"
    version: int
    created_at: datetime | None = None


@dataclass(frozen=True)
class LineState:
    """Who serves a line: the stable version, the canary (if any) and when it started."""

    stable: int = BASE_VERSION
    canary: int | None = None
    canary_since: datetime | None = None
    promoted: tuple[int, ...] = ()  # stable versions in order, for rolling back a release

    def previous_stable(self) -> int:
        """The release before the current one (the base model when there is none)."""
        earlier = [v for v in self.promoted if v != self.stable]
        return earlier[-1] if earlier else BASE_VERSION


def fold_releases(rows: Iterable[ReleaseRow]) -> LineState:
    """The state after applying every row in order (oldest first)."""
    state = LineState()
    for row in rows:
        state = apply_row(state, row)
    return state


def apply_row(state: LineState, row: ReleaseRow) -> LineState:
    if row.action == "canary":
        if row.version == state.stable:
            return LineState(state.stable, None, None, state.promoted)
        return LineState(state.stable, row.version, row.created_at, state.promoted)
    if row.action == "promote":
        promoted = tuple(v for v in state.promoted if v != row.version) + (row.version,)
        return LineState(row.version, None, None, promoted)
    if row.action == "rollback":
        if row.version == state.canary:
            return LineState(state.stable, None, None, state.promoted)
        if row.version == state.stable:
            promoted = tuple(v for v in state.promoted if v != row.version)
            return LineState(promoted[-1] if promoted else BASE_VERSION, None, None, promoted)
        return state
    raise ReleaseRuleError(f"unknown release action {row.action!r}")


@dataclass(frozen=True)
class PlannedAction:
    """What a promote or rollback will do: the version acted on and the one serving after."""

    action: str
    version: int
    serves_after: int
    previous_version: int
    replaces_canary: int | None = None


def plan_promote(state: LineState, version: int | None) -> PlannedAction:
    """Promote ``version`` (default: the canary).

    Raises:
        ReleaseRuleError: no version given and no canary, or the version already serves everyone.
    """
    target = state.canary if version is None else version
    if target is None:
        raise ReleaseRuleError("there is no canary to promote; name a version")
    if target == state.stable and state.canary is None:
        raise ReleaseRuleError(f"version {target} is already the release")
    dropped = state.canary if state.canary not in (None, target) else None
    return PlannedAction("promote", target, target, state.stable, dropped)


def plan_rollback(state: LineState, version: int | None = None) -> PlannedAction:
    """Roll back the canary, or (with no canary) the current release.

    Raises:
        ReleaseRuleError: nothing to roll back, or ``version`` is not the canary or release.
    """
    target = version if version is not None else (state.canary if state.canary is not None else state.stable)
    if target == state.canary:
        return PlannedAction("rollback", target, state.stable, state.stable)
    if target != state.stable:
        raise ReleaseRuleError(f"version {target} is neither the canary nor the release")
    if target == BASE_VERSION:
        raise ReleaseRuleError("the base model is serving; there is nothing to roll back")
    back_to = state.previous_stable()
    return PlannedAction("rollback", target, back_to, back_to)
