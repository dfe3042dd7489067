"""Settings of the annotation service: shared settings plus a ``FLYWHEEL_ANNOTATION_`` section.

The judge and the teacher are any OpenAI-compatible endpoints. A judge of the same model
family as the generator (or as the teacher it grades) is refused unless
``FLYWHEEL_ANNOTATION_JUDGE_ALLOW_SAME_FAMILY=true``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flywheel.settings import Settings

from .llm.families import model_family


class AnnotationSection(BaseSettings):
    """Options read from ``FLYWHEEL_ANNOTATION_*``."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_ANNOTATION_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 in containers).")
    port: int = Field(8003, ge=0, le=65535, description="HTTP port.")
    consume: bool = Field(True, description="Run the annotation.tasks consumer in-process.")
    lease_s: float = Field(300.0, gt=0, description="How long a claimed task stays reserved.")
    session_ttl_s: float = Field(12 * 3600.0, gt=0, description="Browser session lifetime.")
    cookie_secure: bool = Field(False, description="Mark the session cookie Secure (HTTPS).")
    default_required: int = Field(1, ge=1, le=10, description="Labels per task when triage sets none.")

    # The generator: the model whose answers are labelled.
    generator_model: str = Field("shop-assistant", description="Model name of the generator.")
    generator_family: str | None = Field(None, description="Its family (default: from the name).")

    # The judge.
    judge_base_url: str = Field("", description="OpenAI-compatible base URL; empty: no judge.")
    judge_model: str = Field("", description="Model id sent to the judge endpoint.")
    judge_api_key: SecretStr = Field(SecretStr(""), description="Bearer key of the judge endpoint.")
    judge_family: str | None = Field(None, description="Judge family (default: from the name).")
    judge_allow_same_family: bool = Field(
        False, description="Allow a judge of the generator's (or teacher's) family.")
    judge_triaged: bool = Field(
        True, description="Label traces.triaged items routed to the judge (ROUTE_JUDGE).")
    judge_tag: str = Field("judge", description="A task reason with this word goes to the judge.")

    # The teacher.
    teacher_base_url: str = Field("", description="OpenAI-compatible base URL; empty: no teacher.")
    teacher_model: str = Field("", description="Model id sent to the teacher endpoint.")
    teacher_api_key: SecretStr = Field(SecretStr(""), description="Bearer key of the teacher.")
    teacher_family: str | None = Field(None, description="Teacher family (default: from name).")
    teacher_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of CORRECT tasks routed to the teacher.")
    teacher_tag: str = Field("teacher", description="A task reason with this word goes to it.")
    teacher_min_rating: int = Field(
        3, ge=0, le=4, description="Judge rating a teacher answer needs to count (3 = good).")

    llm_timeout_s: float = Field(60.0, gt=0, description="Timeout of one judge/teacher call.")
    llm_concurrency: int = Field(8, ge=1, description="Judge/teacher calls in flight at most.")

    # Calibration of the judge against people.
    calibration_rate: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of human-settled tasks the judge also labels.")
    calibration_window: int = Field(200, ge=2, description="Judge/human pairs per criterion kept.")
    calibration_threshold: float = Field(
        0.6, ge=-1.0, le=1.0, description="Agreement under which triage sends more to people.")
    calibration_min_pairs: int = Field(
        20, ge=1, description="Pairs needed before the agreement is flagged low.")

    # Prompt versions of the judge and teacher.
    prompt_preview_max: int = Field(19, ge=1, le=19, description="Items in a side-by-side preview.")
    prompt_eval_min: int = Field(500, ge=1, description="Items in a scored evaluation (or all).")
    prompt_pass_rate: float = Field(0.7, ge=0.0, le=1.0, description="Overall match rate to pass.")
    prompt_slice_min_rate: float = Field(
        0.5, ge=0.0, le=1.0, description="Match rate every slice of 10+ items must reach.")

    @model_validator(mode="after")
    def _check_judge_family(self) -> "AnnotationSection":
        if not self.judge_base_url or self.judge_allow_same_family:
            return self
        judge = model_family(self.judge_model, self.judge_family)
        if judge == model_family(self.generator_model, self.generator_family):
            raise ValueError(
                f"judge {self.judge_model!r} is of the generator's family {judge!r}; choose "
                "another family or set FLYWHEEL_ANNOTATION_JUDGE_ALLOW_SAME_FAMILY=true")
        if self.teacher_base_url and judge == model_family(self.teacher_model, self.teacher_family):
            raise ValueError(
                f"judge {self.judge_model!r} is of the teacher's family {judge!r}; the judge "
                "grading the teacher must be of another family")
        return self

    @property
    def judge_enabled(self) -> bool:
        return bool(self.judge_base_url and self.judge_model)

    @property
    def teacher_enabled(self) -> bool:
        return bool(self.teacher_base_url and self.teacher_model and self.judge_enabled)


class AnnotationSettings(Settings):
    """Everything the annotation process reads: shared sections plus ``annotation``."""

    annotation: AnnotationSection = Field(default_factory=AnnotationSection)
