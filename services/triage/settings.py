"""Triage settings: the ``FLYWHEEL_TRIAGE_`` section, next to the shared ``Settings``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TriageSettings(BaseSettings):
    """Knobs of the triage worker. Routing thresholds live in the policy file, not here."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_TRIAGE_", env_file=".env",
                                      extra="ignore", frozen=True)

    hold_s: float = Field(10.0, ge=0, description="Wait this long for feedback before deciding.")
    late_window_s: float = Field(24 * 3600.0, gt=0,
                                 description="Feedback this long after a trace still joins it.")
    policy_path: Path | None = Field(None, description="Routing policy YAML; unset: the default.")

    model_url: str = Field("http://127.0.0.1:8001/v1",
                           description="OpenAI-compatible base URL for uncertainty sampling; "
                                       "empty disables model calls.")
    model_name: str = Field("", description="Model name sent to the endpoint; empty: the trace's.")
    model_api_key: SecretStr = Field(SecretStr(""), description="Bearer key for the endpoint.")
    k_samples: int = Field(5, ge=0, le=32, description="Sampled answers per uncertain item.")
    model_timeout_s: float = Field(5.0, gt=0, description="Per-request timeout.")
    model_concurrency: int = Field(4, ge=1, description="Requests in flight per worker.")
    model_cooldown_s: float = Field(30.0, ge=0,
                                    description="After a failure, skip the model this long.")
    sampling_deadline_s: float = Field(20.0, gt=0,
                                       description="Decide without samples after this long.")

    batch_max: int = Field(500, ge=1, description="Largest batch taken from the stream.")
    batch_within_s: float = Field(0.05, gt=0, description="Longest wait to fill a batch.")
    tick_interval_s: float = Field(0.5, gt=0, description="How often due traces are decided.")
    health_interval_s: float = Field(10.0, gt=0, description="pipeline.health period.")

    web_port: int | None = Field(None, description="Faust web server port; unset: off.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus port; 0: off.")
    faust_version: int = Field(1, ge=1, description="App version (resets offsets and tables).")
    store: str = Field("memory://", description="Faust table store URL.")
    instance: str = Field("", description="Instance name in pipeline.health; default host-pid.")
    redis_timeout_s: float = Field(5.0, gt=0)

    @field_validator("model_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL or empty, got {value!r}")
        return value

    @property
    def model_enabled(self) -> bool:
        return bool(self.model_url) and self.k_samples > 0
