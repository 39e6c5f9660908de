"""Password reset by an emailed single-use link (only its sha256 is stored; it expires; using it ends sessions)."""

import asyncio
import hashlib
import logging
import secrets
import uuid
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate

from sqlmodel import Session

from service.accounts.models import PasswordReset, User
from service.db import row_id, utcnow
from service.settings import Settings

log = logging.getLogger(__name__)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_reset(session: Session, user: User, settings: Settings) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordReset(
            id=_digest(token),
            user_id=row_id(user),
            expires_at=utcnow() + timedelta(minutes=settings.reset_link_minutes),
        )
    )
    session.flush()
    return token


def usable_reset(session: Session, token: str) -> PasswordReset | None:
    if not token or len(token) > 100:
        return None
    row = session.get(PasswordReset, _digest(token))
    if row is None or row.used_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=utcnow().tzinfo)
    return row if expires > utcnow() else None


def reset_message(settings: Settings, *, to: str, link: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    domain = settings.smtp_from.rsplit("@", 1)[-1].strip("> ") or "relais.invalid"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body.replace("{link}", link))
    return msg


def send_reset_email(settings: Settings, msg: EmailMessage) -> bool:
    """Send through the SMTP relay of the `smtp_*` settings. False (logged) when it refused or is down.

    aiosmtplib directly: the newsletter's pooled mailer is a feature's, and the kernel imports none."""
    import aiosmtplib

    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        asyncio.run(aiosmtplib.send(
            msg, hostname=settings.smtp_host, port=settings.smtp_port, use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls and not settings.smtp_tls, username=settings.smtp_username or None,
            password=password, timeout=settings.smtp_timeout_s,
        ))  # fmt: skip
    except (aiosmtplib.SMTPException, OSError) as exc:
        log.warning("service.accounts.reset_email_failed", extra={"error": str(exc)[:200]})
        return False
    return True
