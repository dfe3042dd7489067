"""Measure a trained version against the current release, on the same prompts.

The model being evaluated is the training ``PeftModel``: with its adapter it is the candidate,
with the adapter switched off it is exactly the release it was trained from, so no second
copy is loaded. Measured for both:

* ``eval.exact_match``: the held-out set (the batch's eval set or the shop world's held-out
  questions), per intent as ``eval.exact_match.<intent>``;
* ``forgetting.batch_<v>``: exact match on a sample of each earlier batch's SFT rows;

and for the candidate:

* ``preference.accuracy``: held-out pairs whose implicit reward (log-probability gain over
  the release) prefers the chosen answer;
* ``win_rate.<judge>``: pairwise against the release's answers on the held-out prompts, by
  the configured judge (``win_rate.judge``) or, without one, by exact match
  (``win_rate.exact_match``: right where the release was wrong wins, ties count half).

Release numbers are stored as ``release.<name>``. The release's answers are cached on disk by
the release directory and the prompts, because greedy decoding gives the same answers again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.logging import get_logger
from flywheel.services.trainer.data import EvalItem
from flywheel.services.trainer.judge import Judge, judged_outcomes
from flywheel.services.trainer.logic.gate import Scores
from flywheel.services.trainer.logic.planning import exact_match_win_rate

log = get_logger(__name__)
PRIMARY = "eval.exact_match"


def normalize(text: str) -> str:
    """Whitespace collapsed and ends stripped (the exact-match comparison)."""
    return " ".join(text.split())


def generate_answers(model: Any, tokenizer: Any, items: Sequence[EvalItem], *,
                     batch_size: int = 64, max_new_tokens: int = 40) -> list[str]:
    """Greedy answers to each item's prompt, in order (items grouped by their tools)."""
    from flywheel.ml.evaluate import generate

    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[json.dumps(item.tools, sort_keys=True)].append(i)
    answers: list[str] = [""] * len(items)
    for key, idx in groups.items():
        tools = json.loads(key)
        out = generate(model, tokenizer, [items[i].prompt for i in idx], tools=tools,
                       max_new_tokens=max_new_tokens, batch_size=batch_size)
        for i, text in zip(idx, out):
            answers[i] = text
    return answers


def score(items: Sequence[EvalItem], answers: Sequence[str]) -> list[bool]:
    return [normalize(a) == normalize(i.reference) for i, a in zip(items, answers)]


