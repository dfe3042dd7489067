"""The annotation app factory: API, page and, in the same process, the Faust consumer.

The lifespan opens the SQL engine, Redis, an HTTP client (judge and teacher) and the Kafka
producer; seeds the first guideline and prompt versions; rebuilds the Redis queue from SQL;
and, unless ``consume`` is off, starts the Faust app consuming ``annotation.tasks`` (and
``traces.triaged`` for the judge) on the same event loop. Shutdown waits for background model
work, then stops everything in reverse order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from flywheel.db.engine import make_engine
from flywheel.kafka.faust_app import make_faust_app
from flywheel.logging import get_logger
from flywheel.rediskit import make_async_redis

from . import store, web
from .agents import register_agents
from .api import auth as auth_api
from .api import guidelines, health, prompts, review, stats, tasks
from .automation import Automation
from .errors import AnnotationError
from .events import KafkaPublisher, Publisher, ensure_topics
from .guidelines import default_documents
from .llm.annotators import Judge, Teacher
from .llm.client import ChatClient
from .llm.prompts import PromptLab, PromptRegistry
from .service import SERVICE, AnnotationService
from .settings import AnnotationSection, AnnotationSettings

log = get_logger(__name__)

STATIC = Path(__file__).parent / "static"
PRODUCED = ["annotation.labels", "deadletter"]


def _models(config: AnnotationSection, http: httpx.AsyncClient
            ) -> tuple[Judge | None, Teacher | None]:
    judge = teacher = None
    if config.judge_enabled:
        judge = Judge(ChatClient(config.judge_base_url, config.judge_model,
                                 config.judge_api_key.get_secret_value(), http,
                                 timeout_s=config.llm_timeout_s,
                                 concurrency=config.llm_concurrency))
    if config.teacher_enabled:
        teacher = Teacher(ChatClient(config.teacher_base_url, config.teacher_model,
                                     config.teacher_api_key.get_secret_value(), http,
                                     timeout_s=config.llm_timeout_s,
                                     concurrency=config.llm_concurrency))
    return judge, teacher


async def _start_consumer(settings: AnnotationSettings, service: AnnotationService,
                          publisher: Publisher, judge_triaged: bool) -> Any:
    consumed = ["annotation.tasks"] + (["traces.triaged"] if judge_triaged else [])
    await asyncio.to_thread(ensure_topics, settings, consumed + PRODUCED)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    faust_app = make_faust_app(settings, SERVICE)
    register_agents(faust_app, settings, service, publisher, judge_triaged=judge_triaged)
    await faust_app.start()
    return faust_app


def _prepare_database(engine: Any, registry: PromptRegistry) -> None:
    store.ensure_documents(engine, default_documents())
    registry.seed()


def create_app(settings: AnnotationSettings, *, publisher: Publisher | None = None,
               consume: bool | None = None, http: httpx.AsyncClient | None = None) -> FastAPI:
    """Build the annotation app.

    Args:
        settings: the frozen process settings.
        publisher: where labels go (default: a Kafka producer started by the lifespan).
        consume: run the consumer (default: the setting).
        http: the HTTP client for the judge and teacher endpoints.
    """
    config = settings.annotation
    run_consumer = config.consume if consume is None else consume

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database())
        client = make_async_redis(settings)
        http_client = http or httpx.AsyncClient()
        own_publisher = publisher is None
        pub: Publisher = publisher or KafkaPublisher(settings, SERVICE)
        if own_publisher:
            await pub.start()
        service = AnnotationService(config, engine, client, pub)
        registry = PromptRegistry(engine)
        judge, teacher = _models(config, http_client)
        service.automation = Automation(service, registry, judge, teacher)
        app.state.service = service
        app.state.prompt_lab = PromptLab(
            registry, judge, teacher, preview_max=config.prompt_preview_max,
            eval_min=config.prompt_eval_min, pass_rate=config.prompt_pass_rate,
            slice_min_rate=config.prompt_slice_min_rate)
        app.state.consumer_ready = lambda: not run_consumer
        await asyncio.to_thread(_prepare_database, engine, registry)
        rebuilt = await service.rebuild_queue()
        faust_app = None
        try:
            if run_consumer:
                faust_app = await _start_consumer(settings, service, pub,
                                                  judge is not None and config.judge_triaged)
                app.state.consumer_ready = lambda: True
            log.info("annotation_started", port=config.port, consume=run_consumer,
                     open_tasks=rebuilt, judge=judge is not None, teacher=teacher is not None)
            yield
        finally:
            if faust_app is not None:
                await faust_app.stop()
            await service.drain()
            if own_publisher:
                await pub.stop()
            if http is None:
                await http_client.aclose()
            await client.aclose()
            engine.dispose()
            log.info("annotation_stopped")

    app = FastAPI(title="Flywheel annotation", version="1", lifespan=lifespan)

    @app.exception_handler(AnnotationError)
    async def domain_error(_: Request, exc: AnnotationError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": {"code": "invalid_request",
                                       "message": f"{where}: {first.get('msg', 'invalid')}"}}, 422)

    for router in (auth_api.router, tasks.router, review.router, stats.router,
                   guidelines.router, prompts.router, health.router, web.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
