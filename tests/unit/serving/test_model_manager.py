"""ModelManager: atomic switches, canary routing, release ordering and failed loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.services.serving.app import generator_loader
from flywheel.services.serving.errors import ModelNotFound, ModelNotReady, VersionLoadError
from flywheel.services.serving.logic import routes_to_canary
from flywheel.services.serving.model_manager import ModelManager
from flywheel.services.serving.ports import Release

pytestmark = pytest.mark.ml

LINE = "shop-assistant"


@pytest.fixture
def manager() -> ModelManager:
    m = ModelManager(LINE, generator_loader(threads=1), default_canary_share=0.25)
    yield m
    m.close()


def test_nothing_loaded_is_not_ready(manager: ModelManager) -> None:
    assert not manager.ready
    with pytest.raises(ModelNotReady):
        manager.pick("u", "r")


def test_switch_keeps_in_flight_handles_usable(manager: ModelManager, version_artifacts) -> None:  # noqa: ANN001
    seen = []
    manager.add_listener(lambda routing: seen.append(routing.stable.version))
    old = manager.load("0", version_artifacts["0"])
    assert manager.pick("u", "r") is old
    new = manager.load_in_background("1", version_artifacts["1"]).result(timeout=60)
    assert manager.pick("u", "r") is new and new.model_id == f"{LINE}:1"
    # A request that picked the old handle before the switch still finishes on it.
    [out] = old.generator.generate(["Hello"], max_new_tokens=3)
    assert out.finish_reason in ("stop", "length")
    assert seen == ["0", "1"]
    assert manager.load("1", version_artifacts["1"]) is new  # same version: no reload, no switch
    assert seen == ["0", "1"]


def test_failed_load_keeps_serving_the_old_version(manager: ModelManager, version_artifacts, tmp_path: Path) -> None:  # noqa: ANN001
    manager.load("0", version_artifacts["0"])
    future = manager.load_in_background("9", tmp_path / "missing")
    with pytest.raises(VersionLoadError):
        future.result(timeout=60)
    assert manager.routing.stable.version == "0"
    assert "version 9" in manager.last_error


def test_canary_routing_promotion_and_rollback(manager: ModelManager, version_artifacts) -> None:  # noqa: ANN001
    manager.load("0", version_artifacts["0"])
    manager.apply_release(Release(LINE, "1", version_artifacts["1"], "canary")).result(timeout=60)
    routing = manager.routing
    assert routing.canary.version == "1" and routing.canary_share == 0.25
    for user in (f"user-{i}" for i in range(50)):
        want = "1" if routes_to_canary(user, "", 0.25) else "0"
        assert manager.pick(user, "a").version == want == manager.pick(user, "b").version
    assert manager.pick(None, "r", version="1").version == "1"
    with pytest.raises(ModelNotFound):
        manager.pick(None, "r", version="7")
    manager.apply_release(Release(LINE, "0", version_artifacts["0"], "rollback")).result(timeout=60)
    assert manager.routing.canary is None and manager.routing.stable.version == "0"
    manager.apply_release(Release(LINE, "1", version_artifacts["1"], "canary", 0.5)).result(timeout=60)
    canary = manager.routing.canary
    manager.apply_release(Release(LINE, "1", version_artifacts["1"], "promote")).result(timeout=60)
    assert manager.routing.stable is canary and manager.routing.canary is None


def test_releases_apply_in_order(manager: ModelManager, version_artifacts) -> None:  # noqa: ANN001
    manager.load("0", version_artifacts["0"])
    futures = [
        manager.apply_release(Release(LINE, "1", version_artifacts["1"], "promote")),
        manager.apply_release(Release(LINE, "2", version_artifacts["2"], "canary", 0.1)),
        manager.apply_release(Release("another-line", "5", version_artifacts["0"], "promote")),
        manager.apply_release(Release(LINE, "2", version_artifacts["2"], "promote")),
    ]
    for f in futures:
        f.result(timeout=60)
    assert manager.routing.stable.version == "2" and manager.routing.canary is None
