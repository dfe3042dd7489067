"""Trainer settings (``FLYWHEEL_TRAINER_*``): the model line, the base model, the lock, the
training budget, the evaluation set and the gate's margins.

Hyperparameters that are not listed here keep the defaults of
:class:`flywheel.ml.train.TrainConfig`; ``FLYWHEEL_TRAINER_TRAIN_OVERRIDES`` (a JSON object)
sets any of them, and is checked by the dataclass like every other value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.errors import ConfigError
from flywheel.services.trainer.logic.gate import Margins
from flywheel.settings import Settings

SERVICE = "trainer"
DEFAULT_BASE_MODEL = Path("models") / "tiny-base"


class TrainerSettings(BaseSettings):
    """Settings of the trainer service."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_TRAINER_", env_file=".env",
                                      extra="ignore", frozen=True)

    model_line: str = Field("shop-assistant", description="Model line this trainer trains.")
    base_model_dir: Path | None = Field(
        None, description="Base model directory for version 1; unset: <data_dir>/models/tiny-base.")
    lock_ttl_s: float = Field(60.0, gt=1, description="Lease of the per-line training lock; "
                              "a dead trainer's lock expires after this.")
    lock_wait_s: float | None = Field(None, gt=0, description="How long a job waits for the lock "
                                      "(unset: as long as it takes).")
    max_job_s: float = Field(3600.0, gt=0, description="Longest job; bounds the consumer's "
                             "poll interval so a long job does not lose its partition.")
    start_from: Literal["newest", "release"] = Field(
        "newest", description="What a new version trains on: the newest gated version that "
        "was not turned down (a candidate waiting for export or a canary, else the release), or "
        "always the current release (later candidates are then siblings of one in canary).")
    max_batches_per_job: int = Field(
        4, ge=1, le=64, description="Announcements a job takes at once when several are "
        "waiting (a trainer behind the curator catches up in one job instead of one job per "
        "batch, each on stale data); 1: one job per batch.")
    poll_timeout_s: float = Field(1.0, gt=0, description="Consumer poll timeout.")
    seed: int = Field(0, description="Seed of sampling order, LoRA init and dropout.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator.")
    sft_epochs: float = Field(1.0, gt=0, description="Passes over the SFT rows (before the cap).")
    max_sft_steps: int = Field(120, ge=0, description="Most SFT optimizer steps per job.")
    sft_batch_size: int = Field(32, ge=1, description="Conversations per SFT step.")
    sft_learning_rate: float = Field(3e-3, gt=0, description="Peak SFT learning rate.")
    dpo_epochs: float = Field(1.0, gt=0, description="Passes over the training pairs.")
    max_dpo_steps: int = Field(30, ge=0, description="Most DPO optimizer steps per job.")
    dpo_batch_size: int = Field(16, ge=1, description="Preference pairs per DPO step.")
    dpo_learning_rate: float = Field(1e-4, gt=0, description="Peak DPO learning rate (with the "
                                     "SFT term, 1e-4 kept exact match where plain DPO at 5e-4 "
                                     "lost it).")
    sft_weight: float = Field(1.0, ge=0, description="SFT term on the chosen answer in DPO.")
    max_length: int = Field(256, ge=16, description="Longest conversation in tokens.")
    replay_share: float = Field(0.0, ge=0, lt=1, description="Replay share to reach by adding "
                                "earlier batches' rows when the batch holds less (the batch's "
                                "own share is always the target when higher).")
    balance_intents: float = Field(1.0, ge=1, le=20, description="Repeat the SFT rows of rare "
                                   "intents (the intent the curator's manifest gives each row) "
                                   "up to this many times, towards the most frequent intent's "
                                   "count; 1 is off.")
    train_overrides: dict[str, Any] = Field(default_factory=dict, description="Any other "
                                            "TrainConfig fields, as a JSON object.")
    num_threads: int = Field(0, ge=0, description="torch threads; 0: the CPUs idle now (1-minute load average), at least 1.")
    eval_source: Literal["auto", "batch", "shop"] = Field(
        "auto", description="Held-out set: the batch's eval set, the shop world's held-out "
        "questions, or auto (the batch's when it has enough references, else the shop's).")
    eval_set_size: int = Field(200, ge=1, description="Most held-out items evaluated.")
    min_batch_eval: int = Field(50, ge=1, description="auto: fewest references the batch's "
                                "eval set needs to be used.")
    eval_batch_size: int = Field(64, ge=1, description="Prompts per generation batch.")
    max_new_tokens: int = Field(40, ge=1, description="Longest generated answer in evaluation.")
    slice_size: int = Field(48, ge=0, description="Examples per earlier-batch slice (forgetting); "
                            "0 disables slices.")
    max_slices: int = Field(3, ge=0, description="Most earlier batches sliced (the newest).")
    heldout_pair_share: float = Field(0.1, ge=0, lt=1, description="Share of the batch's pairs "
                                      "held out of DPO for preference accuracy.")
    max_heldout_pairs: int = Field(64, ge=0, description="Most held-out pairs.")
    primary_margin: float = Field(0.02, ge=0, description="Largest allowed drop of the primary "
                                  "metric against the release.")
    slice_margin: float = Field(0.05, ge=0, description="Largest allowed drop on a slice.")
    slice_margins: dict[str, float] = Field(default_factory=dict, description="Per-slice "
                                            "margins (JSON object: slice name -> margin).")
    min_primary: float | None = Field(None, ge=0, le=1, description="Absolute floor of the "
                                      "primary metric (unset: none).")
    min_win_rate: float | None = Field(None, ge=0, le=1, description="Floor of the pairwise win "
                                       "rate against the release (unset: reported only).")
    min_preference_accuracy: float | None = Field(None, ge=0, le=1, description="Floor of the "
                                                  "held-out preference accuracy (unset: reported).")
    judge_url: str | None = Field(None, description="OpenAI-compatible base URL of the judge "
                                  "for the pairwise win rate; unset: judged by exact match.")
    judge_model: str = Field("judge", description="Model name sent to the judge.")
    judge_api_key: SecretStr | None = Field(None, description="Bearer token for the judge.")
    judge_timeout_s: float = Field(30.0, gt=0, description="Per-request judge timeout.")
    judge_max_items: int = Field(64, ge=1, description="Most prompts sent to the judge.")
    cache_release_eval: bool = Field(True, description="Reuse the release's answers on an "
                                     "unchanged eval set (greedy decoding is deterministic).")
    migrate_on_start: bool = Field(True, description="Upgrade the database schema at start.")

    @field_validator("train_overrides", "slice_margins", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @model_validator(mode="after")
    def _check(self) -> "TrainerSettings":
        if self.max_sft_steps == 0 and self.max_dpo_steps == 0:
            raise ValueError("max_sft_steps and max_dpo_steps are both 0: nothing to train")
        if self.lock_wait_s is not None and self.lock_wait_s < 0:
            raise ValueError("lock_wait_s must be >= 0")
        self.margins()
        return self

    def base_dir(self, settings: Settings) -> Path:
        """The base model directory (for a line without a released version)."""
        return (self.base_model_dir or settings.data_dir / DEFAULT_BASE_MODEL).resolve()

    def margins(self) -> Margins:
        return Margins(primary=self.primary_margin, slice_default=self.slice_margin,
                       slices=dict(self.slice_margins), min_primary=self.min_primary,
                       min_win_rate=self.min_win_rate,
                       min_preference_accuracy=self.min_preference_accuracy)

    def judge_label(self) -> str:
        """How the pairwise win rate is judged: ``judge`` or ``exact_match``."""
        return "judge" if self.judge_url else "exact_match"


def load_trainer_settings(**overrides: Any) -> TrainerSettings:
    """Build the frozen trainer settings, turning validation errors into one-line ConfigErrors."""
    try:
        return TrainerSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]).upper() if err["loc"] else "*"
        raise ConfigError(f"FLYWHEEL_TRAINER_{field}", err["msg"]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError("FLYWHEEL_TRAINER_*", f"not a JSON object: {exc}") from None
