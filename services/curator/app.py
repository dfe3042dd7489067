"""Build the curator's Faust app: tables, agents, the batch timer and the start-up task."""

from __future__ import annotations

from typing import Any

import faust

from flywheel.db.engine import make_engine
from flywheel.kafka.faust_app import FaustOptions, make_faust_app, registry_topic
from flywheel.services.curator.agents import register_agents
from flywheel.services.curator.logic.writer import BatchStore
from flywheel.services.curator.service import Curator, Tables
from flywheel.services.curator.settings import SERVICE, CuratorSettings, load_curation
from flywheel.settings import Settings

OUTPUTS = ("examples.sft", "examples.dpo", "examples.eval", "datasets.batches", "deadletter")
TABLES = ("pool", "traces", "tasks", "pending", "rated", "facts", "counters")


def _table(app: faust.App, name: str) -> Any:
    # use_partitioner: the timer writes outside any stream event, and every table is read by
    # agents of several topics; one changelog partition keeps all state on the one worker
    # that cuts batches for the model line.
    # Keys are str and values JSON-able dicts/lists: Faust picks the json codec for both.
    return app.Table(f"{SERVICE}-{name}", default=None, partitions=1, use_partitioner=True,
                     key_type=str, value_type=None)


def _ready(app: faust.App) -> bool:
    recovery = getattr(app.tables, "recovery", None)
    done = recovery is None or recovery.completed.is_set()
    return done and not app.rebalancing


def build_app(settings: Settings, curator_settings: CuratorSettings) -> tuple[faust.App, Curator]:
    """The Faust app with its agents, tables and timer, and the Curator behind them."""
    # Faust creates its data dir but not the parents.
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = make_faust_app(settings, SERVICE, FaustOptions(version=curator_settings.faust_version,
                                                         web_port=curator_settings.web_port))
    tables = Tables(**{name: _table(app, name) for name in TABLES})
    topics = {short: registry_topic(app, settings, short) for short in OUTPUTS}

    async def send(short: str, key: str, value: bytes) -> None:
        future = await topics[short].send(key=key.encode(), value=value)
        await future  # the broker acknowledged it (acks=all)

    store = BatchStore(make_engine(settings.database()), settings.data_dir / "artifacts")
    curator = Curator(curator_settings, load_curation(curator_settings), store, tables, send,
                      data_dir=settings.data_dir, ready=lambda: _ready(app))
    register_agents(app, settings, curator, send)

    @app.task
    async def start_curator() -> None:
        await curator.startup()

    @app.timer(curator_settings.check_interval_s, name=f"{SERVICE}.tick")
    async def tick() -> None:
        await curator.tick()

    return app, curator
