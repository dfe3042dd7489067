"""Gateway settings come from FLYWHEEL_GATEWAY_* and fail with the variable's name."""

from __future__ import annotations

import pytest

from flywheel.errors import ConfigError
from flywheel.services.gateway.config import GatewaySettings, load_gateway_settings


def test_defaults_and_environment(monkeypatch) -> None:  # noqa: ANN001
    assert GatewaySettings().port == 8000 and GatewaySettings().idempotency_window_s == 86400
    monkeypatch.setenv("FLYWHEEL_GATEWAY_PORT", "9123")
    monkeypatch.setenv("FLYWHEEL_GATEWAY_ATOMIC_BATCHES", "false")
    loaded = load_gateway_settings()
    assert loaded.port == 9123 and loaded.atomic_batches is False


def test_invalid_values_name_the_variable(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("FLYWHEEL_GATEWAY_MAX_BATCH_COUNT", "0")
    with pytest.raises(ConfigError) as info:
        load_gateway_settings()
    assert "FLYWHEEL_GATEWAY_MAX_BATCH_COUNT" in str(info.value)


def test_build_app_reads_the_environment(monkeypatch, tmp_path) -> None:  # noqa: ANN001
    from flywheel.services.gateway import main

    monkeypatch.setattr(main, "configure_logging", lambda *a, **k: None)  # process-wide
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("FLYWHEEL_GATEWAY_MAX_BODY_BYTES", "4096")
    app = main.build_app()  # builds only; nothing connects before the lifespan runs
    assert app.title == "Flywheel gateway"
    assert "/v1/otlp/v1/traces" in app.openapi()["paths"]


def test_every_gateway_setting_is_documented() -> None:
    from pathlib import Path

    from flywheel.services.gateway.config import GatewaySettings

    readme = (Path(__file__).resolve().parents[3] / "services" / "gateway" / "README.md").read_text()
    table = readme[readme.index("### Settings"):readme.index("### How the ingest path")]
    missing = [name.upper() for name in GatewaySettings.model_fields
               if f"`{name.upper()}`" not in table]
    assert not missing, f"services/gateway/README.md lacks settings: {missing}"
