"""Small response helpers shared by the routers and the exception handler."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON without the response-model round trip (bodies are built to the documented model)."""
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                    status_code=status, media_type="application/json", headers=headers)
