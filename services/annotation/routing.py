"""Who labels a task: people, the judge or the teacher (pure).

* The teacher takes CORRECT tasks when it is configured and the task's reasons name it
  (``teacher_tag``) or the task falls in the ``teacher_share`` hash sample.
* The judge takes RATE, PAIRWISE and CLASSIFY_FAILURE tasks whose reasons name it
  (``judge_tag``).
* Everything else goes to people. A teacher or judge that fails hands the task to people.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal

from .kinds import CORRECT
from .llm.rubrics import JUDGE_KINDS

Route = Literal["people", "judge", "teacher"]
_WORD = re.compile(r"[a-z_]+")


def _names(reasons: Sequence[str], tag: str) -> bool:
    return any(tag in _WORD.findall(reason.lower()) for reason in reasons)


def hash_share(task_id: str, salt: str = "") -> float:
    """A stable number in [0, 1) from a task id, so every replica routes a task the same way."""
    return int(hashlib.sha256(f"{salt}{task_id}".encode()).hexdigest()[:8], 16) / 0x1_0000_0000


def route_task(task_id: str, kind: str, reasons: Sequence[str], *, judge_enabled: bool,
               teacher_enabled: bool, teacher_share: float, judge_tag: str = "judge",
               teacher_tag: str = "teacher") -> Route:
    """The labeller of a new task."""
    if teacher_enabled and kind == CORRECT and (
            _names(reasons, teacher_tag) or hash_share(task_id, "teacher") < teacher_share):
        return "teacher"
    if judge_enabled and kind in JUDGE_KINDS and _names(reasons, judge_tag):
        return "judge"
    return "people"
