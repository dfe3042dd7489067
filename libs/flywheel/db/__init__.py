"""SQL storage: SQLModel tables (``flywheel.db.models``), engines, sessions and migrations.

Durable facts live here: tenants and keys, annotators, annotation tasks and labels,
preference requests, training examples with their lineage, dataset batches, the model
registry and releases.
"""

from flywheel.db.engine import (
    MigrationError,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
    session_scope,
)

__all__ = [
    "MigrationError",
    "current_revision",
    "downgrade",
    "head_revision",
    "make_engine",
    "migrate",
    "session_scope",
]
