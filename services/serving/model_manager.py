"""The live models of one line: a stable version, an optional canary, and atomic switches.

Routing state is one immutable ``Routing`` snapshot replaced under a lock, so a request reads
it once and keeps the ``ModelHandle`` it got: in-flight requests finish on the model they
started with, and a handle's session is freed when its last request lets go of it. Loads run
one at a time on a background thread, in the order they were asked for.

    manager = ModelManager("shop-assistant", loader=lambda path: OrtGenerator(path))
    manager.load("0", base_artifact)                      # serve version 0
    manager.load_in_background("1", artifact_v1).result() # switch to 1 when it is ready
    handle = manager.pick(user="u-17", request_id=rid)    # stable or canary (sticky per user)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flywheel.logging import get_logger

from .errors import ModelNotFound, ModelNotReady, VersionLoadError
from .logic import model_id, plan_release, routes_to_canary
from .ports import Release

log = get_logger(__name__)

Loader = Callable[[Path], Any]
ArtifactRef = Path | Callable[[], Path]


@dataclass(frozen=True, eq=False)
class ModelHandle:
    """One loaded model version; compared by identity."""

    line: str
    version: str
    artifact_dir: Path
    generator: Any
    loaded_at: float

    @property
    def model_id(self) -> str:
        return model_id(self.line, self.version)


@dataclass(frozen=True)
class Routing:
    """Which handles answer: ``stable`` for everyone, ``canary`` for ``canary_share`` of users."""

    stable: ModelHandle | None = None
    canary: ModelHandle | None = None
    canary_share: float = 0.0

    def handles(self) -> list[ModelHandle]:
        return [h for h in (self.stable, self.canary) if h is not None]


class ModelManager:
    """Holds the live model(s) of one line and switches between them atomically.

    Args:
        line: the model line (the ``<line>`` in ``<line>:<version>``).
        loader: builds a generator from an artifact directory (and warms it up).
        default_canary_share: share used when a canary release names none.
    """

    def __init__(self, line: str, loader: Loader, *, default_canary_share: float = 0.1) -> None:
        self.line = line
        self._loader = loader
        self._default_share = default_canary_share
        self._listeners: list[Callable[[Routing], None]] = []
        self._routing = Routing()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self.last_error: str | None = None

    @property
    def routing(self) -> Routing:
        return self._routing

    @property
    def ready(self) -> bool:
        return self._routing.stable is not None

    # -- switching ------------------------------------------------------------------------------

    def _update(self, change: Callable[[Routing], Routing]) -> None:
        """Replace the routing snapshot with ``change(current)``, atomically."""
        with self._lock:
            routing = change(self._routing)
            if routing == self._routing:
                return
            self._routing = routing
        log.info("model_routing_changed", stable=routing.stable and routing.stable.version,
                 canary=routing.canary and routing.canary.version, canary_share=routing.canary_share)
        for listener in self._listeners:
            try:
                listener(routing)
            except Exception as exc:  # a metrics hook must never undo a switch
                log.error("routing_listener_failed", error=str(exc))

    def add_listener(self, listener: Callable[[Routing], None]) -> None:
        """Call ``listener(routing)`` after every switch (metrics, logs)."""
        self._listeners.append(listener)

    def _handle_for(self, version: str, artifact: ArtifactRef) -> ModelHandle:
        for handle in self._routing.handles():
            if handle.version == version:
                return handle
        started = time.perf_counter()
        path: Path | None = None
        try:
            path = Path(artifact() if callable(artifact) else artifact)
            generator = self._loader(path)
        except Exception as exc:  # exporters and loaders raise whatever their runtime raises
            self.last_error = f"version {version}: {exc}"
            log.error("model_load_failed", version=version, artifact=str(path), error=str(exc))
            raise VersionLoadError(f"cannot load version {version} from {path}: {exc}") from exc
        self.last_error = None
        log.info("model_loaded", version=version, artifact=str(path),
                 seconds=round(time.perf_counter() - started, 3))
        return ModelHandle(self.line, version, path, generator, time.time())

    def load(self, version: str, artifact: ArtifactRef, *, role: str = "stable",
             canary_share: float | None = None) -> ModelHandle:
        """Load a version (reusing a live handle of the same version) and switch to it."""
        handle = self._handle_for(version, artifact)
        if role == "canary":
            share = self._default_share if canary_share is None else canary_share
            self._update(lambda current: Routing(current.stable, handle, share))
        else:

            def to_stable(current: Routing) -> Routing:
                canary = None if current.canary is handle else current.canary
                return Routing(handle, canary, current.canary_share if canary else 0.0)

            self._update(to_stable)
        return handle

    def load_in_background(self, version: str, artifact: ArtifactRef, *, role: str = "stable",
                           canary_share: float | None = None) -> Future[ModelHandle]:
        """Load on the loader thread and switch when ready; ``artifact`` may be a callable."""
        return self._executor.submit(self.load, version, artifact, role=role, canary_share=canary_share)

    def promote_canary(self) -> None:
        """The canary becomes the stable version for everyone."""
        self._update(lambda r: Routing(r.canary, None, 0.0) if r.canary is not None else r)

    def drop_canary(self) -> None:
        """Everyone goes back to the stable version."""
        self._update(lambda r: replace(r, canary=None, canary_share=0.0))

    def apply_release(self, release: Release) -> Future[None]:
        """Carry out a release on the loader thread, after any load already queued."""
        return self._executor.submit(self._apply_release, release)

    def _apply_release(self, release: Release) -> None:
        current = self._routing
        steps = plan_release(
            self.line, current.stable and current.stable.version,
            current.canary and current.canary.version, release, self._default_share,
        )
        for step in steps:
            if step.kind == "drop_canary":
                self.drop_canary()
            elif step.kind == "promote_canary":
                self.promote_canary()
            elif step.kind == "load_canary":
                self.load(release.version, release.artifact_dir, role="canary", canary_share=step.share)
            elif step.kind == "load_stable":
                self.load(release.version, release.artifact_dir, role="stable")

    # -- routing --------------------------------------------------------------------------------

    def pick(self, user: str | None, request_id: str, version: str | None = None) -> ModelHandle:
        """The handle that answers a request: a pinned version, else canary or stable.

        Raises:
            ModelNotReady: nothing is loaded yet.
            ModelNotFound: the pinned version is not live.
        """
        routing = self._routing  # one read: the whole request uses this snapshot
        if routing.stable is None:
            raise ModelNotReady(self.last_error or "the model is still loading")
        if version is not None:
            for handle in routing.handles():
                if handle.version == version:
                    return handle
            raise ModelNotFound(f"version {version!r} of {self.line!r} is not being served")
        if routing.canary is not None and routes_to_canary(user, request_id, routing.canary_share):
            return routing.canary
        return routing.stable

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
