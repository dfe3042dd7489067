"""Curator settings, the curation YAML, and the agents' decode / dead-letter step."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from curator_builders import make_decision, make_trace

from flywheel.errors import ConfigError
from flywheel.events.codec import decode, encode
from flywheel.services.curator.agents import handle_event
from flywheel.services.curator.settings import (
    DEFAULT_CONFIG,
    load_curation,
    load_curator_settings,
)
from flywheel.v1.pipeline_pb2 import DeadLetter
from flywheel.v1.triage_pb2 import TriageDecision


def test_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_curator_settings()
    assert (settings.model_line, settings.min_sft, settings.replay_share,
            settings.eval_share) == ("shop-assistant", 64, 0.2, 0.1)
    curation = load_curation(settings)
    assert curation.designs.enabled() == ["prompt_erasure", "rag_cot"]
    assert curation.caps.source_shares == {"judge": 0.4, "rating_gap": 0.4}
    assert curation.rules.rule("correction").quality == 1.0
    monkeypatch.setenv("FLYWHEEL_CURATOR_MIN_SFT", "48")
    monkeypatch.setenv("FLYWHEEL_CURATOR_MIN_DPO", "0")
    monkeypatch.setenv("FLYWHEEL_CURATOR_DESIGNS", "pam")
    curation = load_curation(load_curator_settings())
    assert curation.policy.min_sft == 48 and curation.policy.min_dpo == 0
    assert curation.designs.enabled() == ["pam"]


def test_errors_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_CURATOR_REPLAY_SHARE", "1.5")
    with pytest.raises(ConfigError, match="FLYWHEEL_CURATOR_REPLAY_SHARE"):
        load_curator_settings()
    monkeypatch.delenv("FLYWHEEL_CURATOR_REPLAY_SHARE")
    bad = tmp_path / "c.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace("min_chars: 200", "min_chars: 0"))
    with pytest.raises(ConfigError, match="CONFIG_PATH.*min_chars"):
        load_curation(load_curator_settings(config_path=bad))
    with pytest.raises(ConfigError, match="unknown designs"):
        load_curation(load_curator_settings(designs=["orca"]))
    with pytest.raises(ConfigError, match="MIN_"):
        load_curation(load_curator_settings(min_sft=600, max_sft=512))


def _event(value: bytes, offset: int = 5) -> SimpleNamespace:
    message = SimpleNamespace(topic="p.traces.triaged.v1", partition=2, offset=offset)
    return SimpleNamespace(key=b"k", value=value, message=message, headers=None)


def test_handle_event_decodes_or_dead_letters() -> None:
    handled, sent = [], []

    async def handler(msg, coords) -> None:  # noqa: ANN001
        handled.append((msg, coords))

    async def send(topic: str, key: str, value: bytes) -> None:
        sent.append((topic, key, value))

    decision = make_decision(make_trace("t", "hi?", "hello"))
    asyncio.run(handle_event(_event(encode(decision)), TriageDecision, handler, send))
    [(msg, coords)] = handled
    assert msg.trace_id == "t" and (coords.partition, coords.offset) == (2, 5)
    asyncio.run(handle_event(_event(b"\x00junk", 6), TriageDecision, handler, send))
    [(topic, key, value)] = sent
    letter = decode(value, DeadLetter)
    assert topic == "deadletter" and key == letter.envelope.event_id
    assert (letter.source_topic, letter.offset, letter.value) == ("p.traces.triaged.v1", 6,
                                                                  b"\x00junk")
    assert letter.error_type == "EventDecodeError" and letter.service == "curator"


def test_handler_errors_propagate() -> None:
    async def handler(msg, coords) -> None:  # noqa: ANN001
        raise RuntimeError("boom")

    async def send(*_: object) -> None:
        raise AssertionError("not a dead letter")

    decision = make_decision(make_trace("t", "hi?", "hello"))
    with pytest.raises(RuntimeError):
        asyncio.run(handle_event(_event(encode(decision)), TriageDecision, handler, send))
