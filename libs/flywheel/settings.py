"""Process settings: one frozen object, built once in each entry point and passed down.

Every field is read from a ``FLYWHEEL_``-prefixed environment variable (or ``.env``).
When ``FLYWHEEL_KAFKA_BOOTSTRAP`` / ``FLYWHEEL_REDIS_URL`` / ``FLYWHEEL_DATABASE_URL`` are unset,
the addresses of the local development stack (``flywheel dev up``) are used, read from
``<data_dir>/stack/state.json``; the database falls back to SQLite under the data dir.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.errors import ConfigError

_ENV_PREFIX = "FLYWHEEL_"
_HOSTPORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


class Settings(BaseSettings):
    """Settings shared by every Flywheel process."""

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["dev", "test", "prod"] = Field("dev", description="Deployment environment.")
    data_dir: Path = Field(Path("var"), description="Root of local state: stack, artifacts, logs.")
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers, host:port[,host:port]. Unset: the dev stack."
    )
    topic_prefix: str = Field("flywheel", description="First segment of every topic name.")
    redis_url: str | None = Field(None, description="redis:// URL. Unset: the dev stack's Redis.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (sqlite:/// or postgresql+psycopg://). Unset: SQLite."
    )
    log_level: str = Field("INFO", description="Log level for the structured JSON logs.")
    log_format: Literal["json", "console"] = Field("json", description="Log renderer.")
    service_name: str = Field("flywheel", description="Name stamped on logs and events.")
    secret_key: str = Field("dev-insecure-secret", description="Signing secret (HMAC, sessions).")
    startup_timeout_s: float = Field(30.0, gt=0, description="Deadline for dependencies at start.")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for part in value.split(","):
            if not _HOSTPORT.match(part.strip()):
                raise ValueError(f"expected host:port[,host:port], got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, value: str | None) -> str | None:
        if not value:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
            raise ValueError(f"expected redis://host:port/db, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = urlparse(value).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError(f"expected sqlite:/// or postgresql+psycopg:// URL, got {value!r}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _check_secret(cls, value: str, info) -> str:  # noqa: ANN001
        if info.data.get("env") == "prod" and value.startswith("dev-"):
            raise ValueError("a placeholder secret is not allowed when FLYWHEEL_ENV=prod")
        return value

    # -- resolved addresses --------------------------------------------------------------------

    @property
    def stack_dir(self) -> Path:
        return self.data_dir / "stack"

    def _stack_state(self) -> dict:
        path = self.stack_dir / "state.json"
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def kafka(self) -> str:
        """The bootstrap servers to use, or raise ConfigError naming the setting."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        addr = self._stack_state().get("kafka", {}).get("address")
        if addr:
            return addr
        raise ConfigError(
            "FLYWHEEL_KAFKA_BOOTSTRAP", "not set and no dev stack is running (run `flywheel dev up`)"
        )

    def redis(self) -> str:
        """The Redis URL to use, or raise ConfigError naming the setting."""
        if self.redis_url:
            return self.redis_url
        url = self._stack_state().get("redis", {}).get("url")
        if url:
            return url
        raise ConfigError(
            "FLYWHEEL_REDIS_URL", "not set and no dev stack is running (run `flywheel dev up`)"
        )

    def database(self) -> str:
        """The database URL: the setting, else the dev stack's PostgreSQL, else SQLite."""
        if self.database_url:
            return self.database_url
        url = self._stack_state().get("postgres", {}).get("url")
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'flywheel.db').resolve()}"

    def topic(self, short_name: str) -> str:
        """Full broker name of a registered topic (see flywheel.events.topics)."""
        from flywheel.events.topics import full_topic_name

        return full_topic_name(short_name, self.topic_prefix)


def _first_error_line(exc: ValidationError, model: type[BaseSettings]) -> str:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "?"
    prefix = model.model_config.get("env_prefix", _ENV_PREFIX)
    return f"{prefix}{field.upper()}: {err['msg']}"


def load_settings(cls: type[Settings] = Settings, **overrides) -> Settings:
    """Build the frozen settings, turning validation errors into one-line ConfigErrors."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        line = _first_error_line(exc, cls)
        setting, _, problem = line.partition(": ")
        raise ConfigError(setting, problem) from None


def check_tcp(setting: str, address: str, timeout_s: float = 3.0) -> None:
    """Fail fast with one line naming ``setting`` when ``host:port`` does not accept connections."""
    first = address.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return
    except (OSError, ValueError) as exc:
        raise ConfigError(setting, f"cannot connect to {first} ({exc})") from None
