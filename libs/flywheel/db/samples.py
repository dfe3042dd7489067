"""One linked, fully populated row for every table: seed data for tests, demos and the console.

The rows form one lineage: a release of a model version trained on a batch whose example came
from a labelled trace of an app's user. Insert them in the order returned.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from sqlmodel import SQLModel

from flywheel.db.models import (
    AnnotationTask,
    Annotator,
    AnnotatorRole,
    AnnotatorSession,
    AnnotatorToken,
    ApiKey,
    App,
    BatchExample,
    BatchStatus,
    DatasetBatch,
    Example,
    ExampleKind,
    Guideline,
    Label,
    LabellerType,
    ModelLine,
    ModelStatus,
    ModelVersion,
    PreferenceRequest,
    PreferenceStatus,
    Release,
    ReleaseAction,
    TaskStatus,
    Webhook,
)

_T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sample_rows(tag: str = "s") -> list[SQLModel]:
    """Rows for every table, parents first. ``tag`` makes ids and unique values distinct, so
    several sets can live in one database."""
    app_id, line, trace = f"app-{tag}", f"line-{tag}", f"trace-{tag}"
    annotator_id, task_id = f"ann-{tag}", f"task-{tag}"
    batch_id, example_id = _sha256(f"batch-{tag}"), f"ex-{tag}"
    later = _T0 + timedelta(hours=1)
    return [
        App(app_id=app_id, name=f"Shop assistant {tag}", created_at=_T0),
        ApiKey(key_id=f"key-{tag}", app_id=app_id, key_prefix=f"fw_{tag}"[:32],
               key_hash=_sha256(f"secret-{tag}"), label="ci", created_at=_T0, revoked_at=later),
        Annotator(annotator_id=annotator_id, username=f"ada-{tag}", password_hash="scrypt$x$y",
                  role=AnnotatorRole.REVIEWER, active=True, created_at=_T0),
        AnnotatorSession(session_id=f"sess-{tag}", annotator_id=annotator_id,
                         token_hash=_sha256(f"session-{tag}"), created_at=_T0, expires_at=later),
        AnnotatorToken(token_id=f"tok-{tag}", annotator_id=annotator_id,
                       token_hash=_sha256(f"token-{tag}"), name="labelling script",
                       created_at=_T0, revoked_at=None),
        Guideline(kind="helpfulness", version=f"v1-{tag}", text="Rate 1-7.\nExplain briefly.",
                  created_at=_T0),
        AnnotationTask(task_id=task_id, trace_id=trace, kind="helpfulness", priority=7,
                       payload={"question": "Où est ma commande ?", "answers": ["a", "b"],
                                "uncertainty": {"entropy": 0.93, "k": 5}},
                       required_annotators=2, status=TaskStatus.IN_REVIEW,
                       guideline_version=f"v1-{tag}", created_at=_T0, updated_at=later),
        Label(label_id=f"label-{tag}", task_id=task_id, trace_id=trace, kind="helpfulness",
              labeller_type=LabellerType.HUMAN, labeller_id=annotator_id,
              value={"score": 6, "criteria": {"correct": True, "tone": None}},
              guideline_version=f"v1-{tag}", prompt_version="judge-p3", is_final=True,
              created_at=later),
        PreferenceRequest(request_id=f"pref-{tag}", trace_id=trace, user_id=f"user-{tag}",
                          app_id=app_id, payload={"a": "release 3", "b": "canary 4"},
                          status=PreferenceStatus.ANSWERED, created_at=_T0, expires_at=later,
                          answered_at=later,
                          answer={"choice": "b", "reason": "clearer", "ratings": {"style": 5}}),
        Webhook(webhook_id=f"hook-{tag}", app_id=app_id, url=f"https://shop.example/{tag}/hook",
                secret="whsec-sample", active=True, created_at=_T0),
        ModelLine(line=line, base_model="tiny-llama", description="Support bot", created_at=_T0),
        DatasetBatch(batch_id=batch_id, model_line=line, version=1,
                     status=BatchStatus.ANNOUNCED, sft_path=f"artifacts/{batch_id}/sft.jsonl",
                     dpo_path=f"artifacts/{batch_id}/dpo.jsonl",
                     manifest={"files": {"sft": {"sha256": _sha256("sft"), "rows": 1}}},
                     counts={"sft": 1, "dpo": 0, "eval": 0},
                     sources={"annotation": 1}, transforms=["prompt_erasure"],
                     replay_share=0.25, created_at=_T0, announced_at=later),
        Example(example_id=example_id, kind=ExampleKind.SFT, source="annotation",
                intent="order_status", content_hash=_sha256(f"content-{tag}"),
                payload={"messages": [{"role": "user", "content": "Où est ma commande ?"},
                                      {"role": "assistant", "content": "Elle arrive demain."}]},
                trace_ids=[trace], user_ids=[f"user-{tag}"],
                kafka_topic="flywheel.annotation.labels.v1", kafka_partition=2,
                kafka_offset=2**40 + 7, labeller_ids=[annotator_id],
                transforms=[{"name": "prompt_erasure", "version": 1}],
                created_at=_T0, batch_id=batch_id),
        BatchExample(batch_id=batch_id, example_id=example_id, replay=False),
        ModelVersion(line=line, version=1, parent_version=None, base_model="tiny-llama",
                     adapter_path="artifacts/a/adapter", merged_path="artifacts/a/merged",
                     onnx_path="artifacts/a/model.onnx", artifact_hash=_sha256("onnx"),
                     batch_ids=[batch_id], hyperparameters={"lr": 2e-4, "rank": 8},
                     metrics={"eval_loss": 1.25, "parity_max_abs": 1e-5},
                     status=ModelStatus.CANARY, failure_reason=None, created_at=_T0,
                     updated_at=later,
                     status_history=[{"status": "training", "at": _T0.isoformat()},
                                     {"status": "canary", "at": later.isoformat()}]),
        Release(release_id=f"rel-{tag}", line=line, version=1, action=ReleaseAction.CANARY,
                actor="exporter", reason="eval gate passed", created_at=later),
    ]