def _mean(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def items_key(items: Sequence[EvalItem]) -> str:
    """A hash of the prompts and references, to key cached answers."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.prompt, item.tools, item.reference], sort_keys=True,
                                 ensure_ascii=False).encode())
    return digest.hexdigest()


def model_key(model_dir: Path) -> str:
    """Identity of a model directory's weights: path plus size and mtime of each weight file."""
    parts = [str(Path(model_dir).resolve())]
    for name in sorted(os.listdir(model_dir)) if Path(model_dir).is_dir() else []:
        if name.endswith((".safetensors", ".bin", ".json")):
            stat = (Path(model_dir) / name).stat()
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class AnswerCache:
    """Release answers on disk, one JSON file per (model, prompts, decoding) key."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path | None:
        return self.directory / f"{key}.json" if self.directory else None

    def get(self, key: str) -> list[str] | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            return list(json.loads(path.read_text())["answers"])
        except (OSError, ValueError, KeyError):
            return None

    def put(self, key: str, answers: list[str]) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"answers": answers}))
        os.replace(tmp, path)


@dataclass
class EvalSets:
    """What is evaluated: the held-out items, earlier-batch slices and held-out pairs."""

    heldout: list[EvalItem]
    heldout_source: str
    slices: dict[str, list[EvalItem]] = field(default_factory=dict)
    pairs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EvalResult:
    """Numbers for both models, the gate's inputs and the time it took."""

    metrics: dict[str, float]
    candidate: Scores
    release: Scores
    seconds: float = 0.0


@dataclass
class Evaluator:
    """Runs the evaluation of one job."""

    tokenizer: Any
    batch_size: int = 64
    max_new_tokens: int = 40
    judge: Judge | None = None
    judge_max_items: int = 64
    cache: AnswerCache = field(default_factory=lambda: AnswerCache(None))
    seed: int = 0

    def _answers(self, model: Any, items: Sequence[EvalItem], release_key: str | None) -> list[str]:
        key = None
        if release_key is not None:
            key = hashlib.sha256(f"{release_key}:{items_key(items)}:{self.max_new_tokens}"
                                 .encode()).hexdigest()
            cached = self.cache.get(key)
            if cached is not None and len(cached) == len(items):
                return cached
        ctx = model.disable_adapter() if release_key is not None else nullcontext()
        with ctx:
            answers = generate_answers(model, self.tokenizer, items, batch_size=self.batch_size,
                                       max_new_tokens=self.max_new_tokens)
        if key is not None:
            self.cache.put(key, answers)
        return answers

    def _both(self, model: Any, items: Sequence[EvalItem], release_key: str
              ) -> tuple[list[str], list[str]]:
        return self._answers(model, items, None), self._answers(model, items, release_key)

    def run(self, model: Any, sets: EvalSets, release_key: str,
            clock: Callable[[], float] | None = None) -> EvalResult:
        """Evaluate ``model`` (adapter on) against itself with the adapter off."""
        import time

        clock = clock or time.perf_counter
        started = clock()
        metrics: dict[str, float] = {"eval.items": float(len(sets.heldout))}
        cand_answers, rel_answers = self._both(model, sets.heldout, release_key)
        cand_ok, rel_ok = score(sets.heldout, cand_answers), score(sets.heldout, rel_answers)
        metrics[PRIMARY], metrics[f"release.{PRIMARY}"] = _mean(cand_ok), _mean(rel_ok)
        metrics.update(_per_intent(sets.heldout, cand_ok, rel_ok))
        slices_c, slices_r = self._slices(model, sets.slices, release_key, metrics)
        win_name, win_rate = self._win_rate(sets.heldout, cand_answers, rel_answers, cand_ok,
                                            rel_ok, metrics)
        pref = self._preference(model, sets.pairs, metrics)
        candidate = Scores(metrics[PRIMARY], PRIMARY, slices_c, win_rate, win_name, pref)
        release = Scores(metrics[f"release.{PRIMARY}"], PRIMARY, slices_r)
        metrics["eval.seconds"] = clock() - started
        return EvalResult(metrics, candidate, release, metrics["eval.seconds"])

    def _slices(self, model: Any, slices: Mapping[str, list[EvalItem]], release_key: str,
                metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        cand, rel = {}, {}
        for name, items in slices.items():
            if not items:
                continue
            c_answers, r_answers = self._both(model, items, release_key)
            cand[name], rel[name] = _mean(score(items, c_answers)), _mean(score(items, r_answers))
            metrics[name], metrics[f"release.{name}"] = cand[name], rel[name]
            metrics[f"{name}.items"] = float(len(items))
        return cand, rel

    def _win_rate(self, items: Sequence[EvalItem], cand_answers: list[str],
                  rel_answers: list[str], cand_ok: list[bool], rel_ok: list[bool],
                  metrics: dict[str, float]) -> tuple[str, float]:
        if self.judge is None:
            outcome = exact_match_win_rate(cand_ok, rel_ok)
            name = "win_rate.exact_match"
            wins, losses, ties = outcome.wins, outcome.losses, outcome.ties
            rate: float = outcome.rate
        else:
            n = min(self.judge_max_items, len(items))
            wins, losses, ties, errors = judged_outcomes(
                self.judge, [i.prompt for i in items[:n]], cand_answers[:n], rel_answers[:n],
                self.seed)
            name = "win_rate.judge"
            metrics[f"{name}.errors"] = float(errors)
            judged = wins + losses + ties
            rate = (wins + 0.5 * ties) / judged if judged else float("nan")
        metrics[name] = rate
        metrics.update({f"{name}.wins": float(wins), f"{name}.losses": float(losses),
                        f"{name}.ties": float(ties)})
        return name, rate

    def _preference(self, model: Any, pairs: Sequence[Mapping[str, Any]],
                    metrics: dict[str, float]) -> float | None:
        if not pairs:
            return None
        from flywheel.ml.evaluate import preference_accuracy

        value = preference_accuracy(model, self.tokenizer, pairs, batch_size=16)
        metrics["preference.accuracy"] = value
        metrics["preference.pairs"] = float(len(pairs))
        return value


def _per_intent(items: Sequence[EvalItem], cand_ok: Sequence[bool],
                rel_ok: Sequence[bool]) -> dict[str, float]:
    by_intent: dict[str, tuple[list[bool], list[bool]]] = defaultdict(lambda: ([], []))
    for item, c, r in zip(items, cand_ok, rel_ok):
        if item.intent:
            by_intent[item.intent][0].append(c)
            by_intent[item.intent][1].append(r)
    out = {}
    for intent, (c, r) in sorted(by_intent.items()):
        out[f"{PRIMARY}.{intent}"] = _mean(c)
        out[f"release.{PRIMARY}.{intent}"] = _mean(r)
    return out


def shop_heldout(n: int) -> list[EvalItem]:
    """The shop world's fixed held-out questions as eval items."""
    from flywheel.demo import shop

    return [EvalItem(f"shop-heldout-{i}", shop.question_messages(q), shop.reference_answer(q),
                     None, q.intent) for i, q in enumerate(shop.heldout_set(n))]


def choose_heldout(batch_items: Sequence[EvalItem], source: str, size: int,
                   min_batch: int) -> tuple[list[EvalItem], str]:
    """The held-out set: the batch's eval items or the shop's, as ``source`` says.

    ``auto`` takes the batch's when it has at least ``min_batch`` scoreable items.
    """
    if source == "batch" or (source == "auto" and len(batch_items) >= min_batch):
        return list(batch_items)[:size], "batch"
    return shop_heldout(size), "shop"
