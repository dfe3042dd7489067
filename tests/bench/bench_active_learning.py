"""Active learning measured: the same world and label budget, uncertainty vs random selection.

Runs ``flywheel demo --policy uncertainty`` and ``--policy random`` one after the other, each
in a fresh data directory that starts from the same tiny base model (built once here, or
copied from ``FLYWHEEL_BENCH_TINY_BASE``), with the same seed, minutes and label budget, and
prints one table: every trained version with the annotator labels given by the time it was
trained and its held-out exact match (the trainer's gate, on the shop's 200 held-out
questions), then the best and the final released accuracy per policy.

Settings: ``FLYWHEEL_BENCH_AL_MINUTES`` (default 12), ``FLYWHEEL_BENCH_AL_BUDGET`` (labels,
default 200), ``FLYWHEEL_BENCH_AL_SEED`` (default 0). Each run needs the machine to itself;
the two together take about twice the minutes plus start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MINUTES = float(os.environ.get("FLYWHEEL_BENCH_AL_MINUTES", "12"))
BUDGET = int(os.environ.get("FLYWHEEL_BENCH_AL_BUDGET", "200"))
SEED = int(os.environ.get("FLYWHEEL_BENCH_AL_SEED", "0"))
POLICIES = ("uncertainty", "random")


def _base(root: Path) -> Path:
    given = os.environ.get("FLYWHEEL_BENCH_TINY_BASE")
    if given:
        return Path(given)
    from flywheel.ml.tiny import init_tiny

    print("building the tiny base once for both runs", flush=True)
    return init_tiny(root / "tiny-base", seed=SEED)


def run_policy(policy: str, base: Path, root: Path) -> dict:
    """One demo run; returns its report.json."""
    data = root / policy
    shutil.copytree(base, data / "models" / "tiny-base")
    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(data)}
    cmd = [sys.executable, "-m", "flywheel.cli.main", "demo", "--minutes", f"{MINUTES:g}",
           "--seed", str(SEED), "--policy", policy, "--label-budget", str(BUDGET),
           "--no-stop-at-target"]
    log = root / f"{policy}.log"
    print(f"running {' '.join(cmd[2:])} (log {log})", flush=True)
    with log.open("w") as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    report_path = data / "demo" / "report.json"
    if code != 0 or not report_path.is_file():
        raise RuntimeError(f"the {policy} run failed (exit {code}); see {log}")
    return json.loads(report_path.read_text())


def rows(policy: str, report: dict) -> list[tuple]:
    """(policy, version, status, labels, accuracy) per trained version."""
    out = [(policy, 0, "base", 0, report.get("base_accuracy"))]
    for v in report["versions"]:
        if v.get("accuracy") is not None:
            out.append((policy, v["version"], v["status"], v.get("labels"), v["accuracy"]))
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flywheel-al-") as tmp:
        root = Path(tmp)
        base = _base(root)
        reports = {p: run_policy(p, base, root) for p in POLICIES}
    print(f"\nheld-out exact match vs annotator labels ({MINUTES:g} min per run, label budget "
          f"{BUDGET}, seed {SEED})")
    print(f"{'policy':<12} {'version':>7} {'status':<12} {'labels':>6} {'accuracy':>8}")
    for policy, report in reports.items():
        for p, version, status, labels, acc in rows(policy, report):
            print(f"{p:<12} {version:>7} {status:<12} {labels if labels is not None else '-':>6} "
                  f"{_fmt(acc):>8}")
    print(f"\n{'policy':<12} {'labels used':>11} {'best trained':>12} {'final released':>14} "
          f"{'releases':>8}")
    for policy, report in reports.items():
        trained = [a for *_, a in rows(policy, report)[1:] if a is not None]
        print(f"{policy:<12} {report['labels_used']:>11} {_fmt(max(trained, default=None)):>12} "
              f"{_fmt(report.get('final_accuracy')):>14} {len(report['released']):>8}")


if __name__ == "__main__":
    main()
