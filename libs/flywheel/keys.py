"""Per-app API keys: generation, hashing, storage and lookup (the CLI and the gateway share it).

A key looks like ``fw_3f9a1c07b2de_Qm9v...`` (``fw_`` + 12 hex characters + ``_`` + 43
url-safe characters, 256 random bits). The head ``fw_3f9a1c07b2de`` is stored in clear as
``ApiKey.key_prefix`` and finds the row; the whole key is stored only as its SHA-256 hex digest
(``ApiKey.key_hash``) and compared in constant time. A slow password hash is not needed: the
secret part is random and long, so the digest cannot be searched.

Usage::

    created = create_key(engine, "shop")          # the plain key is shown once
    identity = verify_key(engine, created.plain)  # -> KeyIdentity(key_id, app_id) or None
    revoke_key(engine, created.key_id)

From the command line: ``flywheel keys create --app shop``, ``flywheel keys list``,
``flywheel keys revoke KEY_ID``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from flywheel.db.engine import session_scope
from flywheel.db.models import ApiKey, App
from flywheel.db.types import utcnow
from flywheel.errors import FlywheelError

KEY_SCHEME = "fw"
_PREFIX_HEX = 12
_KEY_RE = re.compile(rf"^({KEY_SCHEME}_[0-9a-f]{{{_PREFIX_HEX}}})_[A-Za-z0-9_\-]{{32,64}}$")
_SLUG_RE = re.compile(r"[^a-z0-9]+")


class ApiKeyError(FlywheelError):
    """An API key operation could not be done (unknown app or key, bad name)."""


@dataclass(frozen=True)
class KeyIdentity:
    """Who a valid key belongs to."""

    key_id: str
    app_id: str


@dataclass(frozen=True)
class CreatedKey:
    """A new key. ``plain`` exists only here: it is never stored nor shown again."""

    key_id: str
    app_id: str
    key_prefix: str
    plain: str


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as listed to operators (no secret, no hash)."""

    key_id: str
    app_id: str
    key_prefix: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def generate_key() -> tuple[str, str]:
    """A fresh ``(plain_key, key_prefix)`` pair."""
    prefix = f"{KEY_SCHEME}_{secrets.token_hex(_PREFIX_HEX // 2)}"
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def hash_key(plain: str) -> str:
    """SHA-256 hex digest of a plain key (what ``ApiKey.key_hash`` holds)."""
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def key_prefix_of(plain: str) -> str | None:
    """The lookup prefix of a well-formed key, or None when the text is not a key at all."""
    match = _KEY_RE.match(plain)
    return match.group(1) if match else None


def app_id_for(name: str) -> str:
    """The app id derived from an app name: lowercase, ``-`` between words (``Shop Bot`` -> ``shop-bot``)."""
    slug = _SLUG_RE.sub("-", name.strip().lower()).strip("-")[:64]
    if not slug:
        raise ApiKeyError(f"app name {name!r} has no letters or digits")
    return slug


def ensure_app(engine: Engine, name: str) -> str:
    """The id of the app called (or with id) ``name``, creating the app if it does not exist."""
    with session_scope(engine) as session:
        app = session.exec(select(App).where((App.name == name) | (App.app_id == name))).first()
        if app is not None:
            return app.app_id
        app_id = app_id_for(name)
        if session.get(App, app_id) is not None:
            raise ApiKeyError(f"app id {app_id!r} (from {name!r}) belongs to another app name")
        session.add(App(app_id=app_id, name=name))
        return app_id


def create_key(engine: Engine, app: str, label: str | None = None) -> CreatedKey:
    """Create a key for ``app`` (a name or an app id; the app is created when new)."""
    app_id = ensure_app(engine, app)
    plain, prefix = generate_key()
    row = ApiKey(app_id=app_id, key_prefix=prefix, key_hash=hash_key(plain), label=label)
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        key_id = row.key_id
    return CreatedKey(key_id=key_id, app_id=app_id, key_prefix=prefix, plain=plain)


def list_keys(engine: Engine, app: str | None = None) -> list[KeyInfo]:
    """Stored keys, newest first, optionally of one app (by name or id)."""
    with session_scope(engine) as session:
        query = select(ApiKey).order_by(ApiKey.created_at.desc())
        if app is not None:
            ids = session.exec(select(App.app_id).where((App.name == app) | (App.app_id == app)))
            query = query.where(ApiKey.app_id.in_(list(ids)))
        return [KeyInfo(k.key_id, k.app_id, k.key_prefix, k.label, k.created_at, k.revoked_at)
                for k in session.exec(query)]


def revoke_key(engine: Engine, key_id: str) -> KeyInfo:
    """Mark a key revoked (idempotent) and return it.

    Raises:
        ApiKeyError: no key has this id.
    """
    with session_scope(engine) as session:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise ApiKeyError(f"no API key with id {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
        return KeyInfo(row.key_id, row.app_id, row.key_prefix, row.label, row.created_at,
                       row.revoked_at)


def verify_key(engine: Engine, plain: str) -> KeyIdentity | None:
    """The identity behind a presented key, or None when it is malformed, unknown or revoked.

    Blocking (SQL): call it from a worker thread in async code.
    """
    prefix = key_prefix_of(plain)
    if prefix is None:
        return None
    with session_scope(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.key_prefix == prefix)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(row.key_hash, hash_key(plain)):
            return None
        return KeyIdentity(key_id=row.key_id, app_id=row.app_id)
