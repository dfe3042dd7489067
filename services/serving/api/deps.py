"""Dependency aliases over what the lifespan stored on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..completions import ServingRuntime


def get_runtime(request: Request) -> ServingRuntime:
    return request.app.state.runtime


def get_request_id(request: Request) -> str:
    return request.state.request_id


Runtime = Annotated[ServingRuntime, Depends(get_runtime)]
RequestId = Annotated[str, Depends(get_request_id)]
