"""The routing policy: a YAML file validated by a pydantic schema, versioned, no code inside.

A policy has thresholds for the cheap filters (quality, duplicates, redaction patterns,
feedback), budgets for the routes that cost people or users time (``annotate``,
``preference``), the uncertainty settings, and an ordered list of rules. Each rule names a
route and a ``when`` block over named signals; the first rule whose conditions all hold wins,
and the last rule must have no conditions (the default). Conditions are either a literal (equal
to) or one operator mapping: ``{lt|le|gt|ge|eq|ne: value}``, ``{in: [..]}`` or ``{not_in: [..]}``.

Signal names are checked when the policy loads (:data:`SIGNALS`), so a typo fails at start-up,
not at the first trace. ``flywheel.services.triage.logic.policy.policy_json_schema()`` gives the
JSON schema; ``default_policy.yaml`` next to this module is the shipped policy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flywheel.errors import ConfigError

ROUTES = ("drop", "sft_candidate", "preference", "annotate", "eval_candidate", "system_eval", "judge")
RouteName = Literal["drop", "sft_candidate", "preference", "annotate", "eval_candidate",
                    "system_eval", "judge"]

# Every signal a rule may test, with its type. decide.build_signals fills them all.
SIGNALS: dict[str, type] = {
    # duplicates
    "duplicate": bool, "duplicate_kind": str, "similarity": float,
    # quality
    "quality": float, "empty_answer": bool, "too_short": bool, "too_long": bool,
    "truncated": bool, "repetitive": bool, "refusal": bool, "gibberish": bool,
    "language_mismatch": bool, "answer_chars": int,
    # redaction
    "pii_total": int,
    # agent outcome
    "outcome": str, "failure_source": str, "failure_kind": str, "is_agent": bool,
    # feedback
    "has_feedback": bool, "feedback_score": float, "thumbs_up": int, "thumbs_down": int,
    "has_rating": bool, "rating_mean": float, "has_correction": bool, "regenerated": bool,
    "rephrased": bool, "abandoned": bool, "negative_feedback": bool, "positive_feedback": bool,
    # uncertainty
    "uncertainty": float, "disagreement": float, "entropy": float,
    "uncertainty_measured": bool, "model_unavailable": bool, "has_logprobs": bool,
    "has_alternative_answer": bool,
    # who and what
    "has_user": bool, "eval_bucket": float, "intent": str, "app_id": str, "model_name": str,
    "revision": int,
}

Scalar = Union[bool, int, float, str]
_OPERATORS = {"lt", "le", "gt", "ge", "eq", "ne", "in", "not_in"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualityPolicy(_Strict):
    min_answer_chars: int = Field(2, ge=0)
    max_answer_chars: int = Field(8000, gt=0)
    repetition_threshold: float = Field(0.35, gt=0, le=1)
    truncation_min_chars: int = Field(80, ge=0)


class DedupePolicy(_Strict):
    near_threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard for a near-duplicate.")
    num_perm: int = Field(64, ge=8, le=512)
    bands: int = Field(16, ge=1)
    shingle: int = Field(3, ge=1, le=8)
    ttl_days: float = Field(7.0, gt=0, description="How long first occurrences are remembered.")

    @model_validator(mode="after")
    def _bands_divide(self) -> "DedupePolicy":
        if self.num_perm % self.bands:
            raise ValueError("dedupe.num_perm must be a multiple of dedupe.bands")
        return self


class CustomPatternPolicy(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")
    pattern: str
    ignore_case: bool = False


class RedactionPolicy(_Strict):
    custom_patterns: list[CustomPatternPolicy] = Field(default_factory=list)
    max_text_chars: int = Field(200_000, gt=0)


class FeedbackPolicy(_Strict):
    strong: list[Literal["thumbs_down", "thumbs_up", "correction", "regenerate", "rephrase",
                         "abandon", "low_rating", "preference"]] = Field(
        default_factory=lambda: ["thumbs_down", "correction", "regenerate"],
        description="Feedback that ends the hold and triggers the decision at once.")
    rephrase_similarity: float = Field(0.5, gt=0, le=1)


class UncertaintyPolicy(_Strict):
    enabled: bool = True
    temperature: float = Field(0.8, ge=0, le=2)
    max_tokens: int = Field(256, gt=0)
    sample_when: dict[str, Any] = Field(
        default_factory=dict,
        description="Conditions (as in rules) a trace must meet to be worth model calls.")

    @field_validator("sample_when")
    @classmethod
    def _check(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_conditions(value)


class BudgetPolicy(_Strict):
    per_hour: float = Field(ge=0, description="Items per hour across all workers.")
    burst: float | None = Field(None, ge=0, description="Bucket size; default per_hour / 6.")
    max_wait_s: float = Field(600.0, ge=0, description="Longest wait in the queue.")
    max_queue: int = Field(10_000, ge=1, description="Queue size per worker.")
    overflow_route: RouteName = "judge"

    @property
    def bucket_size(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.per_hour / 6)


class Rule(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    route: RouteName
    when: dict[str, Any] = Field(default_factory=dict)
    priority: str | None = Field(None, description="Signal used as the queue priority.")
    annotation_kind: Literal["rate", "correct", "pairwise", "classify_failure"] | None = None

    @field_validator("when")
    @classmethod
    def _check(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_conditions(value)

    @field_validator("priority")
    @classmethod
    def _known_priority(cls, value: str | None) -> str | None:
        if value is not None and SIGNALS.get(value) not in (float, int):
            raise ValueError(f"priority must name a numeric signal, got {value!r}")
        return value


class Policy(_Strict):
    version: str = Field(min_length=1, description="Recorded on every decision.")
    description: str = ""
    quality: QualityPolicy = Field(default_factory=QualityPolicy)
    dedupe: DedupePolicy = Field(default_factory=DedupePolicy)
    redaction: RedactionPolicy = Field(default_factory=RedactionPolicy)
    feedback: FeedbackPolicy = Field(default_factory=FeedbackPolicy)
    uncertainty: UncertaintyPolicy = Field(default_factory=UncertaintyPolicy)
    budgets: dict[Literal["annotate", "preference"], BudgetPolicy] = Field(default_factory=dict)
    intents: dict[str, list[str]] = Field(
        default_factory=dict, description="Intent label -> lower-case phrases that imply it.")
    annotation_guideline_version: str = "1"
    preference_ttl_hours: float = Field(72.0, gt=0)
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_last(self) -> "Policy":
        if self.rules[-1].when:
            raise ValueError("the last rule must have no conditions (it is the default route)")
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError("rule names must be unique")
        for route, budget in self.budgets.items():
            if budget.overflow_route in ("annotate", "preference"):
                raise ValueError(f"budgets.{route}.overflow_route must not be a budgeted route")
        return self


def _check_conditions(when: dict[str, Any]) -> dict[str, Any]:
    for name, cond in when.items():
        if name not in SIGNALS:
            raise ValueError(f"unknown signal {name!r}; known: {', '.join(sorted(SIGNALS))}")
        if isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in _OPERATORS:
                raise ValueError(f"{name}: expected one of {sorted(_OPERATORS)}, got {cond!r}")
            op, value = next(iter(cond.items()))
            if op in ("in", "not_in") and not isinstance(value, list):
                raise ValueError(f"{name}.{op} needs a list")
            if op in ("lt", "le", "gt", "ge") and (
                    SIGNALS[name] not in (int, float) or isinstance(value, bool)
                    or not isinstance(value, (int, float))):
                raise ValueError(f"{name}.{op} needs a numeric signal and a number")
            for item in value if isinstance(value, list) else [value]:
                _check_literal(name, item)
        else:
            _check_literal(name, cond)
    return when


def _check_literal(name: str, value: Any) -> None:
    kind = SIGNALS[name]
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, str) if kind is str else
          isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        raise ValueError(f"{name} is a {kind.__name__} signal, got {value!r}")


def matches(when: dict[str, Any], signals: dict[str, Any]) -> bool:
    """True when every condition holds for ``signals``."""
    for name, cond in when.items():
        value = signals.get(name)
        if isinstance(cond, dict):
            op, target = next(iter(cond.items()))
            if not _compare(op, value, target):
                return False
        elif value != cond:
            return False
    return True


def _compare(op: str, value: Any, target: Any) -> bool:
    if op == "in":
        return value in target
    if op == "not_in":
        return value not in target
    if op == "eq":
        return value == target
    if op == "ne":
        return value != target
    if value is None:
        return False
    return {"lt": value < target, "le": value <= target, "gt": value > target,
            "ge": value >= target}[op]


def failing_conditions(when: dict[str, Any], signals: dict[str, Any]) -> list[str]:
    """Names of the conditions that do not hold (for explanations and tests)."""
    return [name for name in when if not matches({name: when[name]}, signals)]


DEFAULT_POLICY = "default_policy.yaml"


def parse_policy(data: dict[str, Any], source: str = "<policy>") -> Policy:
    """Validate a policy mapping.

    Raises:
        ConfigError: the mapping does not match the schema (one line, naming the field).
    """
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "policy"
        raise ConfigError("FLYWHEEL_TRIAGE_POLICY_PATH", f"{source}: {where}: {err['msg']}") from None


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy file; ``None`` loads the shipped default.

    Raises:
        ConfigError: the file is missing, is not YAML, or does not match the schema.
    """
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
        source = DEFAULT_POLICY
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("FLYWHEEL_TRIAGE_POLICY_PATH", f"cannot read {path}: {exc}") from None
        source = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("FLYWHEEL_TRIAGE_POLICY_PATH", f"{source}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("FLYWHEEL_TRIAGE_POLICY_PATH", f"{source}: expected a mapping")
    return parse_policy(data, source)


def policy_json_schema() -> dict[str, Any]:
    """The JSON schema of a policy file (for editors and CI checks)."""
    return Policy.model_json_schema()
