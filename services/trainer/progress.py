"""Training progress on the console (a rich progress bar) and in the logs.

The training loops call back once per optimizer step with a ``TrainProgress`` and log
``sft_step`` / ``dpo_step`` themselves every tenth of a phase. The reporter adds a
``train_progress`` line at least every ``log_every_s`` seconds (so a long phase is never
silent in the logs), draws a progress bar on stderr when asked, and gives the job a place to
stop between steps: ``check`` raises when the process is shutting down or the lock was lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flywheel.logging import get_logger

log = get_logger(__name__)


class ProgressReporter:
    """Callable passed as ``progress=`` to ``train_sft`` / ``train_dpo``."""

    def __init__(self, *, console: bool = False, log_every_s: float = 30.0,
                 check: Callable[[], None] | None = None, **bind: Any) -> None:
        self.console = console
        self.log_every_s = log_every_s
        self.check = check or (lambda: None)
        self.bind = bind
        self._bar: Any = None
        self._task: Any = None
        self._phase = ""
        self._last_log = 0.0

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        if p.phase != self._phase:
            self._start_phase(p.phase, p.total)
            self._last_log = now
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            log.info("train_progress", phase=p.phase, step=p.step, total=p.total,
                     loss=round(p.loss, 4), examples_per_s=round(p.examples_per_s, 1),
                     eta_s=round(p.eta_s, 1), **self.bind)
        if self._bar is not None:
            self._bar.update(self._task, completed=p.step, loss=p.loss, rate=p.examples_per_s)
        self.check()

    def _start_phase(self, phase: str, total: int) -> None:
        self._phase = phase
        if not self.console:
            return
        self.close()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
            TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.1f} ex/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True),
            transient=False)
        self._bar.start()
        self._task = self._bar.add_task(phase.upper(), total=total, loss=float("nan"), rate=0.0)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
