"""The triage agents: thin shells that hand batches and ticks to the engine."""

from __future__ import annotations

import faust

from flywheel.services.triage.engine import TriageEngine
from flywheel.services.triage.settings import TriageSettings


def register_agents(app: faust.App, source: faust.TopicT, table: faust.Table,
                    engine: TriageEngine, tset: TriageSettings) -> None:
    """Register the ingest agent, the decision and health timers, and the rebalance hooks."""

    @app.agent(source, name="triage-ingest")
    async def ingest(stream):  # noqa: ANN001
        async for events in stream.take_events(tset.batch_max, within=tset.batch_within_s):
            await engine.on_batch(events)

    @app.timer(interval=tset.tick_interval_s, name="triage-decide")
    async def decide_due() -> None:
        await engine.on_tick()

    @app.timer(interval=tset.health_interval_s, name="triage-health")
    async def health() -> None:
        if engine.ready:
            await engine.on_health()

    @table.on_recover
    async def recovered() -> None:
        await engine.on_recovered()

    @app.on_partitions_revoked.connect
    async def revoked(sender, revoked, **kwargs) -> None:  # noqa: ANN001
        await engine.on_revoked()
