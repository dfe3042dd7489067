"""Settings of the exporter and the release controller: the ``FLYWHEEL_EXPORTER_`` section."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.errors import ConfigError
from flywheel.services.exporter.logic.decide import DecisionPolicy

SERVICE = "exporter"
CONTROLLER = "release-controller"


class ExporterSettings(BaseSettings):
    """Export, parity-gate and release-decision knobs, read from ``FLYWHEEL_EXPORTER_*``."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_EXPORTER_", env_file=".env",
                                      extra="ignore", frozen=True)

    model_line: str = Field("shop-assistant", min_length=1, description="Line the controller watches.")
    canary_share: float = Field(0.2, gt=0.0, le=1.0, description="Share of users a new canary gets.")
    quantize: bool = Field(False, description="Release int8 (dynamic) artifacts, judged by task metric.")
    parity_prompts: int = Field(16, ge=1, le=256, description="Shop questions in the parity gate.")
    parity_max_new_tokens: int = Field(24, ge=1, le=512, description="Greedy tokens per gate prompt.")
    parity_logit_tolerance: float = Field(1e-3, gt=0, description="Largest prefill logit difference.")
    parity_metric_margin: float = Field(0.02, ge=0, le=1,
                                        description="Quantised exports: largest exact-match drop.")
    threads: int = Field(0, ge=0, description="onnxruntime threads in the gate (0: its default).")
    group_id: str = Field("", description="Consumer group of the exporter; empty: <prefix>-exporter.")
    poll_timeout_s: float = Field(1.0, gt=0, description="Longest wait for one poll.")

    auto_promote: bool = Field(True, description="Promote canaries by rule (rollback is always on).")
    decision_interval_s: float = Field(10.0, gt=0, description="How often the controller decides.")
    min_requests: int = Field(200, ge=1, description="Canary answers needed before a promotion.")
    min_samples: int = Field(30, ge=1, description="Observations per side before a signal is judged.")
    confidence: float = Field(0.95, ge=0.5, lt=1.0,
                              description="One-sided confidence (Bonferroni over four signals).")
    rate_margin: float = Field(0.02, ge=0, le=1,
                               description="Thumbs-down and error rates: tolerated increase.")
    rating_margin: float = Field(0.25, ge=0, description="Mean rating (1-7): tolerated drop.")
    win_margin: float = Field(0.05, ge=0, lt=0.5, description="Preference win rate: tolerated 0.5 - x.")
    require_feedback: bool = Field(True, description="Promotion needs a judged feedback signal.")
    window_slack_s: float = Field(60.0, ge=0, description="Read topics from this long before a canary.")

    def group(self, topic_prefix: str) -> str:
        return self.group_id or f"{topic_prefix}-{SERVICE}"

    def policy(self) -> DecisionPolicy:
        return DecisionPolicy(
            confidence=self.confidence, min_requests=self.min_requests, min_samples=self.min_samples,
            rate_margin=self.rate_margin, rating_margin=self.rating_margin,
            win_margin=self.win_margin, require_feedback=self.require_feedback,
        )


def load_exporter_settings(**overrides: Any) -> ExporterSettings:
    """The exporter section, with validation errors as one-line ConfigErrors."""
    from pydantic import ValidationError

    try:
        return ExporterSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigError(f"FLYWHEEL_EXPORTER_{field.upper()}", err["msg"]) from None
