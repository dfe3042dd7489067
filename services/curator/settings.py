"""Curator settings (``FLYWHEEL_CURATOR_*``) and the curation config (YAML shipped here).

The settings hold what a deployment tunes: the model line, batch thresholds, replay share,
caps, eval share and which designs run. The YAML holds the rest of the curation policy:
per-source switches and qualities, labelling rules and each design's parameters.
:func:`load_curation` combines both into the pure-logic configs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flywheel.designs import DesignError, DesignsConfig, designs_config
from flywheel.errors import ConfigError
from flywheel.services.curator.logic.balance import CapPolicy
from flywheel.services.curator.logic.batching import BatchPolicy
from flywheel.services.curator.logic.examples import CurationRules, SourceRule

DEFAULT_CONFIG = Path(__file__).resolve().parent / "curation.yaml"
SERVICE = "curator"


class CuratorSettings(BaseSettings):
    """Settings of the curator service."""

    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_CURATOR_", env_file=".env",
                                      extra="ignore", frozen=True)

    model_line: str = Field("shop-assistant", description="Model line the batches train.")
    base_model: str = Field("tiny", description="Base model recorded for a new model line.")
    config_path: Path | None = Field(None, description="Curation YAML; unset: the shipped one.")
    min_sft: int = Field(64, ge=0, description="Cut when this many SFT examples are ready.")
    min_dpo: int = Field(32, ge=0, description="Cut when this many DPO examples are ready.")
    max_sft: int = Field(512, ge=1, description="Most new SFT examples in one batch.")
    max_dpo: int = Field(256, ge=1, description="Most new DPO examples in one batch.")
    max_age_s: float = Field(3600.0, ge=0, description="Cut when the oldest example is this old.")
    min_on_age: int = Field(1, ge=1, description="Fewest examples for an age-triggered cut.")
    min_quality: float = Field(0.0, ge=0, le=1, description="Drop examples below this quality.")
    min_mean_quality: float = Field(0.0, ge=0, le=1, description="No cut below this mean.")
    max_pool_age_s: float = Field(7 * 86400.0, ge=0, description="Drop examples pooled longer.")
    replay_share: float = Field(0.2, ge=0, lt=1, description="Share replayed from old batches.")
    eval_share: float = Field(0.1, ge=0, lt=1, description="Share of prompts held out for eval.")
    near_dup_threshold: float = Field(0.8, gt=0, le=1,
                                      description="Jaccard of 5-grams that counts as near-dup.")
    max_source_share: float = Field(0.5, gt=0, le=1, description="Cap per source (full batch).")
    max_intent_share: float = Field(0.5, gt=0, le=1, description="Cap per intent (full batch).")
    designs: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Enabled designs, comma-separated or a JSON list; unset: the YAML's.")
    check_interval_s: float = Field(1.0, gt=0, description="How often the cut is considered.")
    join_timeout_s: float = Field(300.0, gt=0, description="How long a label waits for its trace.")
    context_ttl_s: float = Field(7 * 86400.0, gt=0, description="How long traces are kept.")
    faust_version: int = Field(1, ge=1, description="Faust app version (bump = reset tables).")
    web_port: int | None = Field(None, description="Faust web port; unset: no web server.")
    migrate_on_start: bool = Field(True, description="Upgrade the database schema at start.")

    @field_validator("designs", mode="before")
    @classmethod
    def _split_designs(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value


@dataclass(frozen=True)
class Curation:
    """Everything the pure logic needs, built from the settings and the YAML."""

    rules: CurationRules
    designs: DesignsConfig
    caps: CapPolicy
    policy: BatchPolicy


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError("FLYWHEEL_CURATOR_CONFIG_PATH", f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("FLYWHEEL_CURATOR_CONFIG_PATH", f"{path}: expected a mapping")
    return data


def _rules(data: dict[str, Any], settings: CuratorSettings) -> CurationRules:
    sources = {name: SourceRule(bool(v.get("enabled", True)), float(v.get("quality", 0.8)))
               for name, v in (data.get("sources") or {}).items()}
    defaults = CurationRules().sources
    return CurationRules(sources={**defaults, **sources}, eval_share=settings.eval_share,
                         **(data.get("rules") or {}))


def load_curation(settings: CuratorSettings) -> Curation:
    """The curation config: the YAML, with the settings' thresholds and design switches.

    Raises:
        ConfigError: the YAML is unreadable or a value is invalid.
    """
    path = settings.config_path or DEFAULT_CONFIG
    data = _read_yaml(path)
    try:
        designs = designs_config(data.get("designs"))
        if settings.designs is not None:
            designs = designs.only(settings.designs)
        rules = _rules(data, settings)
        caps = CapPolicy(settings.max_source_share, settings.max_intent_share,
                         dict(data.get("source_caps") or {}))
    except (DesignError, ValueError, TypeError) as exc:
        raise ConfigError("FLYWHEEL_CURATOR_CONFIG_PATH", f"{path}: {exc}") from None
    try:
        policy = BatchPolicy(
            min_sft=settings.min_sft, min_dpo=settings.min_dpo, max_sft=settings.max_sft,
            max_dpo=settings.max_dpo, max_age_s=settings.max_age_s,
            min_on_age=settings.min_on_age, min_quality=settings.min_quality,
            min_mean_quality=settings.min_mean_quality, replay_share=settings.replay_share,
            max_pool_age_s=settings.max_pool_age_s)
    except ValueError as exc:
        raise ConfigError("FLYWHEEL_CURATOR_MIN_*/MAX_*", str(exc)) from None
    return Curation(rules, designs, caps, policy)


def load_curator_settings(**overrides: Any) -> CuratorSettings:
    """Build the frozen curator settings, turning validation errors into one-line ConfigErrors."""
    try:
        return CuratorSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        raise ConfigError(f"FLYWHEEL_CURATOR_{field.upper()}", err["msg"]) from None
