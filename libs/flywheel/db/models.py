"""SQLModel tables: the durable facts of the pipeline.

Only table models live here. Request and response models belong to the services that expose
them (``services/<name>/api``), so that changing an API never changes the schema by accident.

Conventions:
- Identifiers are strings. Surrogate ids default to :func:`flywheel.db.types.new_id`; ids that
  come from events (trace ids, task ids, batch content hashes) are set by the caller.
- Timestamps are aware UTC datetimes (:class:`flywheel.db.types.UTCDateTime`).
- Secrets are never stored: API keys, session and API tokens keep the SHA-256 hex digest of
  the secret, and a short prefix of the key for lookup. Annotator passwords keep a salted
  password hash. Webhook secrets are the exception: they sign outgoing requests, so the
  plain value is needed.
- Status columns are strings with a CHECK constraint (no native PostgreSQL enums, so adding
  a status is an ordinary migration that replaces one constraint).
- JSON columns are plain ``JSON``. Mutating a loaded dict or list in place is not tracked:
  assign a new value (``row.metrics = {**row.metrics, "loss": 0.1}``).

Every schema change needs an Alembic revision under ``flywheel/db/migrations/versions``;
``tests/unit/test_db_models.py`` fails when the migrations and these models differ.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from flywheel.db.types import UTCDateTime, new_id, utcnow

# Deterministic constraint names, so that later migrations (and SQLite batch mode, which
# recreates tables) can refer to constraints by name on both backends.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

metadata = SQLModel.metadata

ID_LEN = 64  # ids and hex digests (SHA-256 is 64 hex characters)
NAME_LEN = 255
PATH_LEN = 1024


# -- enumerations -----------------------------------------------------------------------------


class AnnotatorRole(StrEnum):
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_REVIEW = "in_review"
    DONE = "done"
    UNUSABLE = "unusable"


class LabellerType(StrEnum):
    HUMAN = "human"
    JUDGE = "judge"
    TEACHER = "teacher"
    REVIEWER = "reviewer"


class PreferenceStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    EXPIRED = "expired"


class ExampleKind(StrEnum):
    SFT = "sft"
    DPO = "dpo"
    EVAL = "eval"


class BatchStatus(StrEnum):
    WRITTEN = "written"
    ANNOUNCED = "announced"
    SUPERSEDED = "superseded"


class ModelStatus(StrEnum):
    TRAINING = "training"
    REJECTED = "rejected"
    CANDIDATE = "candidate"
    CANARY = "canary"
    RELEASED = "released"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class ReleaseAction(StrEnum):
    CANARY = "canary"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


def _enum(enum_cls: type[StrEnum], name: str) -> sa.Enum:
    """A VARCHAR(32) column type holding the enum's values, guarded by a named CHECK."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


def _json(*, nullable: bool = False) -> Column:
    # none_as_null: Python None is SQL NULL, not the JSON text 'null', so IS NULL works.
    return Column(JSON(none_as_null=True), nullable=nullable)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# -- apps and API keys ------------------------------------------------------------------------


class App(SQLModel, table=True):
    """A tenant: an application or agent that sends traces."""

    __tablename__ = "apps"

    app_id: str = Field(primary_key=True, max_length=ID_LEN)
    name: str = Field(max_length=NAME_LEN, unique=True)
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    """An app's API key. ``key_prefix`` (the key's public head) finds the row; ``key_hash``
    (SHA-256 hex of the whole secret) verifies it."""

    __tablename__ = "api_keys"

    key_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    app_id: str = Field(foreign_key="apps.app_id", ondelete="CASCADE", index=True,
                        max_length=ID_LEN)
    key_prefix: str = Field(max_length=32, unique=True, index=True)
    key_hash: str = Field(max_length=ID_LEN)
    label: str | None = Field(default=None, max_length=NAME_LEN)
    created_at: datetime = _created()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# -- annotators -------------------------------------------------------------------------------


class Annotator(SQLModel, table=True):
    """A person (or scripted client) who labels annotation tasks."""

    __tablename__ = "annotators"

    annotator_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=NAME_LEN)
    role: AnnotatorRole = Field(default=AnnotatorRole.ANNOTATOR,
                                sa_type=_enum(AnnotatorRole, "annotator_role"))
    active: bool = Field(default=True)
    created_at: datetime = _created()


class AnnotatorSession(SQLModel, table=True):
    """A browser login session; the cookie carries the token, the row its SHA-256 hex."""

    __tablename__ = "annotator_sessions"

    session_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    annotator_id: str = Field(foreign_key="annotators.annotator_id", ondelete="CASCADE",
                              index=True, max_length=ID_LEN)
    token_hash: str = Field(max_length=ID_LEN, unique=True, index=True)
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)


