"""The preferences app factory: FastAPI plus, in the same process, the Faust consumer.

The lifespan opens the SQL engine, Redis, an HTTP client (model endpoint and webhooks) and
the Kafka producer, starts the webhook delivery loop and, unless ``consume`` is off, the Faust
app consuming ``preference.requests`` on the same event loop. Everything is stopped in
reverse order on shutdown. Tests inject a publisher, a second-answer source or clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flywheel.db.engine import make_engine
from flywheel.kafka.faust_app import make_faust_app
from flywheel.logging import get_logger
from flywheel.rediskit import make_async_redis

from .agents import register_agents
from .api import health, preferences, webhooks
from .delivery import WebhookDispatcher
from .errors import PreferencesError
from .events import KafkaPublisher, Publisher, ensure_topics
from .second_answer import SecondAnswerSource
from .service import SERVICE, PreferencesService
from .settings import PreferencesSettings

log = get_logger(__name__)

CONSUMED = ["preference.requests"]
PRODUCED = ["preference.answers", "deadletter"]


async def _start_consumer(settings: PreferencesSettings, service: PreferencesService,
                          publisher: Publisher) -> Any:
    await asyncio.to_thread(ensure_topics, settings, CONSUMED + PRODUCED)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    faust_app = make_faust_app(settings, SERVICE)
    register_agents(faust_app, settings, service, publisher)
    await faust_app.start()
    return faust_app


def create_app(settings: PreferencesSettings, *, publisher: Publisher | None = None,
               source: SecondAnswerSource | None = None, consume: bool | None = None,
               http: httpx.AsyncClient | None = None) -> FastAPI:
    """Build the preferences app.

    Args:
        settings: the frozen process settings.
        publisher: where events go (default: a Kafka producer started by the lifespan).
        source: the second-answer source (default: the configured OpenAI-compatible endpoint).
        consume: run the ``preference.requests`` consumer (default: the setting).
        http: the HTTP client for the model endpoint and webhooks.
    """
    config = settings.preferences
    run_consumer = config.consume if consume is None else consume

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database())
        client = make_async_redis(settings)
        http_client = http or httpx.AsyncClient()
        own_publisher = publisher is None
        pub: Publisher = publisher or KafkaPublisher(settings)
        if own_publisher:
            await pub.start()
        dispatcher = WebhookDispatcher(engine, client, http_client, config)
        service = PreferencesService(config, engine, client, pub,
                                     source or SecondAnswerSource(config, http_client), dispatcher)
        app.state.service = service
        app.state.consumer_ready = lambda: not run_consumer
        delivery = asyncio.create_task(dispatcher.run(), name="webhook-delivery")
        faust_app = None
        try:
            if run_consumer:
                faust_app = await _start_consumer(settings, service, pub)
                app.state.consumer_ready = lambda: True
            log.info("preferences_started", port=config.port, consume=run_consumer)
            yield
        finally:
            if faust_app is not None:
                await faust_app.stop()
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery
            if own_publisher:
                await pub.stop()
            if http is None:
                await http_client.aclose()
            await client.aclose()
            engine.dispose()
            log.info("preferences_stopped")

    app = FastAPI(title="Flywheel preferences", version="1", lifespan=lifespan)

    @app.exception_handler(PreferencesError)
    async def domain_error(_: Request, exc: PreferencesError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, exc.status)

    for router in (preferences.router, webhooks.router, health.router):
        app.include_router(router)
    return app
