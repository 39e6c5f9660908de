"""Employees sign in to their portal (/me) by an emailed link: single use, 15 minutes, only its sha256 stored.

Requests are throttled per address and per client with the sign-in throttle (service.accounts.sessions), and
every request counts, sent or not, so the throttle says nothing about who exists. Opening the link (GET) only
shows a "Sign in" button: mail security gateways fetch every link of a message the moment it arrives, and a
GET that signed in would burn the link before its owner clicked it. The POST of that button uses it.
"""

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from service.accounts.models import SignInLink, User
from service.accounts.service import user_by_email
from service.accounts.sessions import Throttle
from service.db import row_id, utcnow
from service.directory.models import Employee

LINK_MINUTES = 15
REQUESTS = Throttle("link:", per_email=3, per_ip=20)  # link requests in 15 minutes: 3 per address, 20 per client


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def employee_to_sign_in(session: Session, email: str) -> Employee | None:
    """The active employee this address belongs to, when they may sign in: their account (if any) is enabled and
    is theirs. An address in several organisations' directories goes with the existing account's organisation."""
    email = email.strip().lower()
    if not email or len(email) > 320:
        return None
    user = user_by_email(session, email)
    if user is not None and user.disabled_at is not None:
        return None
    query = select(Employee).where(func.lower(Employee.email) == email, col(Employee.active))
    if user is not None:
        query = query.where(Employee.org_id == user.org_id)
    return session.exec(query.order_by(col(Employee.id))).first()


def issue_link(session: Session, employee: Employee, next_path: str = "") -> str:
    """A new link token for `employee` (shown once, in the email; never stored)."""
    token = secrets.token_urlsafe(32)
    session.add(SignInLink(id=_digest(token), employee_id=row_id(employee), next_path=next_path[:500],
                           expires_at=utcnow() + timedelta(minutes=LINK_MINUTES)))  # fmt: skip
    session.flush()
    return token


def usable_link(session: Session, token: str) -> SignInLink | None:
    """The link, while it is unused and fresh; None otherwise."""
    if not token or len(token) > 100:
        return None
    row = session.get(SignInLink, _digest(token))
    if row is None or row.used_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=utcnow().tzinfo)
    return row if expires > utcnow() else None


def use_link(session: Session, token: str) -> SignInLink | None:
    """Mark the link used and return it; None when it is not usable. One conditional UPDATE, so two posts of
    the same link (a double click, a replay) sign in once."""
    row = usable_link(session, token)
    if row is None:
        return None
    done = session.execute(
        update(SignInLink).where(col(SignInLink.id) == row.id, col(SignInLink.used_at).is_(None))
        .values(used_at=utcnow())
    )  # fmt: skip
    if getattr(done, "rowcount", 0) != 1:
        return None
    session.refresh(row)
    return row


def portal_user(session: Session, employee: Employee) -> User | None:
    """The account an employee signs in with by link: theirs (linked to them now, if it was not yet), or a new
    one with the employee role. None when they may not: they left, or the address's account is disabled or
    belongs to someone else."""
    from service.accounts.service import create_user
    from service.errors import AppError
    from service.models import Role

    if not employee.active:
        return None
    user = user_by_email(session, employee.email)
    if user is None:
        try:
            return create_user(session, org_id=employee.org_id, email=employee.email, role=Role.employee,
                               name=employee.display_name or "")  # fmt: skip
        except AppError:  # an address create_user refuses, or one created meanwhile: no sign-in this time
            return None
    if user.disabled_at is not None or user.org_id != employee.org_id:
        return None
    if user.employee_id is None:
        user.employee_id = row_id(employee)
        session.add(user)
        session.flush()
    return user if user.employee_id == employee.id else None