class AnnotatorToken(SQLModel, table=True):
    """A long-lived API token for a scripted annotator; stored as the SHA-256 hex of the token."""

    __tablename__ = "annotator_tokens"

    token_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    annotator_id: str = Field(foreign_key="annotators.annotator_id", ondelete="CASCADE",
                              index=True, max_length=ID_LEN)
    token_hash: str = Field(max_length=ID_LEN, unique=True, index=True)
    name: str | None = Field(default=None, max_length=NAME_LEN)
    created_at: datetime = _created()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# -- annotation -------------------------------------------------------------------------------


class Guideline(SQLModel, table=True):
    """The instructions annotators and judges follow for one task kind, versioned."""

    __tablename__ = "guidelines"

    kind: str = Field(primary_key=True, max_length=64)
    version: str = Field(primary_key=True, max_length=64)
    text: str = Field(sa_type=sa.Text)
    created_at: datetime = _created()


class AnnotationTask(SQLModel, table=True):
    """One item to label. The queue is read by ``(status, priority)``."""

    __tablename__ = "annotation_tasks"
    __table_args__ = (sa.Index("ix_annotation_tasks_queue", "status", "priority"),)

    task_id: str = Field(primary_key=True, max_length=ID_LEN)
    trace_id: str = Field(index=True, max_length=ID_LEN)
    kind: str = Field(max_length=64)
    priority: int = Field(default=0)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    required_annotators: int = Field(default=1, ge=1)
    status: TaskStatus = Field(default=TaskStatus.PENDING, sa_type=_enum(TaskStatus, "task_status"))
    guideline_version: str | None = Field(default=None, max_length=64)
    created_at: datetime = _created()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False,
                                 sa_column_kwargs={"onupdate": utcnow})


class Label(SQLModel, table=True):
    """A label from a person, a judge model, a teacher model or a reviewer.

    ``labeller_id`` is the annotator id for people and the model name for models. One labeller
    gives at most one label per task (a revised label updates the row), which keeps
    at-least-once delivery idempotent. Labels without a task (judge labels on triaged traces)
    have ``task_id`` NULL.
    """

    __tablename__ = "labels"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "labeller_type", "labeller_id"),
        sa.Index("ix_labels_trace_kind", "trace_id", "kind"),
    )

    label_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    task_id: str | None = Field(default=None, foreign_key="annotation_tasks.task_id",
                                index=True, max_length=ID_LEN)
    trace_id: str = Field(max_length=ID_LEN)
    kind: str = Field(max_length=64)
    labeller_type: LabellerType = Field(sa_type=_enum(LabellerType, "labeller_type"))
    labeller_id: str = Field(max_length=NAME_LEN)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    guideline_version: str | None = Field(default=None, max_length=64)
    prompt_version: str | None = Field(default=None, max_length=64)
    is_final: bool = Field(default=False)
    created_at: datetime = _created()


# -- preferences ------------------------------------------------------------------------------


class PreferenceRequest(SQLModel, table=True):
    """A question to an end user: which of two answers is better. Answered at most once."""

    __tablename__ = "preference_requests"
    __table_args__ = (sa.Index("ix_preference_requests_user_status", "user_id", "status"),)

    request_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    trace_id: str = Field(index=True, max_length=ID_LEN)
    user_id: str = Field(max_length=128)
    app_id: str | None = Field(default=None, foreign_key="apps.app_id", index=True,
                               max_length=ID_LEN)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    status: PreferenceStatus = Field(default=PreferenceStatus.PENDING,
                                     sa_type=_enum(PreferenceStatus, "preference_status"))
    created_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answer: dict[str, Any] | None = Field(default=None, sa_column=_json(nullable=True))


class Webhook(SQLModel, table=True):
    """Where an app wants preference requests delivered; requests are signed with ``secret``."""

    __tablename__ = "webhooks"
    __table_args__ = (sa.UniqueConstraint("app_id", "url"),)

    webhook_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    app_id: str = Field(foreign_key="apps.app_id", ondelete="CASCADE", index=True,
                        max_length=ID_LEN)
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=NAME_LEN)
    active: bool = Field(default=True)
    created_at: datetime = _created()


# -- datasets and lineage ---------------------------------------------------------------------


class ModelLine(SQLModel, table=True):
    """A lineage of models retrained from one base model (for example ``support-bot``)."""

    __tablename__ = "model_lines"

    line: str = Field(primary_key=True, max_length=64)
    base_model: str = Field(max_length=NAME_LEN)
    description: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created()


