"""Initial schema: apps and keys, annotators, annotation, preferences, datasets with lineage,
the model registry and releases.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 14:35:25.336705
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('annotation_tasks',
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('required_annotators', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'in_review', 'done', 'unusable', name='task_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('guideline_version', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_annotation_tasks'))
    )
    op.create_index('ix_annotation_tasks_queue', 'annotation_tasks', ['status', 'priority'], unique=False)
    op.create_index(op.f('ix_annotation_tasks_trace_id'), 'annotation_tasks', ['trace_id'], unique=False)
    op.create_table('annotators',
    sa.Column('annotator_id', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('annotator', 'reviewer', 'admin', name='annotator_role', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('annotator_id', name=op.f('pk_annotators'))
    )
    op.create_index(op.f('ix_annotators_username'), 'annotators', ['username'], unique=True)
    op.create_table('apps',
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('app_id', name=op.f('pk_apps')),
    sa.UniqueConstraint('name', name=op.f('uq_apps_name'))
    )
    op.create_table('guidelines',
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'version', name=op.f('pk_guidelines'))
    )
    op.create_table('model_lines',
    sa.Column('line', sa.String(length=64), nullable=False),
    sa.Column('base_model', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('line', name=op.f('pk_model_lines'))
    )
    op.create_table('annotator_sessions',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.annotator_id'], name=op.f('fk_annotator_sessions_annotator_id_annotators'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_annotator_sessions'))
    )
    op.create_index(op.f('ix_annotator_sessions_annotator_id'), 'annotator_sessions', ['annotator_id'], unique=False)
    op.create_index(op.f('ix_annotator_sessions_expires_at'), 'annotator_sessions', ['expires_at'], unique=False)
    op.create_index(op.f('ix_annotator_sessions_token_hash'), 'annotator_sessions', ['token_hash'], unique=True)
    op.create_table('annotator_tokens',
    sa.Column('token_id', sa.String(length=64), nullable=False),
    sa.Column('annotator_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['annotator_id'], ['annotators.annotator_id'], name=op.f('fk_annotator_tokens_annotator_id_annotators'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_id', name=op.f('pk_annotator_tokens'))
    )
    op.create_index(op.f('ix_annotator_tokens_annotator_id'), 'annotator_tokens', ['annotator_id'], unique=False)
    op.create_index(op.f('ix_annotator_tokens_token_hash'), 'annotator_tokens', ['token_hash'], unique=True)
    op.create_table('api_keys',
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('key_prefix', sa.String(length=32), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['apps.app_id'], name=op.f('fk_api_keys_app_id_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key_id', name=op.f('pk_api_keys'))
    )
    op.create_index(op.f('ix_api_keys_app_id'), 'api_keys', ['app_id'], unique=False)
    op.create_index(op.f('ix_api_keys_key_prefix'), 'api_keys', ['key_prefix'], unique=True)
    op.create_table('dataset_batches',
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('model_line', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('written', 'announced', 'superseded', name='batch_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('sft_path', sa.String(length=1024), nullable=True),
    sa.Column('dpo_path', sa.String(length=1024), nullable=True),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('transforms', sa.JSON(), nullable=False),
    sa.Column('replay_share', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('announced_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['model_line'], ['model_lines.line'], name=op.f('fk_dataset_batches_model_line_model_lines')),
    sa.PrimaryKeyConstraint('batch_id', name=op.f('pk_dataset_batches')),
    sa.UniqueConstraint('model_line', 'version', name=op.f('uq_dataset_batches_model_line_version'))
    )
    op.create_table('labels',
    sa.Column('label_id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('labeller_type', sa.Enum('human', 'judge', 'teacher', 'reviewer', name='labeller_type', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('labeller_id', sa.String(length=255), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('guideline_version', sa.String(length=64), nullable=True),
    sa.Column('prompt_version', sa.String(length=64), nullable=True),
    sa.Column('is_final', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['annotation_tasks.task_id'], name=op.f('fk_labels_task_id_annotation_tasks')),
    sa.PrimaryKeyConstraint('label_id', name=op.f('pk_labels')),
    sa.UniqueConstraint('task_id', 'labeller_type', 'labeller_id', name=op.f('uq_labels_task_id_labeller_type_labeller_id'))
    )
    op.create_index(op.f('ix_labels_task_id'), 'labels', ['task_id'], unique=False)
    op.create_index('ix_labels_trace_kind', 'labels', ['trace_id', 'kind'], unique=False)
    op.create_table('model_versions',
    sa.Column('line', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('parent_version', sa.Integer(), nullable=True),
    sa.Column('base_model', sa.String(length=255), nullable=False),
    sa.Column('adapter_path', sa.String(length=1024), nullable=True),
    sa.Column('merged_path', sa.String(length=1024), nullable=True),
    sa.Column('onnx_path', sa.String(length=1024), nullable=True),
    sa.Column('artifact_hash', sa.String(length=64), nullable=True),
    sa.Column('batch_ids', sa.JSON(), nullable=False),
    sa.Column('hyperparameters', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('training', 'rejected', 'candidate', 'canary', 'released', 'rolled_back', 'failed', name='model_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_history', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['line'], ['model_lines.line'], name=op.f('fk_model_versions_line_model_lines')),
    sa.PrimaryKeyConstraint('line', 'version', name=op.f('pk_model_versions'))
    )
    op.create_index(op.f('ix_model_versions_status'), 'model_versions', ['status'], unique=False)
    op.create_table('preference_requests',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('trace_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'answered', 'expired', name='preference_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answer', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['apps.app_id'], name=op.f('fk_preference_requests_app_id_apps')),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_preference_requests'))
    )
    op.create_index(op.f('ix_preference_requests_app_id'), 'preference_requests', ['app_id'], unique=False)
    op.create_index(op.f('ix_preference_requests_expires_at'), 'preference_requests', ['expires_at'], unique=False)
    op.create_index(op.f('ix_preference_requests_trace_id'), 'preference_requests', ['trace_id'], unique=False)
    op.create_index('ix_preference_requests_user_status', 'preference_requests', ['user_id', 'status'], unique=False)
    op.create_table('webhooks',
    sa.Column('webhook_id', sa.String(length=64), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('secret', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['apps.app_id'], name=op.f('fk_webhooks_app_id_apps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('webhook_id', name=op.f('pk_webhooks')),
    sa.UniqueConstraint('app_id', 'url', name=op.f('uq_webhooks_app_id_url'))
    )
    op.create_index(op.f('ix_webhooks_app_id'), 'webhooks', ['app_id'], unique=False)
    op.create_table('examples',
    sa.Column('example_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('sft', 'dpo', 'eval', name='example_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('intent', sa.String(length=128), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('trace_ids', sa.JSON(), nullable=False),
    sa.Column('user_ids', sa.JSON(), nullable=False),
    sa.Column('kafka_topic', sa.String(length=255), nullable=True),
    sa.Column('kafka_partition', sa.Integer(), nullable=True),
    sa.Column('kafka_offset', sa.BigInteger(), nullable=True),
    sa.Column('labeller_ids', sa.JSON(), nullable=False),
    sa.Column('transforms', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['dataset_batches.batch_id'], name=op.f('fk_examples_batch_id_dataset_batches')),
    sa.PrimaryKeyConstraint('example_id', name=op.f('pk_examples')),
    sa.UniqueConstraint('kind', 'content_hash', name=op.f('uq_examples_kind_content_hash'))
    )
    op.create_index(op.f('ix_examples_batch_id'), 'examples', ['batch_id'], unique=False)
    op.create_index(op.f('ix_examples_content_hash'), 'examples', ['content_hash'], unique=False)
    op.create_index(op.f('ix_examples_intent'), 'examples', ['intent'], unique=False)
    op.create_table('releases',
    sa.Column('release_id', sa.String(length=64), nullable=False),
    sa.Column('line', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.Enum('canary', 'promote', 'rollback', name='release_action', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['line', 'version'], ['model_versions.line', 'model_versions.version'], name=op.f('fk_releases_line_version_model_versions')),
    sa.PrimaryKeyConstraint('release_id', name=op.f('pk_releases'))
    )
    op.create_index('ix_releases_line_created', 'releases', ['line', 'created_at'], unique=False)
    op.create_table('batch_examples',
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('example_id', sa.String(length=64), nullable=False),
    sa.Column('replay', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['dataset_batches.batch_id'], name=op.f('fk_batch_examples_batch_id_dataset_batches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['example_id'], ['examples.example_id'], name=op.f('fk_batch_examples_example_id_examples')),
    sa.PrimaryKeyConstraint('batch_id', 'example_id', name=op.f('pk_batch_examples'))
    )
    op.create_index(op.f('ix_batch_examples_example_id'), 'batch_examples', ['example_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_batch_examples_example_id'), table_name='batch_examples')
    op.drop_table('batch_examples')
    op.drop_index('ix_releases_line_created', table_name='releases')
    op.drop_table('releases')
    op.drop_index(op.f('ix_examples_intent'), table_name='examples')
    op.drop_index(op.f('ix_examples_content_hash'), table_name='examples')
    op.drop_index(op.f('ix_examples_batch_id'), table_name='examples')
    op.drop_table('examples')
    op.drop_index(op.f('ix_webhooks_app_id'), table_name='webhooks')
    op.drop_table('webhooks')
    op.drop_index('ix_preference_requests_user_status', table_name='preference_requests')
    op.drop_index(op.f('ix_preference_requests_trace_id'), table_name='preference_requests')
    op.drop_index(op.f('ix_preference_requests_expires_at'), table_name='preference_requests')
    op.drop_index(op.f('ix_preference_requests_app_id'), table_name='preference_requests')
    op.drop_table('preference_requests')
    op.drop_index(op.f('ix_model_versions_status'), table_name='model_versions')
    op.drop_table('model_versions')
    op.drop_index('ix_labels_trace_kind', table_name='labels')
    op.drop_index(op.f('ix_labels_task_id'), table_name='labels')
    op.drop_table('labels')
    op.drop_table('dataset_batches')
    op.drop_index(op.f('ix_api_keys_key_prefix'), table_name='api_keys')
    op.drop_index(op.f('ix_api_keys_app_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_index(op.f('ix_annotator_tokens_token_hash'), table_name='annotator_tokens')
    op.drop_index(op.f('ix_annotator_tokens_annotator_id'), table_name='annotator_tokens')
    op.drop_table('annotator_tokens')
    op.drop_index(op.f('ix_annotator_sessions_token_hash'), table_name='annotator_sessions')
    op.drop_index(op.f('ix_annotator_sessions_expires_at'), table_name='annotator_sessions')
    op.drop_index(op.f('ix_annotator_sessions_annotator_id'), table_name='annotator_sessions')
    op.drop_table('annotator_sessions')
    op.drop_table('model_lines')
    op.drop_table('guidelines')
    op.drop_table('apps')
    op.drop_index(op.f('ix_annotators_username'), table_name='annotators')
    op.drop_table('annotators')
    op.drop_index(op.f('ix_annotation_tasks_trace_id'), table_name='annotation_tasks')
    op.drop_index('ix_annotation_tasks_queue', table_name='annotation_tasks')
    op.drop_table('annotation_tasks')
