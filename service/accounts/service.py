"""Creating users and setting passwords: one path for the CLI, the admin page and the demo."""

import re

from sqlalchemy import func
from sqlmodel import Session, col, select

from service.accounts.models import User
from service.accounts.passwords import hash_password, password_problem
from service.accounts.sessions import revoke_all
from service.db import row_id
from service.directory.models import Employee
from service.errors import Conflict, Invalid
from service.models import Role

EMAIL_RE = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.fullmatch(email) or len(email) > 320:
        raise Invalid(f"{email!r} is not an email address.")
    return email


def user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def employee_by_email(session: Session, org_id: int, email: str) -> Employee | None:
    """The active employee whose primary address this is (not an alias: the portal is the mailbox owner's)."""
    return session.exec(
        select(Employee).where(
            Employee.org_id == org_id, func.lower(Employee.email) == email.strip().lower(), col(Employee.active)
        )
    ).first()


def create_user(
    session: Session, *, org_id: int, email: str, role: Role, name: str = "", password: str | None = None
) -> User:
    email = normalise_email(email)
    if user_by_email(session, email) is not None:
        raise Conflict(f"A user {email} already exists.")
    employee = employee_by_email(session, org_id, email)
    if role is Role.employee and employee is None:
        raise Invalid(f"No active employee of the directory has the address {email}: import them first.")
    user = User(
        org_id=org_id, email=email, role=role, name=name.strip()[:200], employee_id=employee.id if employee else None
    )
    if password is not None:
        _check(password)
        user.password_hash = hash_password(password)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> int:
    """Set a new password and end the user's sessions; returns how many sessions ended."""
    _check(password)
    user.password_hash = hash_password(password)
    session.add(user)
    return revoke_all(session, row_id(user))


def _check(password: str) -> None:
    problem = password_problem(password)
    if problem:
        raise Invalid(f"Choose another password: {problem}")
