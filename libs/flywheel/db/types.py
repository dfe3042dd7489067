"""Column types and value factories shared by the table models.

Timestamps are always timezone-aware UTC in Python. SQLite keeps no offset, so values are
normalised to UTC before they are written and marked UTC when they are read back; naive
datetimes are refused rather than guessed at.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A random identifier: 32 lowercase hex characters (a UUID4 without dashes)."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """``TIMESTAMP WITH TIME ZONE`` that reads and writes aware UTC datetimes on every backend.

    Raises:
        ValueError: (wrapped by SQLAlchemy in a ``StatementError``) when a naive datetime is
            bound, because its offset would be a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC time")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
