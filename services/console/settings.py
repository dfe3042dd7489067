"""Settings of the console: the shared settings plus a ``FLYWHEEL_CONSOLE_`` section.

Service addresses come from the dev stack's state file (``flywheel dev up``); in other
deployments list them with ``FLYWHEEL_CONSOLE_SERVICES='gateway=http://gw:8000,...'``.
Workers without an HTTP port (triage's ``FLYWHEEL_TRIAGE_METRICS_PORT``) add their
Prometheus endpoints with ``FLYWHEEL_CONSOLE_METRICS_URLS='triage=http://triage:9101/metrics'``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flywheel.settings import Settings

SERVICE = "console"


def _parse_mapping(value: object) -> dict[str, str]:
    """``"a=url,b=url"`` (or a dict) as a dict; empty parts are ignored."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    out: dict[str, str] = {}
    for part in str(value).split(","):
        if not part.strip():
            continue
        name, sep, url = part.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"expected name=url[,name=url], got {part.strip()!r}")
        out[name.strip()] = url.strip().rstrip("/")
    return out


class ConsoleSection(BaseSettings):
    """Options read from ``FLYWHEEL_CONSOLE_*``."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_CONSOLE_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(8004, ge=0, le=65535, description="HTTP port.")
    services: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Service base URLs, name=url comma-separated; they override the stack file.")
    metrics_urls: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Extra Prometheus endpoints, name=url comma-separated (workers).")
    sample_interval_s: float = Field(
        5.0, gt=0, description="How often topic end offsets are sampled for throughput.")
    history: int = Field(120, ge=2, le=10_000, description="Throughput samples kept in memory.")
    min_rate_window_s: float = Field(
        1.0, gt=0, description="Two samples closer than this give no rate.")
    snapshot_ttl_s: float = Field(
        2.0, ge=0, description="Page and /api/snapshot reuse a snapshot younger than this.")
    http_timeout_s: float = Field(2.0, gt=0, description="Timeout of /healthz and /metrics calls.")
    kafka_timeout_s: float = Field(8.0, gt=0, description="Timeout of broker requests.")
    deadletter_scan_max: int = Field(
        50_000, ge=1, description="Most dead letters read per partition (newest first).")
    health_scan_max: int = Field(
        2_000, ge=1, description="Most pipeline.health events read per partition (newest).")
    health_stale_s: float = Field(
        60.0, gt=0, description="A worker whose last pipeline.health is older counts as down.")
    task_metric: str = Field(
        "exact_match", description="Model metric charted per released version over time.")
    refresh_s: int = Field(10, ge=0, description="Page auto-refresh period; 0: off.")

    @field_validator("services", "metrics_urls", mode="before")
    @classmethod
    def _mapping(cls, value: object) -> dict[str, str]:
        return _parse_mapping(value)


class ConsoleSettings(Settings):
    """Everything the console process reads: shared settings plus ``console``."""

    console: ConsoleSection = Field(default_factory=ConsoleSection)
