"""Gateway settings: the ``FLYWHEEL_GATEWAY_`` section, next to the shared :class:`Settings`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY_S = 24 * 3600


class GatewaySettings(BaseSettings):
    """Limits, windows and deadlines of the ingest gateway (env prefix ``FLYWHEEL_GATEWAY_``)."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_GATEWAY_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port.")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    keep_alive_s: int = Field(
        75, ge=1, le=3600,
        description="Close an idle client connection after this long. Longer than the usual load "
                    "balancer idle timeout (60 s), so the gateway never closes a connection the "
                    "balancer is about to reuse; clients that keep connections open pay no new "
                    "handshakes.")
    max_batch_count: int = Field(1000, ge=1, le=100_000,
                                 description="Most traces or feedback events in one request.")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024,
                                description="Largest request body, after gzip decoding.")
    max_event_bytes: int = Field(900_000, ge=1024,
                                 description="Largest single encoded event (broker message limit).")
    idempotency_window_s: int = Field(DAY_S, ge=1,
                                      description="How long a trace or feedback id is remembered.")
    rate_per_s: float = Field(500.0, gt=0, description="Sustained requests per second per API key.")
    rate_burst: int = Field(1000, ge=1, description="Requests a key may send at once (bucket size).")
    produce_deadline_s: float = Field(5.0, gt=0, le=120,
                                      description="Wait this long for broker acks, then answer 503.")
    retry_after_s: int = Field(2, ge=1, description="Retry-After sent with 503 answers.")
    atomic_batches: bool = Field(
        True, description="Write multi-event requests in Kafka transactions (read_committed "
                          "consumers never see part of a failed batch).")
    transaction_lanes: int = Field(2, ge=1, le=16,
                                   description="Transactional producers per worker (parallel commits).")
    transaction_cooldown_ms: float = Field(
        5.0, ge=0, le=1000, description="Rest of a transactional producer after a commit, while the "
                                        "broker writes the commit markers (see the README).")
    auth_cache_s: float = Field(30.0, ge=0, description="Cache key lookups this long (revocation delay).")
    linger_ms: int = Field(5, ge=0, le=1000, description="Producer linger for single-event requests.")
    otlp_hold_s: float = Field(
        10.0, gt=0, description="Keep OTLP spans of a trace whose root span has not arrived this "
                                "long before producing what arrived.")


def load_gateway_settings(**overrides: object) -> GatewaySettings:
    """The gateway section from the environment, with ``overrides`` applied.

    Raises:
        ConfigError: a value is invalid (the message names its environment variable).
    """
    from flywheel.settings import load_settings

    return load_settings(GatewaySettings, **overrides)  # type: ignore[arg-type]
