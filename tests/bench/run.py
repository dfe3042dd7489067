"""Run every benchmark: ``make bench`` (or ``python -m tests.bench.run [NAME ...]``).

Each ``tests/bench/bench_<name>.py`` exposes ``main()``, which starts what it needs (a real
broker, Redis, servers) on free loopback ports, prints a table of numbers and stops them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def _bench_modules(selected: list[str]) -> list[str]:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected or n in selected]
    return names


def main(argv: list[str] | None = None) -> int:
    selected = list(sys.argv[1:] if argv is None else argv)
    failed = []
    for name in _bench_modules(selected):
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"tests.bench.{name}").main()
        except Exception:  # a failing benchmark must not hide the others' numbers
            traceback.print_exc()
            failed.append(name)
        print(f"({name}: {time.perf_counter() - started:.1f} s)", flush=True)
    if failed:
        print(f"\nbenchmarks that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
