"""The stack state file ``<data_dir>/stack/state.json``: what ``dev up`` started, and where.

Its shape is what flywheel.settings.Settings reads to find the broker and Redis::

    {"kafka": {"address": "127.0.0.1:29092", "pid": 123, ...},
     "redis": {"url": "redis://127.0.0.1:26379/0", "pid": 124, ...},
     "postgres": {"url": "postgresql+psycopg://postgres@127.0.0.1:25432/flywheel", "pid": 125, ...},
     "services": {"gateway": {"pid": 126, "url": "http://127.0.0.1:8000", "log": "..."}}}

Entries carry ``managed`` (started by ``dev up``, so ``dev down`` stops them) and ``started``
(the process start time that makes a PID an identity). Writes are atomic (rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / "stack" / STATE_FILE


def load_state(data_dir: Path) -> dict[str, Any]:
    """The recorded state, or an empty dict when there is none (or it is unreadable)."""
    path = state_path(data_dir)
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def save_state(data_dir: Path, state: dict[str, Any]) -> Path:
    """Write the state atomically; an empty state removes the file."""
    path = state_path(data_dir)
    if not any(state.get(k) for k in state):
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
