"""Agreement among annotators, per task kind and per annotator (pure).

Per kind: Cohen's kappa when exactly two annotators labelled every multiply-labelled task,
Krippendorff's alpha otherwise (ordinal for ratings, nominal for the rest), plus the share of
tasks where everyone agreed. Per annotator and kind: kappa of the annotator's values against
their co-annotators' values on shared tasks, and how often the annotator matched the final
label (consensus or reviewer). Judge and teacher labels are not part of these figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from flywheel.agreement import agreement, cohen_kappa

from .kinds import LabelRecord, agreement_value, metric_for


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def by_kind(labels: Sequence[LabelRecord]) -> list[dict[str, Any]]:
    """One row per kind: statistic, value, units (tasks with 2+ labels), raters, percent."""
    units: dict[str, dict[str, dict[str, Hashable]]] = defaultdict(lambda: defaultdict(dict))
    for label in labels:
        if label.labeller_type == "human" and label.task_id:
            units[label.kind][label.task_id][label.labeller_id] = agreement_value(
                label.kind, label.value)
    rows = []
    for kind in sorted(units):
        result = agreement(list(units[kind].values()), metric_for(kind))
        rows.append({"kind": kind, "statistic": result.statistic, "value": _round(result.value),
                     "units": result.units, "raters": result.raters,
                     "percent_agreement": _round(result.percent),
                     "metric": metric_for(kind)})
    return rows


def by_annotator(labels: Sequence[LabelRecord]) -> list[dict[str, Any]]:
    """One row per (annotator, kind): pairs with co-annotators, kappa, percent, vs final."""
    tasks: dict[str, list[LabelRecord]] = defaultdict(list)
    for label in labels:
        if label.task_id:
            tasks[label.task_id].append(label)
    mine: dict[tuple[str, str], list[Hashable]] = defaultdict(list)
    theirs: dict[tuple[str, str], list[Hashable]] = defaultdict(list)
    vs_final: dict[tuple[str, str], list[bool]] = defaultdict(list)
    labelled: dict[tuple[str, str], int] = defaultdict(int)
    for task_labels in tasks.values():
        humans = [lab for lab in task_labels if lab.labeller_type == "human"]
        final = next((lab for lab in task_labels if lab.is_final), None)
        for lab in humans:
            key = (lab.labeller_id, lab.kind)
            labelled[key] += 1
            value = agreement_value(lab.kind, lab.value)
            for other in humans:
                if other.labeller_id != lab.labeller_id:
                    mine[key].append(value)
                    theirs[key].append(agreement_value(other.kind, other.value))
            # A lone annotator's own label is the final one: no information there.
            if final is not None and (final.labeller_type == "reviewer" or len(humans) > 1):
                vs_final[key].append(value == agreement_value(final.kind, final.value))
    rows = []
    for key in sorted(labelled):
        annotator, kind = key
        pairs = len(mine[key])
        weights = "quadratic" if metric_for(kind) == "ordinal" else None
        kappa = cohen_kappa(mine[key], theirs[key], weights=weights) if pairs else None
        same = sum(a == b for a, b in zip(mine[key], theirs[key]))
        finals = vs_final[key]
        rows.append({"annotator_id": annotator, "kind": kind, "labels": labelled[key],
                     "pairs": pairs, "kappa": _round(kappa),
                     "percent_agreement": _round(same / pairs) if pairs else None,
                     "matches_final": _round(sum(finals) / len(finals)) if finals else None})
    return rows
