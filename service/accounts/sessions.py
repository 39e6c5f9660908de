"""Server-side sessions behind an opaque cookie, revocable, with idle and absolute timeouts; sign-in throttling.

The cookie holds 256 random bits; the table holds only their sha256, so reading the table signs no one in.
Each session has its own CSRF token, sent back by every form (hidden field) and htmx request (header).
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from service.accounts.models import SignInFailure, User, WebSession
from service.db import aware, row_id, utcnow
from service.settings import Settings

COOKIE = "relais_session"
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often (one UPDATE a minute, not a page)
FAILURE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Throttle:
    """How many events per address and per client the 15-minute window allows, under a key prefix of its own."""

    scope: str
    per_email: int
    per_ip: int


SIGN_IN = Throttle("", per_email=5, per_ip=30)  # failed password sign-ins


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(session: Session, user: User, *, user_agent: str = "") -> str:
    """A new session for `user`; returns the cookie value (shown once, never stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=_digest(token), user_id=row_id(user), csrf_token=secrets.token_urlsafe(24), user_agent=user_agent[:300]
        )
    )
    user.last_sign_in_at = utcnow()
    session.add(user)
    session.flush()
    return token


@dataclass(frozen=True)
class Active:
    web: WebSession
    user: User


def load_session(session: Session, token: str | None, settings: Settings) -> Active | None:
    """The live session for a cookie value, or None (unknown, revoked, idle too long, too old, user disabled)."""
    if not token or len(token) > 100:
        return None
    web = session.get(WebSession, _digest(token))
    if web is None or web.revoked_at is not None:
        return None
    now = utcnow()
    idle = timedelta(minutes=settings.session_idle_minutes)
    absolute = timedelta(hours=settings.session_absolute_hours)
    if now - aware(web.last_seen_at) > idle or now - aware(web.created_at) > absolute:
        web.revoked_at = now
        session.add(web)
        return None
    user = session.get(User, web.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if now - aware(web.last_seen_at) > TOUCH_EVERY:
        web.last_seen_at = now
        session.add(web)
    return Active(web, user)


def revoke(session: Session, web_id: str) -> None:
    web = session.get(WebSession, web_id)
    if web is not None and web.revoked_at is None:
        web.revoked_at = utcnow()
        session.add(web)


def revoke_all(session: Session, user_id: int) -> int:
    """End every session of a user (password changed, account disabled). Returns how many were live."""
    rows = session.exec(
        select(WebSession).where(col(WebSession.user_id) == user_id, col(WebSession.revoked_at).is_(None))
    ).all()
    now = utcnow()
    for web in rows:
        web.revoked_at = now
        session.add(web)
    return len(rows)


def csrf_ok(expected: str, sent: str | None) -> bool:
    if not sent:
        return False
    return secrets.compare_digest(expected.encode(), sent.encode())


# ---------------------------------------------------------------- sign-in throttling


def _keys(email: str, ip: str | None, scope: str = "") -> tuple[str, str]:
    return f"{scope}email:{email.strip().lower()}"[:400], f"{scope}ip:{ip or '-'}"[:400]


def throttled(session: Session, email: str, ip: str | None, throttle: Throttle = SIGN_IN) -> bool:
    """True when this address or this client failed too often in the last 15 minutes."""
    since = utcnow() - FAILURE_WINDOW
    email_key, ip_key = _keys(email, ip, throttle.scope)

    def count(key: str) -> int:
        return session.exec(
            select(func.count()).select_from(SignInFailure).where(SignInFailure.key == key, SignInFailure.at >= since)
        ).one()

    return count(email_key) >= throttle.per_email or count(ip_key) >= throttle.per_ip


def record_failure(session: Session, email: str, ip: str | None, throttle: Throttle = SIGN_IN) -> None:
    for key in _keys(email, ip, throttle.scope):
        session.add(SignInFailure(key=key))
    # old rows are worthless: keep the table small
    session.exec(delete(SignInFailure).where(col(SignInFailure.at) < utcnow() - FAILURE_WINDOW))


def clear_failures(session: Session, email: str) -> None:
    session.exec(delete(SignInFailure).where(col(SignInFailure.key) == _keys(email, None)[0]))
