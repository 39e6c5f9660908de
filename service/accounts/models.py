"""People who sign in to the pages: local accounts, their server-side sessions, reset links, failed attempts."""

from datetime import datetime

from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime
from service.models import Role


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    email: str = Field(max_length=320, unique=True)  # stored lower-case
    name: str = Field(default="", max_length=200)
    role: Role
    # the directory employee this person is, which opens the portal (/me); None for staff outside the directory
    employee_id: int | None = Field(default=None, foreign_key="employee.id", index=True)
    password_hash: str | None = Field(default=None, max_length=200)  # argon2id; None = no password (SSO only)
    language: str | None = Field(default=None, max_length=8)  # None = the browser's Accept-Language
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_sign_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the cookie value: a stolen table signs no one in
    user_id: int = Field(foreign_key="app_user.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    user_agent: str = Field(default="", max_length=300)


class PasswordReset(SQLModel, table=True):
    __tablename__ = "password_reset"

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the emailed token
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SignInFailure(SQLModel, table=True):
    __tablename__ = "sign_in_failure"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, index=True)  # "email:<address>" or "ip:<address>"
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class SignInLink(SQLModel, table=True):
    """An emailed sign-in link for an employee (the portal): single use, short-lived; only its sha256 is kept."""

    __tablename__ = "sign_in_link"

    id: str = Field(primary_key=True, max_length=64)  # sha256 of the emailed token
    employee_id: int = Field(foreign_key="employee.id", index=True)
    next_path: str = Field(default="", max_length=500)  # a same-site path (guard.safe_next) to land on
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
