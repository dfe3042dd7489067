"""``GET /v1/models``: the line name (routed) and every live version (pinned)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .deps import Runtime

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models")
def list_models(runtime: Runtime) -> dict[str, Any]:
    routing = runtime.manager.routing
    line = runtime.manager.line
    data = []
    if routing.stable is not None:
        data.append({"id": line, "object": "model", "created": int(routing.stable.loaded_at),
                     "owned_by": "flywheel"})
    for role, handle in (("stable", routing.stable), ("canary", routing.canary)):
        if handle is not None:
            data.append({"id": handle.model_id, "object": "model", "created": int(handle.loaded_at),
                         "owned_by": "flywheel", "role": role})
    return {"object": "list", "data": data}
