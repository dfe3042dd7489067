"""Settings: frozen, prefixed env names, one-line ConfigErrors, the dev-stack fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from flywheel.errors import ConfigError
from flywheel.settings import Settings, check_tcp, load_settings


def _write_state(data_dir: Path, state: dict) -> None:
    (data_dir / "stack").mkdir(parents=True, exist_ok=True)
    (data_dir / "stack" / "state.json").write_text(json.dumps(state))


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(ValidationError):
        settings.topic_prefix = "other"  # type: ignore[misc]


def test_defaults_without_environment(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.env == "dev"
    assert settings.topic_prefix == "flywheel"
    assert settings.database() == f"sqlite:///{(tmp_path / 'flywheel.db').resolve()}"


def test_environment_variables_use_the_flywheel_prefix(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("FLYWHEEL_TOPIC_PREFIX", "staging")
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.topic_prefix == "staging"
    assert settings.kafka() == "broker-1:9092,broker-2:9092"
    assert settings.topic("traces.raw") == "staging.traces.raw.v1"
    assert settings.data_dir == tmp_path


def test_topic_prefix_applies_to_every_registered_topic(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, topic_prefix="t0123456789")
    assert settings.topic("deadletter") == "t0123456789.pipeline.deadletter.v1"
    assert settings.topic("models.releases") == "t0123456789.models.releases.v1"


@pytest.mark.parametrize(
    ("env_name", "value"),
    [
        ("FLYWHEEL_KAFKA_BOOTSTRAP", "not a host"),
        ("FLYWHEEL_KAFKA_BOOTSTRAP", "broker:9092,broker"),
        ("FLYWHEEL_REDIS_URL", "http://127.0.0.1:6379/0"),
        ("FLYWHEEL_REDIS_URL", "127.0.0.1:6379"),
        ("FLYWHEEL_DATABASE_URL", "mysql://root@localhost/db"),
        ("FLYWHEEL_DATABASE_URL", "flywheel.db"),
        ("FLYWHEEL_ENV", "staging"),
    ],
)
def test_malformed_values_give_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env_name: str, value: str
) -> None:
    monkeypatch.setenv(env_name, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(f"{env_name}: ")
    assert "\n" not in message
    assert err.value.setting == env_name


def test_prod_rejects_the_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_ENV", "prod")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith("FLYWHEEL_SECRET_KEY: ")
    monkeypatch.setenv("FLYWHEEL_SECRET_KEY", "a-real-secret-from-the-vault")
    assert load_settings().env == "prod"


def test_dev_accepts_the_placeholder_secret() -> None:
    assert load_settings(env="dev").secret_key.startswith("dev-")


def test_addresses_fall_back_to_the_dev_stack_state_file(tmp_path: Path) -> None:
    _write_state(tmp_path, {
        "kafka": {"address": "127.0.0.1:39092", "pid": 10},
        "redis": {"url": "redis://127.0.0.1:36379/0", "pid": 11},
    })
    settings = load_settings(data_dir=tmp_path)
    assert settings.kafka() == "127.0.0.1:39092"
    assert settings.redis() == "redis://127.0.0.1:36379/0"


def test_explicit_settings_win_over_the_state_file(tmp_path: Path) -> None:
    _write_state(tmp_path, {"kafka": {"address": "127.0.0.1:39092"},
                            "redis": {"url": "redis://127.0.0.1:36379/0"}})
    settings = load_settings(data_dir=tmp_path, kafka_bootstrap="other:9092",
                             redis_url="redis://other:6379/1")
    assert settings.kafka() == "other:9092"
    assert settings.redis() == "redis://other:6379/1"


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"kafka": {}})])
def test_no_stack_and_no_setting_names_the_variable(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "stack").mkdir()
        (tmp_path / "stack" / "state.json").write_text(content)
    settings = load_settings(data_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^FLYWHEEL_KAFKA_BOOTSTRAP: .*flywheel dev up"):
        settings.kafka()
    with pytest.raises(ConfigError, match=r"^FLYWHEEL_REDIS_URL: "):
        settings.redis()


def test_check_tcp_names_the_setting_when_nothing_listens() -> None:
    expected = r"^FLYWHEEL_KAFKA_BOOTSTRAP: cannot connect to 127\.0\.0\.1:1"
    with pytest.raises(ConfigError, match=expected):
        check_tcp("FLYWHEEL_KAFKA_BOOTSTRAP", "127.0.0.1:1", timeout_s=1.0)


def test_make_settings_fixture_without_live_services(make_settings, tmp_path: Path,
                                                      topic_prefix: str) -> None:
    settings = make_settings(kafka_bootstrap="127.0.0.1:9", redis_url="redis://127.0.0.1:9/0")
    assert isinstance(settings, Settings)
    assert settings.env == "test"
    assert settings.data_dir == tmp_path
    assert settings.topic_prefix == topic_prefix
    assert settings.database().startswith("sqlite:///") and str(tmp_path) in settings.database()
