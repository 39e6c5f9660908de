"""Single sign-on per organisation: its OpenID Connect settings, the email domains it answers for, the sign-ins
under way (state, nonce and PKCE verifier, single use) and the link from an identity provider's subject to a user."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class SsoProvider(StrEnum):
    microsoft = "microsoft"  # Entra ID
    google = "google"


DENY = "deny"  # default_role: people no group maps are refused


class SsoConfig(SQLModel, table=True):
    __tablename__ = "sso_config"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", unique=True)
    provider: SsoProvider = Field(sa_type=sa.Enum(SsoProvider, native_enum=False, length=20))
    enabled: bool = Field(default=True)
    client_id: str = Field(max_length=200)
    client_secret_encrypted: str = Field(default="")  # Fernet (service.crypto); never returned or logged
    tenant_id: str = Field(default="", max_length=64)  # Entra: the directory (tenant) id the tokens must carry
    # [{"group": "<Entra group object id>", "role": "comms"}, ...]: the first that matches wins
    group_roles: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    default_role: str = Field(default=DENY, max_length=20)  # a role for people no group maps, or "deny"
    allow_passwords: bool = Field(default=True)  # False: only administrators keep their password (break-glass)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SsoDomain(SQLModel, table=True):
    """An email domain and the one organisation whose SSO it leads to (home-realm discovery; Google's `hd`)."""

    __tablename__ = "sso_domain"

    domain: str = Field(primary_key=True, max_length=253)  # lower case
    org_id: int = Field(foreign_key="organisation.id", index=True)


class SsoAttempt(SQLModel, table=True):
    """A sign-in sent to the identity provider and not yet back. Keyed by sha256(state); used once, briefly."""

    __tablename__ = "sso_attempt"

    id: str = Field(primary_key=True, max_length=64)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    provider: SsoProvider = Field(sa_type=sa.Enum(SsoProvider, native_enum=False, length=20))
    nonce: str = Field(max_length=100)
    code_verifier: str = Field(max_length=200)
    next: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SsoIdentity(SQLModel, table=True):
    """Which user an identity provider's subject is (`tid`+`oid` for Entra, `sub` for Google), and the role the
    last group mapping granted, so that leaving the group takes the role away again."""

    __tablename__ = "sso_identity"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    issuer: str = Field(max_length=300)
    subject: str = Field(max_length=200)
    granted_role: str | None = Field(default=None, max_length=20)  # set by a group mapping, else None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_sign_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