class DatasetBatch(SQLModel, table=True):
    """A versioned training batch; ``batch_id`` is the content hash of its manifest."""

    __tablename__ = "dataset_batches"
    __table_args__ = (sa.UniqueConstraint("model_line", "version"),)

    batch_id: str = Field(primary_key=True, max_length=ID_LEN)
    model_line: str = Field(foreign_key="model_lines.line", max_length=64)
    version: int
    status: BatchStatus = Field(default=BatchStatus.WRITTEN,
                                sa_type=_enum(BatchStatus, "batch_status"))
    sft_path: str | None = Field(default=None, max_length=PATH_LEN)
    dpo_path: str | None = Field(default=None, max_length=PATH_LEN)
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    sources: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    transforms: list[Any] = Field(default_factory=list, sa_column=_json())
    replay_share: float = Field(default=0.0, ge=0.0, le=1.0)
    created_at: datetime = _created()
    announced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Example(SQLModel, table=True):
    """One training or eval example with its full lineage.

    ``trace_ids``/``user_ids``/``labeller_ids`` are JSON lists of strings: the traces the
    example came from, the (pseudonymous) users in them and who labelled it. The Kafka
    coordinates are those of the message the curator built it from. ``batch_id`` is the
    first batch that included it; ``batch_examples`` holds every inclusion (replay included).
    """

    __tablename__ = "examples"
    __table_args__ = (sa.UniqueConstraint("kind", "content_hash"),)

    example_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    kind: ExampleKind = Field(sa_type=_enum(ExampleKind, "example_kind"))
    source: str = Field(max_length=64)
    intent: str | None = Field(default=None, index=True, max_length=128)
    content_hash: str = Field(index=True, max_length=ID_LEN)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    trace_ids: list[str] = Field(default_factory=list, sa_column=_json())
    user_ids: list[str] = Field(default_factory=list, sa_column=_json())
    kafka_topic: str | None = Field(default=None, max_length=NAME_LEN)
    kafka_partition: int | None = Field(default=None)
    kafka_offset: int | None = Field(default=None, sa_type=sa.BigInteger)
    labeller_ids: list[str] = Field(default_factory=list, sa_column=_json())
    transforms: list[Any] = Field(default_factory=list, sa_column=_json())
    created_at: datetime = _created()
    batch_id: str | None = Field(default=None, foreign_key="dataset_batches.batch_id",
                                 index=True, max_length=ID_LEN)


class BatchExample(SQLModel, table=True):
    """Link table: which examples a batch holds; ``replay`` marks examples replayed from
    earlier batches."""

    __tablename__ = "batch_examples"

    batch_id: str = Field(foreign_key="dataset_batches.batch_id", ondelete="CASCADE",
                          primary_key=True, max_length=ID_LEN)
    example_id: str = Field(foreign_key="examples.example_id", primary_key=True, index=True,
                            max_length=ID_LEN)
    replay: bool = Field(default=False)


# -- model registry ---------------------------------------------------------------------------


class ModelVersion(SQLModel, table=True):
    """One trained model of a line. ``status_history`` is a JSON list of
    ``{"status", "at", "reason"}`` entries, appended on every status change."""

    __tablename__ = "model_versions"

    line: str = Field(foreign_key="model_lines.line", primary_key=True, max_length=64)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    parent_version: int | None = Field(default=None)
    base_model: str = Field(max_length=NAME_LEN)
    adapter_path: str | None = Field(default=None, max_length=PATH_LEN)
    merged_path: str | None = Field(default=None, max_length=PATH_LEN)
    onnx_path: str | None = Field(default=None, max_length=PATH_LEN)
    artifact_hash: str | None = Field(default=None, max_length=ID_LEN)
    batch_ids: list[str] = Field(default_factory=list, sa_column=_json())
    hyperparameters: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=_json())
    status: ModelStatus = Field(default=ModelStatus.TRAINING, index=True,
                                sa_type=_enum(ModelStatus, "model_status"))
    failure_reason: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False,
                                 sa_column_kwargs={"onupdate": utcnow})
    status_history: list[dict[str, Any]] = Field(default_factory=list, sa_column=_json())


class Release(SQLModel, table=True):
    """An append-only log of release actions on model versions."""

    __tablename__ = "releases"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["line", "version"], ["model_versions.line", "model_versions.version"]
        ),
        sa.Index("ix_releases_line_created", "line", "created_at"),
    )

    release_id: str = Field(default_factory=new_id, primary_key=True, max_length=ID_LEN)
    line: str = Field(max_length=64)
    version: int
    action: ReleaseAction = Field(sa_type=_enum(ReleaseAction, "release_action"))
    actor: str = Field(max_length=NAME_LEN)
    reason: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created()


TABLES: tuple[type[SQLModel], ...] = (
    App, ApiKey, Annotator, AnnotatorSession, AnnotatorToken, Guideline, AnnotationTask, Label,
    PreferenceRequest, Webhook, ModelLine, DatasetBatch, Example, BatchExample, ModelVersion,
    Release,
)
