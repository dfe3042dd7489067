"""Schemathesis drives the gateway from its own OpenAPI schema (real broker, Redis, SQLite):
no generated input, valid or not, may produce a server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from flywheel.services.gateway.app import create_app
from flywheel.settings import Settings

from .conftest import LiveGateway

# The document only: building it needs no broker (the lifespan does not run here).
schema = schemathesis.openapi.from_dict(
    create_app(Settings(kafka_bootstrap="127.0.0.1:9", redis_url="redis://127.0.0.1:9")).openapi())
# Schema-valid and schema-violating inputs both; the budget keeps the test near a minute.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schemathesis.serializer("application/x-protobuf")
def _raw_bytes(ctx, value):  # noqa: ANN001, ANN202 - binary bodies go out as generated
    if isinstance(value, bytes):
        return value
    return str(value).encode()


@pytest.fixture
def live(start_gateway) -> LiveGateway:  # noqa: ANN001
    return start_gateway(max_body_bytes=256 * 1024)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_for_any_generated_input(case, live) -> None:  # noqa: ANN001
    case.call_and_validate(base_url=live.base_url, headers={"x-api-key": live.key},
                           checks=[not_a_server_error], timeout=30)
