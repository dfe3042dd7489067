"""The shipped pre-training corpus of the tiny demo model.

``shop_text.txt`` holds generic shop and support paragraphs (one per line) and
``chats.jsonl`` small-talk and product conversations in OpenAI message format (one per line).
Neither contains the shop world's canonical replies, so a model pre-trained on them writes
fluent shop-like text but does not already solve the demo task. Both files are produced by
``python -m flywheel.ml.corpus.generate``, deterministically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).resolve().parent
TEXT_FILE = CORPUS_DIR / "shop_text.txt"
CHATS_FILE = CORPUS_DIR / "chats.jsonl"


def load_texts() -> list[str]:
    """The plain-text paragraphs."""
    return [line for line in TEXT_FILE.read_text(encoding="utf-8").splitlines() if line]


def load_chats() -> list[dict[str, Any]]:
    """The conversations, each ``{"messages": [...], "tools": [...]?}``."""
    lines = CHATS_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line]
