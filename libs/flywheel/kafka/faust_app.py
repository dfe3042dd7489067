"""The Faust app factory and the helpers every stream processor shares.

Every Faust service builds its app here, so the app id, version, broker, store and
serialisation policy are set in one place:

* the service name is the app id (and with ``version`` forms the consumer group id and the
  changelog topic names: bumping the version resets offsets and tables, treat it as a migration);
* topics come only from the registry (``flywheel.events.topics``) and carry raw bytes: agents
  decode Protobuf themselves so that undecodable input can be dead-lettered with its offset;
* tables live in memory and are recovered from their changelog topics on start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from flywheel.events.topics import get_topic
from flywheel.settings import Settings


@dataclass(frozen=True)
class FaustOptions:
    """Knobs a service may change; defaults suit tests and the dev stack."""

    version: int = 1
    store: str = "memory://"
    web_port: int | None = None
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    commit_interval_s: float = 0.5
    table_standby_replicas: int = 0
    stream_buffer_maxsize: int = 4096


def make_faust_app(settings: Settings, service: str, options: FaustOptions | None = None,
                   **extra: Any) -> faust.App:
    """Build the Faust app for ``service`` from the process settings."""
    opts = options or FaustOptions()
    prefix = settings.topic_prefix
    datadir = settings.data_dir / "faust" / service
    datadir.parent.mkdir(parents=True, exist_ok=True)
    web = {"web_enabled": False} if opts.web_port is None else {
        "web_enabled": True, "web_port": opts.web_port, "web_bind": "127.0.0.1"}
    return faust.App(
        f"{prefix}-{service}",
        version=opts.version,
        broker=[f"kafka://{h.strip()}" for h in settings.kafka().split(",")],
        store=opts.store,
        topic_partitions=1,
        topic_replication_factor=1,
        topic_allow_declare=True,
        topic_disable_leader=True,
        broker_session_timeout=opts.session_timeout_s,
        broker_heartbeat_interval=opts.heartbeat_interval_s,
        broker_commit_interval=opts.commit_interval_s,
        producer_acks=-1,
        stream_buffer_maxsize=opts.stream_buffer_maxsize,
        table_standby_replicas=opts.table_standby_replicas,
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(datadir),
        autodiscover=False,
        **web,
        **extra,
    )


def registry_topic(app: faust.App, settings: Settings, short_name: str) -> faust.TopicT:
    """A Faust topic for a registered short name, with the registry's partition count."""
    spec = get_topic(short_name)
    return app.topic(
        spec.full_name(settings.topic_prefix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        internal=False,
    )
