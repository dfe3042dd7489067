"""Carry out release actions: update the registry and announce them on ``models.releases``.

Used by the exporter (canary), the release controller (promote, rollback by rule) and the
``flywheel models promote | rollback`` commands (by hand). Each action runs in one database
transaction: the statuses change and a ``releases`` row (actor, reason) is added, then the
``ModelRelease`` is produced and acknowledged by the broker, then the transaction commits. A
broker failure therefore leaves the registry unchanged; a crash between the broker's
acknowledgement and the commit leaves an event that servers apply idempotently.

    releaser = Releaser(settings, engine, producer)
    releaser.promote("shop-assistant", actor="alice", reason="looks good")
    releaser.rollback("shop-assistant", actor="release-controller", reason="thumbs-down rate up")
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from flywheel.db.engine import session_scope
from flywheel.db.models import ModelStatus, ModelVersion, Release, ReleaseAction
from flywheel.events.codec import encode
from flywheel.events.envelope import stamp
from flywheel.logging import get_logger
from flywheel.settings import Settings
from flywheel.v1.models_pb2 import (
    RELEASE_ACTION_CANARY,
    RELEASE_ACTION_PROMOTE,
    RELEASE_ACTION_ROLLBACK,
    ModelRelease,
)

from . import registry
from .logic.releases import BASE_VERSION, PlannedAction, plan_promote, plan_rollback

log = get_logger(__name__)

Send = Callable[[str, bytes, bytes], None]
_WIRE_ACTIONS = {"canary": RELEASE_ACTION_CANARY, "promote": RELEASE_ACTION_PROMOTE,
                 "rollback": RELEASE_ACTION_ROLLBACK}


def kafka_send(producer: Any, timeout_s: float = 15.0) -> Send:
    """A ``send(topic, key, value)`` that waits for the broker's acknowledgement."""
    from flywheel.kafka.producer import produce_sync

    def send(topic: str, key: bytes, value: bytes) -> None:
        produce_sync(producer, topic, key, value, timeout_s=timeout_s)

    return send


def _artifact(row: ModelVersion | None) -> tuple[str, str]:
    if row is None:
        return "", ""
    return row.onnx_path or "", row.artifact_hash or ""


class Releaser:
    """Registry updates plus ``ModelRelease`` events for one deployment.

    Args:
        settings: shared settings (topic prefix).
        engine: the registry database.
        send: ``send(topic, key, value)`` that raises when the broker does not acknowledge.
        producer_name: stamped on event envelopes.
    """

    def __init__(self, settings: Settings, engine: Engine, send: Send, *,
                 producer_name: str = "exporter") -> None:
        self._topic = settings.topic("models.releases")
        self._engine = engine
        self._send = send
        self._producer_name = producer_name

    def _event(self, *, line: str, version: int, action: str, artifact: tuple[str, str],
               actor: str, reason: str, previous: int, share: float = 0.0) -> ModelRelease:
        event = ModelRelease(
            release_id=uuid.uuid4().hex, model_line=line, version=version,
            action=_WIRE_ACTIONS[action], artifact_path=artifact[0], artifact_hash=artifact[1],
            canary_share=share, actor=actor, reason=reason[:2000], previous_version=previous,
        )
        return stamp(event, self._producer_name)

    def _publish(self, session: Any, event: ModelRelease, action: str, subject: int) -> None:
        session.add(Release(line=event.model_line, version=subject, action=ReleaseAction(action),
                            actor=event.actor, reason=event.reason))
        session.flush()
        self._send(self._topic, event.model_line.encode(), encode(event))
        log.info("release_published", line=event.model_line, action=action, version=subject,
                 serves=event.previous_version if action == "rollback" else event.version,
                 actor=event.actor)

    def canary(self, line: str, version: int, artifact_dir: Path, artifact_hash: str, *,
               share: float, actor: str, reason: str,
               metrics: Mapping[str, Any] | None = None) -> ModelRelease:
        """Send ``share`` of users to ``version``; an earlier undecided canary is rolled back."""
        with session_scope(self._engine) as s:
            state = registry.line_state(s, line)
            row = registry.require_version(s, line, version)
            row.onnx_path, row.artifact_hash = str(artifact_dir), artifact_hash
            if metrics:
                registry.merge_metrics(row, metrics)
            if state.canary is not None and state.canary != version:
                old = s.get(ModelVersion, (line, state.canary))
                if old is not None:
                    registry.set_status(old, ModelStatus.ROLLED_BACK,
                                        f"replaced by canary {version} before a decision", actor)
            registry.set_status(row, ModelStatus.CANARY, reason, actor, share=share)
            event = self._event(line=line, version=version, action="canary",
                                artifact=(str(artifact_dir), artifact_hash), actor=actor,
                                reason=reason, previous=state.stable, share=share)
            self._publish(s, event, "canary", version)
            return event

    def promote(self, line: str, version: int | None = None, *, actor: str, reason: str,
                expect_canary: int | None = None) -> ModelRelease:
        """Serve ``version`` (default: the canary) to everyone.

        Args:
            expect_canary: act only while this version is still the canary (automatic decisions
                must not undo a decision taken by hand in the meantime).

        Raises:
            ReleaseRuleError: nothing to promote, or the canary changed.
            RegistryError: the version is unknown or has no exported artifact.
        """
        with session_scope(self._engine) as s:
            state = registry.line_state(s, line)
            _check_expected(state.canary, expect_canary)
            plan = plan_promote(state, version)
            row = registry.require_version(s, line, plan.version)
            if not row.onnx_path:
                raise registry.RegistryError(f"{line} version {plan.version} has no exported artifact")
            self._retire_replaced(s, line, plan, actor)
            registry.set_status(row, ModelStatus.RELEASED, reason, actor)
            event = self._event(line=line, version=plan.version, action="promote",
                                artifact=_artifact(row), actor=actor, reason=reason,
                                previous=plan.previous_version)
            self._publish(s, event, "promote", plan.version)
            return event

    def rollback(self, line: str, version: int | None = None, *, actor: str, reason: str,
                 expect_canary: int | None = None) -> ModelRelease:
        """Take the canary (or, without one, the current release) out of service.

        Raises:
            ReleaseRuleError: nothing to roll back, or the canary changed.
        """
        with session_scope(self._engine) as s:
            state = registry.line_state(s, line)
            _check_expected(state.canary, expect_canary)
            plan = plan_rollback(state, version)
            row = s.get(ModelVersion, (line, plan.version))
            if row is not None:
                registry.set_status(row, ModelStatus.ROLLED_BACK, reason, actor)
            after = None if plan.serves_after == BASE_VERSION else s.get(ModelVersion, (line, plan.serves_after))
            event = self._event(line=line, version=plan.version, action="rollback",
                                artifact=_artifact(after), actor=actor, reason=reason,
                                previous=plan.serves_after)
            self._publish(s, event, "rollback", plan.version)
            return event

    @staticmethod
    def _retire_replaced(session: Any, line: str, plan: PlannedAction, actor: str) -> None:
        if plan.replaces_canary is None:
            return
        old = session.get(ModelVersion, (line, plan.replaces_canary))
        if old is not None:
            registry.set_status(old, ModelStatus.ROLLED_BACK,
                                f"version {plan.version} promoted over this canary", actor)


def _check_expected(canary: int | None, expected: int | None) -> None:
    from .logic.releases import ReleaseRuleError

    if expected is not None and canary != expected:
        raise ReleaseRuleError(f"the canary is now {canary}, not {expected}; nothing done")
