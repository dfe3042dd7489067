"""Annotator accounts: password hashing, browser sessions and API tokens (SQL, blocking).

* Passwords: ``hashlib.scrypt`` (stdlib; n=2^14, r=8, p=1, 16-byte salt), stored as
  ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` and compared in constant time.
* Sessions: a random cookie token; the row keeps its SHA-256 hex and an expiry.
* API tokens: ``fwa_<random>``, shown once; the row keeps its SHA-256 hex. They never expire
  but can be revoked.

Roles: ``annotator`` labels, ``reviewer`` also settles disagreements, ``admin`` also manages
guidelines, prompt versions and accounts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from flywheel.db.engine import session_scope
from flywheel.db.models import Annotator, AnnotatorRole, AnnotatorSession, AnnotatorToken
from flywheel.db.types import utcnow

from .errors import Conflict, Forbidden, NotFound

_N, _R, _P = 2**14, 8, 1
ROLE_RANK = {AnnotatorRole.ANNOTATOR.value: 0, AnnotatorRole.REVIEWER.value: 1,
             AnnotatorRole.ADMIN.value: 2}
TOKEN_PREFIX = "fwa_"


@dataclass(frozen=True)
class Principal:
    """An authenticated annotator."""

    annotator_id: str
    username: str
    role: str

    def require(self, role: str) -> None:
        """Raise Forbidden unless this principal's role is at least ``role``."""
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            raise Forbidden(f"this needs the {role} role")


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password`` in the stored format."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a stored hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _principal(row: Annotator) -> Principal:
    return Principal(row.annotator_id, row.username, AnnotatorRole(row.role).value)


# -- accounts ---------------------------------------------------------------------------------


def create_annotator(engine: Engine, username: str, password: str, role: str) -> Principal:
    """Create an account.

    Raises:
        Conflict: the username is taken.
    """
    row = Annotator(username=username, password_hash=hash_password(password),
                    role=AnnotatorRole(role))
    try:
        with session_scope(engine) as session:
            session.add(row)
            session.flush()
            return _principal(row)
    except IntegrityError:
        raise Conflict(f"username {username!r} is taken") from None


def find_annotator(engine: Engine, username: str) -> Principal | None:
    with session_scope(engine) as session:
        row = session.exec(select(Annotator).where(Annotator.username == username)).first()
        return None if row is None else _principal(row)


def list_annotators(engine: Engine) -> list[Principal]:
    with session_scope(engine) as session:
        rows = session.exec(select(Annotator).where(Annotator.active == True)  # noqa: E712
                            .order_by(Annotator.username))
        return [_principal(r) for r in rows]


def verify_login(engine: Engine, username: str, password: str) -> Principal | None:
    """The account when the password matches (and the account is active), else None."""
    with session_scope(engine) as session:
        row = session.exec(select(Annotator).where(Annotator.username == username)).first()
        if row is None:
            hash_password(password)  # same work as a real check: no timing oracle on usernames
            return None
        if not row.active or not check_password(password, row.password_hash):
            return None
        return _principal(row)


# -- sessions ---------------------------------------------------------------------------------


def open_session(engine: Engine, annotator_id: str, ttl_s: float) -> tuple[str, datetime]:
    """A new session token (for the cookie) and its expiry."""
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=ttl_s)
    with session_scope(engine) as session:
        session.add(AnnotatorSession(annotator_id=annotator_id, token_hash=digest(token),
                                     expires_at=expires))
    return token, expires


def session_principal(engine: Engine, token: str) -> Principal | None:
    """The annotator of an unexpired session, else None."""
    with session_scope(engine) as session:
        row = session.exec(select(AnnotatorSession, Annotator)
                           .join(Annotator, Annotator.annotator_id == AnnotatorSession.annotator_id)
                           .where(AnnotatorSession.token_hash == digest(token))).first()
        if row is None:
            return None
        sess, annotator = row
        if sess.expires_at <= utcnow() or not annotator.active:
            return None
        return _principal(annotator)


def close_session(engine: Engine, token: str) -> None:
    with session_scope(engine) as session:
        row = session.exec(select(AnnotatorSession)
                           .where(AnnotatorSession.token_hash == digest(token))).first()
        if row is not None:
            session.delete(row)


# -- API tokens -------------------------------------------------------------------------------


def create_token(engine: Engine, username: str, name: str | None = None) -> str:
    """A new API token for ``username``; the plain token exists only in the return value.

    Raises:
        NotFound: no such account.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as session:
        row = session.exec(select(Annotator).where(Annotator.username == username)).first()
        if row is None:
            raise NotFound(f"no annotator {username!r}")
        session.add(AnnotatorToken(annotator_id=row.annotator_id, token_hash=digest(token),
                                   name=name))
    return token


def token_principal(engine: Engine, token: str) -> Principal | None:
    """The annotator of an unrevoked API token, else None."""
    with session_scope(engine) as session:
        row = session.exec(select(AnnotatorToken, Annotator)
                           .join(Annotator, Annotator.annotator_id == AnnotatorToken.annotator_id)
                           .where(AnnotatorToken.token_hash == digest(token))).first()
        if row is None:
            return None
        tok, annotator = row
        if tok.revoked_at is not None or not annotator.active:
            return None
        return _principal(annotator)
