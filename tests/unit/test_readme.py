"""The README stays true to the code: every topic, every shared setting and both commands."""

from __future__ import annotations

from pathlib import Path

from flywheel.events.topics import TOPICS
from flywheel.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_topic_is_documented() -> None:
    missing = [t.full_name() for t in TOPICS.values() if f"`{t.full_name()}`" not in README]
    assert not missing, f"README lacks topics: {missing}"


def test_every_shared_setting_is_documented() -> None:
    missing = [f"FLYWHEEL_{n.upper()}" for n in Settings.model_fields
               if f"FLYWHEEL_{n.upper()}" not in README]
    assert not missing, f"README lacks settings: {missing}"


def test_the_two_commands_are_documented() -> None:
    assert "make run" in README and "make test" in README
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make test" in ci
