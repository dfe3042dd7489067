"""Keep one service running: restart it when it dies, as a container restart policy would.

``flywheel dev up`` (and ``flywheel demo``) start each service as::

    python -m flywheel.stack.supervise flywheel.services.trainer.main

The supervisor runs the module's ``main()`` in a child process and waits. When the child
exits with an error or is killed (a lost broker connection the service does not survive, an
out-of-memory kill, a SIGKILL), it is started again after a back-off (1 s, doubling to 30 s,
back to 1 s once a run lasted a minute). Services are written to be restarted: they resume
from committed offsets, changelogs and the registry.

* SIGTERM or SIGINT to the supervisor goes to the child, and the supervisor exits with it.
* A child that exits cleanly (code 0) is not restarted.
* A first run that fails within ``STARTUP_S`` is a start-up error (bad settings, a missing
  model): the supervisor exits with its code instead of retrying, so ``flywheel dev up``
  reports it at once.
* The child gets SIGTERM when the supervisor dies, so killing the supervisor never leaves an
  orphan.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from flywheel.stack.process import _die_with_parent

STARTUP_S = 8.0
MIN_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_RUN_S = 60.0


def _log(event: str, **fields: object) -> None:
    """One JSON line in the service's log, like the services' own structured logs."""
    print(json.dumps({"event": event, "logger": "flywheel.stack.supervise", "level": "warning",
                      "timestamp": datetime.now(timezone.utc).isoformat(), **fields}),
          flush=True)


def next_backoff(previous: float, run_s: float, minimum: float = MIN_BACKOFF_S) -> float:
    """The wait before the next restart: doubling, capped, reset after a healthy run."""
    if run_s >= HEALTHY_RUN_S:
        return minimum
    return min(MAX_BACKOFF_S, max(minimum, previous * 2))


def supervise(module: str, startup_s: float = STARTUP_S,
              min_backoff_s: float = MIN_BACKOFF_S) -> int:
    """Run ``module.main()`` until it exits cleanly or we are told to stop; the exit code."""
    cmd = [sys.executable, "-c", f"from {module} import main; main()"]
    state: dict[str, object] = {"stopping": False, "child": None}

    def _forward(signum: int, _frame: object) -> None:
        state["stopping"] = True
        child = state["child"]
        if isinstance(child, subprocess.Popen) and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    backoff, first = min_backoff_s / 2, True
    while True:
        started = time.monotonic()
        child = subprocess.Popen(cmd, preexec_fn=_die_with_parent)
        state["child"] = child
        code = child.wait()
        run_s = time.monotonic() - started
        if state["stopping"]:
            return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
        if code == 0:
            return 0
        if first and run_s < startup_s:
            _log("service_failed_at_start", module=module, exit_code=code, run_s=round(run_s, 1))
            return code if code > 0 else 1
        first = False
        backoff = next_backoff(backoff, run_s, min_backoff_s)
        _log("service_restarting", module=module, exit_code=code, run_s=round(run_s, 1),
             backoff_s=backoff)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline:
            if state["stopping"]:
                return 0
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m flywheel.stack.supervise <module with main()>", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(supervise(args[0]))


if __name__ == "__main__":
    main()
