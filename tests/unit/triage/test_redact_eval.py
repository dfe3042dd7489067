"""Precision and recall of PII redaction on the labelled set tests/data/pii_cases.jsonl.

An expected entity counts as found when spans of its type cover all of its characters; a
detected span is correct when it overlaps an expected entity of its type. Targets: recall at
least 0.98 and precision at least 0.95, over at least 200 cases with near-misses.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from flywheel.services.triage.logic.redact import BUILTIN_KINDS, Redactor

CASES = Path(__file__).resolve().parents[2] / "data" / "pii_cases.jsonl"


def _load() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line]


def evaluate(redactor: Redactor, rows: list[dict]) -> dict[str, Counter]:
    """Per kind: tp (found entities), fn (missed), fp (wrong spans), pred (all spans)."""
    stats: dict[str, Counter] = {}
    for row in rows:
        text = row["text"]
        gold = []
        for e in row["entities"]:
            start = text.index(e["value"])
            gold.append((start, start + len(e["value"]), e["type"]))
        pred = [(s.start, s.end, s.kind) for s in redactor.find(text)]
        for start, end, kind in gold:
            c = stats.setdefault(kind, Counter())
            covered = all(any(p[2] == kind and p[0] <= i < p[1] for p in pred)
                          for i in range(start, end) if not text[i].isspace())
            c["tp" if covered else "fn"] += 1
        for start, end, kind in pred:
            c = stats.setdefault(kind, Counter())
            c["pred"] += 1
            if not any(g[2] == kind and start < g[1] and g[0] < end for g in gold):
                c["fp"] += 1
    return stats


def test_dataset_shape() -> None:
    rows = _load()
    assert len(rows) >= 200
    assert len({r["id"] for r in rows}) == len(rows)
    near = [r for r in rows if "near_miss" in r["tags"]]
    assert len(near) >= 60 and all(not r["entities"] for r in near)
    kinds = {e["type"] for r in rows for e in r["entities"]}
    assert kinds == set(BUILTIN_KINDS)


def test_precision_and_recall_meet_targets() -> None:
    stats = evaluate(Redactor(), _load())
    total = sum(stats.values(), Counter())
    recall = total["tp"] / (total["tp"] + total["fn"])
    precision = (total["pred"] - total["fp"]) / total["pred"]
    report = {k: (c["tp"], c["fn"], c["fp"]) for k, c in sorted(stats.items())}
    print(f"\nPII redaction: recall {recall:.3f}, precision {precision:.3f}; per kind (tp, fn, fp): "
          f"{report}")
    assert recall >= 0.98, report
    assert precision >= 0.95, report


@pytest.mark.parametrize("kind", BUILTIN_KINDS)
def test_every_kind_is_mostly_found(kind: str) -> None:
    c = evaluate(Redactor(), _load())[kind]
    assert c["tp"] / (c["tp"] + c["fn"]) >= 0.9
