"""Settings of the preferences service: the shared settings plus a ``FLYWHEEL_PREFERENCES_`` section."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.settings import Settings


class PreferencesSection(BaseSettings):
    """Options read from ``FLYWHEEL_PREFERENCES_*``."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_PREFERENCES_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(8002, ge=0, le=65535, description="HTTP port.")
    consume: bool = Field(True, description="Run the preference.requests consumer in-process.")
    daily_budget: int = Field(3, ge=0, description="Most preference questions per user per UTC day.")
    ttl_s: float = Field(86_400.0, gt=0, description="Expiry of a request when triage sets none.")
    max_ttl_s: float = Field(7 * 86_400.0, gt=0, description="Upper bound on any request's expiry.")
    require_app_key: bool = Field(
        True, description="Require an app API key (Authorization: Bearer fw_...) on /v1 routes."
    )
    model_base_url: str = Field(
        "http://127.0.0.1:8001/v1",
        description="OpenAI-compatible endpoint for second answers (default: the serving service).",
    )
    model_api_key: SecretStr = Field(SecretStr(""), description="Bearer key for the endpoint.")
    model_name: str = Field(
        "", description="Model id to ask when the endpoint lists no stable/canary roles; "
                        "default: the original answer's model name.")
    sample_temperature: float = Field(
        1.0, ge=0.0, le=2.0, description="Temperature of the alternative sampled from the release.")
    canary_temperature: float = Field(0.7, ge=0.0, le=2.0, description="Temperature for the canary.")
    max_tokens: int = Field(256, ge=1, description="Completion budget of the second answer.")
    second_answer_attempts: int = Field(
        3, ge=1, description="Draws before giving up on an answer that differs from the first.")
    models_cache_s: float = Field(5.0, ge=0.0, description="How long GET /models is cached.")
    http_timeout_s: float = Field(30.0, gt=0, description="Timeout of model and webhook calls.")
    webhook_max_attempts: int = Field(6, ge=1, description="Deliveries tried per webhook and request.")
    webhook_backoff_s: float = Field(1.0, gt=0, description="First retry delay (doubles each time).")
    webhook_backoff_max_s: float = Field(300.0, gt=0, description="Cap on one retry delay.")
    webhook_poll_s: float = Field(0.2, gt=0, description="How often due deliveries are looked up.")


class PreferencesSettings(Settings):
    """Everything the preferences process reads: shared sections plus ``preferences``."""

    preferences: PreferencesSection = Field(default_factory=PreferencesSection)
