"""Provider connections: one per organisation and provider, the secret part encrypted at rest."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class Provider(StrEnum):
    google = "google"
    microsoft = "microsoft"


class ProviderConnection(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "provider"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    provider: Provider = Field(sa_type=sa.Enum(Provider, native_enum=False, length=20))
    # Non-secret settings (admin subject, customer id, tenant id, client id, scopes...).
    config: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Fernet token of the secret (service-account JSON, client secret or certificate); never returned.
    secret_encrypted: str = Field(default="")
    # Incremental sync state (e.g. Graph delta link); not secret, but not shown either.
    sync_state: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    auto_deploy: bool = Field(default=True)  # keep mailboxes current after template, brand, directory or banner changes
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_sync_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
